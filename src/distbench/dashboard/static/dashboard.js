// distbench dashboard: each page reads /api/ and draws with Plotly.js. Polls ask only for points
// newer than the ones already shown (`since`); first loads ask for a downsampled series
// (`max_points`). Times come as UTC ("...Z") and are shown in the viewer's zone.
"use strict";

const POLL_MS = 2000;
const FIRST_LOAD_POINTS = 500;
// Points may be stored a little after their date (workers batch them), so each poll asks again
// for a short overlap and drops what it already has, series by series.
const OVERLAP_MS = 10000;
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
const ACTIVE = new Set(["INITIALIZED", "STARTED"]);

// -- small helpers -------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function token() {
  return localStorage.getItem("distbench-token") || "";
}

async function api(path, options) {
  const headers = { Accept: "application/json", ...((options && options.headers) || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const error = new Error(
      (body && body.error && body.error.message) || `${response.status} ${response.statusText}`,
    );
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

// "2024-05-01 14:03:09.120" in the viewer's zone: Plotly shows such strings as they are.
function localStamp(iso) {
  const d = new Date(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

function formatTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function runDuration(run) {
  if (!run.started_at) return null;
  const end = run.finished_at ? new Date(run.finished_at) : new Date();
  return (end - new Date(run.started_at)) / 1000;
}

function limitsText(run) {
  const parts = [`${run.num_cpus} CPU${run.num_cpus === 1 ? "" : "s"}`];
  parts.push(run.max_bandwidth ? `${run.max_bandwidth} Mbit/s` : "no bandwidth cap");
  return parts.join(", ");
}

function resultText(run) {
  const meta = run.job_metadata || {};
  const result = meta.result;
  if (run.state === "FAILED" && meta.error) return `failed: ${meta.error}`;
  if (!result) return ACTIVE.has(run.state) ? "running…" : "—";
  if (result.target_reached) {
    return `${pct(result.target_accuracy)} reached in ${formatDuration(result.time_to_accuracy_s)}`;
  }
  if (result.target_accuracy !== undefined && result.target_accuracy !== null) {
    return `${pct(result.target_accuracy)} not reached`;
  }
  return result.state || run.state;
}

function pct(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(1)} %`;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state.toLowerCase()}` }, state);
}

function showError(box, error) {
  box.hidden = false;
  box.replaceChildren(el("strong", {}, error.status ? `${error.status}: ` : ""), error.message);
}

// The y axis title of a run metric, with its unit.
function metricAxis(name) {
  if (name.endsWith("accuracy")) return `${name} (fraction, 0–1)`;
  if (name.endsWith("loss")) return `${name} (loss)`;
  if (name === "samples_per_s") return "samples/s";
  if (name === "epoch") return "epoch";
  if (name.endsWith("_s")) return `${name} (s)`;
  if (name.endsWith("_bytes")) return `${name} (bytes)`;
  if (name.endsWith("_mbit")) return `${name} (Mbit/s)`;
  return `${name} (value)`;
}

function epochOf(metadata) {
  if (!metadata) return null;
  try {
    const parsed = JSON.parse(metadata);
    return typeof parsed.epoch === "number" ? parsed.epoch : null;
  } catch (_) {
    return null;
  }
}

// Series by name, grown poll by poll: each keeps the date of its newest point.
class SeriesStore {
  constructor() {
    this.series = new Map();
    this.newest = null;
  }

  // Add points from a {name: [{date, value, metadata}]} answer; returns how many were new.
  merge(answer) {
    let added = 0;
    for (const [name, points] of Object.entries(answer)) {
      let series = this.series.get(name);
      if (!series) {
        series = { dates: [], values: [], epochs: [], last: "" };
        this.series.set(name, series);
      }
      for (const point of points) {
        if (point.date <= series.last) continue; // same format, so strings order like dates
        series.dates.push(point.date);
        series.values.push(Number(point.value));
        series.epochs.push(epochOf(point.metadata));
        series.last = point.date;
        if (!this.newest || point.date > this.newest) this.newest = point.date;
        added += 1;
      }
    }
    return added;
  }

  // Drop points dated before `cutoff` (an ISO string): a view that shows a moving window keeps
  // only that window, so a tab left open for days does not grow without bound.
  trimBefore(cutoff) {
    for (const series of this.series.values()) {
      let old = 0;
      while (old < series.dates.length && series.dates[old] < cutoff) old += 1;
      if (old > 0) {
        series.dates.splice(0, old);
        series.values.splice(0, old);
        series.epochs.splice(0, old);
      }
    }
  }

  since() {
    if (!this.newest) return null;
    return new Date(new Date(this.newest).getTime() - OVERLAP_MS).toISOString();
  }
}

const BASE_LAYOUT = {
  margin: { l: 64, r: 16, t: 36, b: 48 },
  font: { family: "system-ui, sans-serif", size: 12 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#fff",
  // Above the plot, right: below it the legend would sit on the x axis title.
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
};
const PLOT_CONFIG = { displaylogo: false, responsive: true };

function plot(node, traces, layout) {
  if (!window.Plotly) return;
  const full = { ...BASE_LAYOUT, ...layout };
  if (traces.every((trace) => !trace.x || trace.x.length === 0)) {
    // Say so, rather than show Plotly's made-up axis range (an empty date axis reads "Jan 2000").
    full.annotations = [
      { text: "No samples yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 },
    ];
    full.xaxis = { ...(full.xaxis || {}), showticklabels: false };
    full.yaxis = { ...(full.yaxis || {}), showticklabels: false };
  }
  window.Plotly.react(node, traces, full, PLOT_CONFIG);
}

function timeAxis() {
  return { title: { text: `time (${ZONE})` }, type: "date" };
}

function every(ms, task) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      await task();
    } catch (error) {
      console.error(error);
    }
    if (!stopped) setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
  };
}

// -- Overview: pods and their resources ----------------------------------------------------------
const CPU = "container_cpu_usage_seconds_total";
const MEMORY = "container_memory_usage_bytes";
const NET_OUT = "container_network_transmit_bytes_total";
const NET_IN = "container_network_receive_bytes_total";
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

function initOverview() {
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
    const cpu = rate(of(CPU), 1);
    plot(entry.charts.cpu, [{ ...cpu, name: "CPU", mode: "lines", line: { color: "#1f77b4" } }], {
      title: { text: "CPU" },
      xaxis: timeAxis(),
      yaxis: { title: { text: "cores" }, rangemode: "tozero" },
      showlegend: false,
    });
    const memory = of(MEMORY);
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
    plot(
      entry.charts.network,
      [
        { ...rate(of(NET_IN), bits), name: "in", mode: "lines", line: { color: "#9467bd" } },
        { ...rate(of(NET_OUT), bits), name: "out", mode: "lines", line: { color: "#ff7f0e" } },
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

// -- Runs: the list and the start form -----------------------------------------------------------
function initRuns() {
  const form = document.getElementById("start-form");
  const errorBox = document.getElementById("form-error");
  const benchmarkSelect = document.getElementById("f-benchmark");
  const help = document.getElementById("benchmark-help");
  const tokenRow = document.getElementById("token-row");
  const tokenInput = document.getElementById("f-token");
  let benchmarks = [];

  api("/api/benchmarks").then((list) => {
    benchmarks = list;
    // A broken plugin is listed, greyed out, so its author sees it was found but failed.
    benchmarkSelect.replaceChildren(
      ...list.map((b) =>
        b.status === "broken"
          ? el("option", { value: b.name, disabled: true }, `${b.name} (broken plugin)`)
          : el(
              "option",
              { value: b.name, selected: b.name === "digits" },
              b.builtin ? b.name : `${b.name} (plugin)`,
            ),
      ),
    );
    describe();
  });
  function describe() {
    const chosen = benchmarks.find((b) => b.name === benchmarkSelect.value);
    const broken = benchmarks.filter((b) => b.status === "broken");
    help.textContent =
      (chosen
        ? `${chosen.description} From ${chosen.source}. ` +
          `Options and defaults: ${JSON.stringify(chosen.defaults)}`
        : "") + broken.map((b) => ` Broken plugin ${b.name} (${b.source}): ${b.error}`).join("");
  }
  benchmarkSelect.addEventListener("change", () => {
    describe();
    const name = document.getElementById("f-name");
    if (/ run$/.test(name.value)) name.value = `${benchmarkSelect.value} run`;
  });

  function clearFieldErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.remove();
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors();
    errorBox.hidden = true;
    const data = new FormData(form);
    const number = (key) => (data.get(key) === "" ? undefined : Number(data.get(key)));
    let options = {};
    if (String(data.get("options")).trim()) {
      try {
        options = JSON.parse(data.get("options"));
      } catch (error) {
        showError(errorBox, new Error(`options are not JSON: ${error.message}`));
        document.getElementById("f-options").setAttribute("aria-invalid", "true");
        document.getElementById("f-options").focus();
        return;
      }
    }
    const body = {
      options,
      name: data.get("name"),
      benchmark: data.get("benchmark"),
      num_workers: number("num_workers"),
      num_cpus: number("num_cpus"),
      max_bandwidth: number("max_bandwidth"),
    };
    if (tokenInput.value) localStorage.setItem("distbench-token", tokenInput.value);
    const button = document.getElementById("start");
    button.disabled = true;
    try {
      const run = await api("/api/runs/", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      window.location.assign(`/runs/${run.id}`);
    } catch (error) {
      showError(errorBox, error);
      const details = (error.body && error.body.error && error.body.error.details) || {};
      if (error.status === 409 && details.active_run_id) {
        errorBox.append(
          " ",
          el("a", { href: `/runs/${details.active_run_id}` }, `Open run ${details.active_run_id}`),
        );
      }
      if (error.status === 401 || error.status === 403) tokenRow.hidden = false;
      for (const problem of details.errors || []) {
        const input = form.querySelector(`[name="${CSS.escape(problem.field)}"]`);
        if (!input) continue;
        input.setAttribute("aria-invalid", "true");
        input.closest("label").append(el("span", { class: "field-error" }, problem.message));
      }
      const invalid = form.querySelector("[aria-invalid]");
      if (invalid) invalid.focus();
    } finally {
      button.disabled = false;
    }
  });

  const table = document.getElementById("runs-table");
  const empty = document.getElementById("runs-empty");
  every(POLL_MS, async () => {
    const runs = await api("/api/runs/");
    empty.hidden = runs.length > 0;
    table.hidden = runs.length === 0;
    table.tBodies[0].replaceChildren(
      ...runs.map((run) =>
        el(
          "tr",
          { "data-run-id": run.id },
          el("td", {}, el("a", { href: `/runs/${run.id}` }, `#${run.id}`)),
          el("td", {}, el("a", { href: `/runs/${run.id}` }, run.name)),
          el("td", {}, stateBadge(run.state)),
          el("td", {}, run.benchmark),
          el("td", { class: "num" }, run.num_workers),
          el("td", {}, limitsText(run)),
          el("td", {}, formatTime(run.created_at)),
          el("td", { class: "num" }, formatDuration(runDuration(run))),
          el("td", {}, resultText(run)),
        ),
      ),
    );
  });
}

// -- Run: configuration, live metrics, result, logs ----------------------------------------------
function definitionList(node, rows) {
  node.replaceChildren(...rows.flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, value)]));
}

function keyValues(object) {
  const entries = Object.entries(object);
  if (!entries.length) return "—";
  return el(
    "ul",
    { class: "kv" },
    entries.map(([key, value]) =>
      el("li", {}, el("code", {}, key), ": ", typeof value === "object" ? JSON.stringify(value) : String(value)),
    ),
  );
}

function workers(n) {
  return `${n} worker${n === 1 ? "" : "s"}`;
}

function resultRows(result) {
  const rows = [];
  const seconds = (v) => (v === null || v === undefined ? "—" : formatDuration(v));
  for (const [key, value] of Object.entries(result)) {
    if (value === null || value === undefined) continue;
    let text;
    if (key.endsWith("_s")) text = seconds(value);
    else if (key.includes("accuracy") && typeof value === "number") text = pct(value);
    else if (typeof value === "object") text = keyValues(value);
    else text = String(value);
    // The unit is in the value ("12.3 s"), so "_s" leaves the label.
    rows.push([key.replace(/_s$/, "").replaceAll("_", " "), text]);
  }
  return rows;
}

function initRun() {
  const runId = Number(document.body.dataset.runId);
  const store = new SeriesStore();
  const charts = new Map();
  const chartBox = document.getElementById("charts");
  const emptyMetrics = document.getElementById("metrics-empty");
  const abort = document.getElementById("abort");
  const errorBox = document.getElementById("run-error");
  let xMode = "time";
  let run = null;
  let finalPoll = false;

  function drawMetric(name) {
    const series = store.series.get(name);
    let node = charts.get(name);
    if (!node) {
      node = el("div", { class: "chart", "data-metric": name });
      charts.set(name, node);
      chartBox.append(node);
      [...charts.keys()].sort().forEach((key) => chartBox.append(charts.get(key)));
    }
    let x = series.dates.map(localStamp);
    let y = series.values;
    let xaxis = timeAxis();
    if (xMode === "epoch") {
      const keep = series.epochs.map((epoch) => epoch !== null);
      x = series.epochs.filter((_, i) => keep[i]);
      y = series.values.filter((_, i) => keep[i]);
      xaxis = { title: { text: "epoch" } };
    }
    plot(node, [{ x, y, name, mode: x.length > 60 ? "lines" : "lines+markers" }], {
      title: { text: name },
      xaxis,
      yaxis: { title: { text: metricAxis(name) } },
      showlegend: false,
    });
  }

  function drawAll() {
    for (const name of store.series.keys()) drawMetric(name);
    emptyMetrics.hidden = store.series.size > 0;
  }

  for (const radio of document.querySelectorAll('input[name="xaxis"]')) {
    radio.addEventListener("change", () => {
      xMode = radio.value;
      drawAll();
    });
  }

  function showRun() {
    document.getElementById("run-title").textContent = `Run ${run.id}: ${run.name}`;
    document.title = `Run ${run.id} · distbench`;
    document.getElementById("run-state").replaceChildren(stateBadge(run.state));
    abort.hidden = !ACTIVE.has(run.state);
    definitionList(document.getElementById("config"), [
      ...(run.command
        ? [
            ["command", run.command.join(" ")],
            ["working directory", run.working_dir || "the run's own"],
          ]
        : [["benchmark", run.benchmark]]),
      ["workers", run.num_workers],
      ["CPUs per worker", run.num_cpus],
      ["bandwidth cap", run.max_bandwidth ? `${run.max_bandwidth} Mbit/s` : "none"],
      ["limits applied", keyValues((run.job_metadata || {}).limits || {})],
      ["options", keyValues(run.options)],
      ["created", formatTime(run.created_at)],
      ["started", formatTime(run.started_at)],
      ["finished", formatTime(run.finished_at)],
      ["duration", formatDuration(runDuration(run))],
      ["job id", run.job_id],
    ]);
    const meta = run.job_metadata || {};
    const rows = meta.result ? resultRows(meta.result) : [];
    if (meta.error) rows.unshift(["error", String(meta.error)]);
    if (rows.length) definitionList(document.getElementById("result"), rows);
  }

  abort.addEventListener("click", async () => {
    if (!window.confirm(`Abort run ${runId}? Its workers are stopped; its data is kept.`)) return;
    abort.disabled = true;
    try {
      run = await api(`/api/runs/${runId}/`, { method: "DELETE" });
      showRun();
    } catch (error) {
      showError(errorBox, error);
    } finally {
      abort.disabled = false;
    }
  });

  const stopRun = every(POLL_MS, async () => {
    try {
      run = await api(`/api/runs/${runId}/`);
    } catch (error) {
      showError(errorBox, error);
      if (error.status === 404) stopRun();
      return;
    }
    showRun();
    const first = store.newest === null;
    const answer = await api(
      `/api/metrics/${runId}/${query({
        metric_type: "run",
        since: store.since(),
        max_points: first ? FIRST_LOAD_POINTS : null,
      })}`,
    );
    if (store.merge(answer) > 0 || first) drawAll();
    if (!ACTIVE.has(run.state)) {
      // One more poll after the end picks up the last points, then the page stops asking.
      if (finalPoll) stopRun();
      finalPoll = true;
    }
  });

  const logs = document.getElementById("logs");
  const stopLogs = every(5000, async () => {
    const answer = await api(`/api/runs/${runId}/logs${query({ tail: 200 })}`);
    const entries = Object.entries(answer.logs);
    if (!entries.length) {
      logs.replaceChildren(el("p", { class: "empty" }, "No logs — the workers have not started."));
    } else {
      const open = new Set(
        [...logs.querySelectorAll("details[open]")].map((d) => d.dataset.pod),
      );
      const firstTime = !logs.querySelector("details");
      logs.replaceChildren(
        ...entries.map(([pod, text]) =>
          el(
            "details",
            { "data-pod": pod, open: firstTime || open.has(pod) },
            el("summary", {}, `${pod} (last 200 lines)`),
            el("pre", { class: "log" }, text || "(empty)"),
          ),
        ),
      );
    }
    if (run && !ACTIVE.has(run.state)) stopLogs();
  });
}

// -- Compare: overlay a metric, speedup and time to accuracy -------------------------------------
function initCompare() {
  const choices = document.getElementById("run-choices");
  const metricSelect = document.getElementById("metric");
  const xSelect = document.getElementById("compare-x");
  const table = document.getElementById("compare-table");
  const cache = new Map();
  let runs = [];

  async function seriesOf(runId) {
    if (!cache.has(runId)) {
      const answer = await api(
        `/api/metrics/${runId}/${query({ metric_type: "run", max_points: FIRST_LOAD_POINTS })}`,
      );
      const store = new SeriesStore();
      store.merge(answer);
      cache.set(runId, store);
    }
    return cache.get(runId);
  }

  function selected() {
    const ids = [...choices.querySelectorAll("input:checked")].map((i) => Number(i.value));
    return runs.filter((run) => ids.includes(run.id));
  }

  // Time to the target, or the whole run's time when the target was not reached.
  function runTime(run) {
    const result = (run.job_metadata || {}).result || {};
    if (result.target_reached && result.time_to_accuracy_s) return result.time_to_accuracy_s;
    return result.total_time_s || null;
  }

  async function draw() {
    const chosen = selected();
    const stores = await Promise.all(chosen.map((run) => seriesOf(run.id)));
    const names = new Set();
    stores.forEach((store) => store.series.forEach((_, name) => names.add(name)));
    const current = metricSelect.value;
    metricSelect.replaceChildren(
      ...[...names].sort().map((name) => el("option", { selected: name === current }, name)),
    );
    if (!names.has(current) && names.has("val_accuracy")) metricSelect.value = "val_accuracy";
    const metric = metricSelect.value;
    const byEpoch = xSelect.value === "epoch";
    const traces = chosen.map((run, i) => {
      const series = stores[i].series.get(metric);
      const label = `#${run.id} ${run.name} (${workers(run.num_workers)})`;
      if (!series) return { x: [], y: [], name: label };
      const start = new Date(run.started_at || series.dates[0]).getTime();
      const x = byEpoch ? series.epochs : series.dates.map((d) => (new Date(d) - start) / 1000);
      return { x, y: series.values, name: label, mode: "lines+markers" };
    });
    plot(document.getElementById("overlay"), traces, {
      title: { text: `${metric} by run` },
      xaxis: { title: { text: byEpoch ? "epoch" : "seconds since the run started (s)" } },
      yaxis: { title: { text: metricAxis(metric) } },
    });

    const timed = chosen.filter((run) => runTime(run) !== null);
    timed.sort((a, b) => a.num_workers - b.num_workers || a.id - b.id);
    const base = timed[0];
    const speedup = (run) => (base ? runTime(base) / runTime(run) : null);
    plot(
      document.getElementById("speedup"),
      [
        {
          x: timed.map((r) => r.num_workers),
          y: timed.map(speedup),
          text: timed.map((r) => `#${r.id}`),
          mode: "lines+markers+text",
          textposition: "top center",
          name: "measured",
        },
        base && {
          x: timed.map((r) => r.num_workers),
          y: timed.map((r) => r.num_workers / base.num_workers),
          mode: "lines",
          line: { dash: "dot", color: "#999" },
          name: "ideal",
        },
      ].filter(Boolean),
      {
        title: { text: base ? `Speedup over run #${base.id}` : "Speedup (no ended runs chosen)" },
        xaxis: { title: { text: "workers" }, dtick: 1 },
        yaxis: { title: { text: "speedup (×)" }, rangemode: "tozero" },
      },
    );
    plot(
      document.getElementById("tta"),
      [
        {
          type: "bar",
          x: timed.map((r) => `#${r.id} (${r.num_workers}w)`),
          y: timed.map(runTime),
          marker: {
            color: timed.map((r) => (((r.job_metadata || {}).result || {}).target_reached ? "#2ca02c" : "#bbb")),
          },
        },
      ],
      {
        title: { text: "Time to accuracy (grey: target not reached, total time)" },
        xaxis: { title: { text: "run (workers)" }, type: "category" },
        yaxis: { title: { text: "seconds (s)" }, rangemode: "tozero" },
      },
    );
    table.hidden = chosen.length === 0;
    table.tBodies[0].replaceChildren(
      ...chosen.map((run) => {
        const result = (run.job_metadata || {}).result || {};
        const s = timed.includes(run) ? speedup(run) : null;
        return el(
          "tr",
          {},
          el("td", {}, el("a", { href: `/runs/${run.id}` }, `#${run.id}`)),
          el("td", {}, run.name),
          el("td", { class: "num" }, run.num_workers),
          el("td", {}, limitsText(run)),
          el("td", {}, result.target_reached === undefined ? "—" : result.target_reached ? "yes" : "no"),
          el("td", { class: "num" }, formatDuration(result.time_to_accuracy_s)),
          el("td", { class: "num" }, formatDuration(result.total_time_s)),
          el("td", { class: "num" }, s === null ? "—" : `${s.toFixed(2)}×`),
        );
      }),
    );
  }

  api("/api/runs/").then((list) => {
    runs = list;
    document.getElementById("compare-empty").hidden = runs.length > 0;
    document.getElementById("compare-form").hidden = runs.length === 0;
    const preselect = new URLSearchParams(window.location.search).getAll("run").map(Number);
    choices.replaceChildren(
      ...runs.map((run, i) =>
        el(
          "label",
          { class: "choice" },
          el("input", {
            type: "checkbox",
            value: run.id,
            checked: preselect.length ? preselect.includes(run.id) : i < 2,
            onchange: draw,
          }),
          ` #${run.id} ${run.name} — ${workers(run.num_workers)}, ${limitsText(run)}, ${run.state}`,
        ),
      ),
    );
    draw();
  });
  metricSelect.addEventListener("change", draw);
  xSelect.addEventListener("change", draw);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const node of document.querySelectorAll("#zone")) node.textContent = ZONE;
  const init = { overview: initOverview, runs: initRuns, run: initRun, compare: initCompare };
  const page = init[document.body.dataset.page];
  if (page) page();
});
