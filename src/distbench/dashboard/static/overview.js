// distbench dashboard, Overview: the latest runs, the pods and their resources. Needs common.js and charts.js.
"use strict";

// The pod metrics' names come with the page (dashboard/pages.py), from their one owner.
const METRIC = JSON.parse(document.getElementById("metric-names").textContent);
const WINDOW_MS = 10 * 60 * 1000;

// The rate of a counter: (v[i] - v[i-1]) / (t[i] - t[i-1]) in units per second, times `scale`.
function rate(series, scale) {
  const x = [];
  const y = [];
  if (!series) return { x, y };
  for (let i = 1; i < series.dates.length; i += 1) {
    const dt = (new Date(series.dates[i]) - new Date(series.dates[i - 1])) / 1000;
    const dv = series.values[i] - series.values[i - 1];
    if (dt <= 0 || dv < 0) continue; // a counter that restarted
    x.push(localStamp(series.dates[i]));
    y.push((dv / dt) * scale);
  }
  return { x, y };
}

function labelChips(labels) {
  // The API gives labels as MLBench did: a Python dict's text, "{'app': 'distbench', ...}".
  const chips = [];
  for (const match of String(labels).matchAll(/'([^']*)': '([^']*)'/g)) {
    chips.push(el("span", { class: "chip" }, `${match[1]}=${match[2]}`));
  }
  return chips.length ? chips : [el("span", { class: "chip" }, labels)];
}

// Between runs there are no pods to show: the latest runs and what they measured are what a
// user opening the dashboard wants first.
const LATEST_RUNS = 5;
const LATEST_POLL_MS = 5000;

function showLatestRuns() {
  const table = document.getElementById("latest-runs");
  return every(LATEST_POLL_MS, async () => {
    const runs = (await api("/api/runs/")).slice(0, LATEST_RUNS);
    document.getElementById("latest-empty").hidden = runs.length > 0;
    table.hidden = runs.length === 0;
    table.tBodies[0].replaceChildren(
      ...runs.map((run) => {
        const headline = headlineText((run.job_metadata || {}).result);
        return el(
          "tr",
          { "data-run-id": run.id },
          el("td", {}, el("a", { href: `/runs/${run.id}` }, `#${run.id}`)),
          el("td", {}, run.name),
          el("td", {}, stateBadge(run.state)),
          el("td", { class: "num" }, run.num_workers),
          el("td", {}, limitsText(run)),
          el("td", {}, formatTime(run.finished_at)),
          el("td", {}, resultText(run), headline ? el("br") : null, headline),
        );
      }),
    );
  });
}

function initOverview() {
  showLatestRuns();
  const container = document.getElementById("pods");
  const empty = document.getElementById("pods-empty");
  const store = new SeriesStore();
  const cards = new Map();

  function card(pod) {
    let entry = cards.get(pod.name);
    if (!entry) {
      const charts = {
        cpu: el("div", { class: "chart small", "data-chart": "cpu" }),
        memory: el("div", { class: "chart small", "data-chart": "memory" }),
        network: el("div", { class: "chart small", "data-chart": "network" }),
      };
      const phase = el("span", { class: "state" });
      const address = el("span", {});
      const labels = el("div", { class: "chips" });
      const node = el(
        "article",
        { class: "card pod", "data-pod": pod.name },
        el("h2", {}, pod.name, " ", phase),
        el("p", { class: "muted" }, "address ", address),
        labels,
        el("div", { class: "pod-charts" }, charts.cpu, charts.memory, charts.network),
      );
      container.append(node);
      entry = { node, charts, phase, address, labels };
      cards.set(pod.name, entry);
    }
    entry.phase.className = `state state-${pod.phase.toLowerCase()}`;
    entry.phase.textContent = pod.phase;
    entry.address.textContent = pod.ip || "—";
    entry.labels.replaceChildren(...labelChips(pod.labels));
    return entry;
  }

  function draw(name, entry) {
    const of = (metric) => store.series.get(`${name}\u0000${metric}`);
    const cpu = rate(of(METRIC.cpu), 1);
    plot(entry.charts.cpu, [{ ...cpu, name: "CPU", mode: "lines", line: { color: "#1f77b4" } }], {
      title: { text: "CPU" },
      xaxis: timeAxis(),
      yaxis: { title: { text: "cores" }, rangemode: "tozero" },
      showlegend: false,
    });
    const memory = of(METRIC.memory);
    plot(
      entry.charts.memory,
      [
        {
          x: memory ? memory.dates.map(localStamp) : [],
          y: memory ? memory.values.map((v) => v / 2 ** 20) : [],
          name: "memory",
          mode: "lines",
          line: { color: "#2ca02c" },
        },
      ],
      {
        title: { text: "Memory" },
        xaxis: timeAxis(),
        yaxis: { title: { text: "MiB" }, rangemode: "tozero" },
        showlegend: false,
      },
    );
    const bits = 8 / 1e6;
    const received = rate(of(METRIC.receive), bits);
    const sent = rate(of(METRIC.transmit), bits);
    plot(
      entry.charts.network,
      [
        { ...received, name: "in", mode: "lines", line: { color: "#9467bd" } },
        { ...sent, name: "out", mode: "lines", line: { color: "#ff7f0e" } },
      ],
      {
        title: { text: "Network" },
        xaxis: timeAxis(),
        yaxis: { title: { text: "Mbit/s" }, rangemode: "tozero" },
      },
    );
  }

  every(POLL_MS, async () => {
    const first = store.newest === null;
    const since = first ? new Date(Date.now() - WINDOW_MS).toISOString() : store.since();
    const [pods, metrics] = await Promise.all([
      api("/api/pods/"),
      api(`/api/metrics/${query({ since, max_points: first ? FIRST_LOAD_POINTS : null })}`),
    ]);
    // Flatten {pod: {metric: points}} to one store keyed "pod\0metric".
    const flat = {};
    for (const [pod, series] of Object.entries(metrics)) {
      for (const [metric, points] of Object.entries(series)) flat[`${pod}\u0000${metric}`] = points;
    }
    store.merge(flat);
    store.trimBefore(new Date(Date.now() - WINDOW_MS).toISOString());
    if (first && store.newest === null) store.newest = new Date().toISOString();
    empty.hidden = pods.length > 0;
    const names = new Set(pods.map((pod) => pod.name));
    for (const [name, entry] of cards) {
      if (!names.has(name)) {
        entry.node.remove();
        cards.delete(name);
      }
    }
    for (const pod of pods) draw(pod.name, card(pod));
  });
}

document.addEventListener("DOMContentLoaded", initOverview);
