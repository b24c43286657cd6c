// distbench dashboard, Run: configuration, live metrics, result, logs. Needs common.js and
// charts.js.
"use strict";

function definitionList(node, rows) {
  node.replaceChildren(...rows.flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, value)]));
}

// Options show as given (what to type again); a result's numbers by their unit.
function keyValues(object, format = (_, value) => String(value)) {
  const entries = Object.entries(object);
  if (!entries.length) return "—";
  return el(
    "ul",
    { class: "kv" },
    entries.map(([key, value]) =>
      el(
        "li",
        {},
        el("code", {}, key),
        ": ",
        value !== null && typeof value === "object" ? JSON.stringify(value) : format(key, value),
      ),
    ),
  );
}

function resultRows(result) {
  return Object.entries(result)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => [
      valueLabel(key),
      typeof value === "object" ? keyValues(value, formatValue) : formatValue(key, value),
    ]);
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
    if (series.values.length === 1) {
      // One point (time_to_accuracy_s is posted once) is a number, not a chart of one dot.
      node.className = "chart stat";
      node.replaceChildren(
        el("span", { class: "stat-name" }, name),
        el("span", { class: "stat-value" }, formatValue(name, series.values[0])),
      );
      return;
    }
    if (node.classList.contains("stat")) {
      node.className = "chart";
      node.replaceChildren();
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
    const mode = x.length > 60 ? "lines" : "lines+markers";
    plot(node, [{ x, y, name: plotText(name), mode }], {
      title: { text: plotText(name) },
      xaxis,
      yaxis: { title: { text: plotText(metricAxis(name)) } },
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

document.addEventListener("DOMContentLoaded", initRun);
