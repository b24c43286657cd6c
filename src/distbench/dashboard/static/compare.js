// distbench dashboard, Compare: overlay a metric, speedup and time to accuracy. Needs common.js
// and charts.js.
"use strict";

function workers(n) {
  return `${n} worker${n === 1 ? "" : "s"}`;
}

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
      const label = plotText(`#${run.id} ${run.name} (${workers(run.num_workers)})`);
      if (!series) return { x: [], y: [], name: label };
      // Workers may date a point a moment before the server marks the run started: the clock
      // starts at whichever came first, so no run begins at a negative second.
      const first = new Date(series.dates[0]).getTime();
      const start = Math.min(run.started_at ? new Date(run.started_at).getTime() : first, first);
      const x = byEpoch ? series.epochs : series.dates.map((d) => (new Date(d) - start) / 1000);
      return { x, y: series.values, name: label, mode: "lines+markers" };
    });
    plot(document.getElementById("overlay"), traces, {
      title: { text: plotText(`${metric} by run`) },
      xaxis: { title: { text: byEpoch ? "epoch" : "seconds since the run started (s)" } },
      yaxis: { title: { text: plotText(metricAxis(metric)) } },
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
        // Short enough for a phone's width; the colours are explained under the bars.
        title: { text: "Time to accuracy" },
        xaxis: { title: { text: "run (workers) · grey: not reached, total time" }, type: "category" },
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

document.addEventListener("DOMContentLoaded", initCompare);
