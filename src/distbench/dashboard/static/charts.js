// distbench dashboard: series and Plotly.js charts, for the pages that draw them (overview, run,
// compare). Polls ask only for points newer than the ones already shown (`since`); first loads
// ask for a downsampled series (`max_points`). Needs common.js (ZONE) and plotly.min.js.
"use strict";

const FIRST_LOAD_POINTS = 500;
// Points may be stored a little after their date (workers batch them), so each poll asks again
// for a short overlap and drops what it already has, series by series.
const OVERLAP_MS = 10000;

const pad = (n, width = 2) => String(n).padStart(width, "0");

// "2024-05-01 14:03:09.120" in the viewer's zone: Plotly shows such strings as they are.
function localStamp(iso) {
  const d = new Date(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

// Plotly renders a subset of HTML in titles, legends, hover labels and text (<a href>, <b>,
// <br>...), and metric and run names come from whoever posts them: every name reaches a chart
// through this, so a metric named <a href="...">phish</a> shows as that text, never as a link.
// Plotly decodes these three entities back into the characters they stand for.
function plotText(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
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

// Plotly's toolbar (the modebar) sits in the chart's top right corner, where a centred title
// runs under it on any narrow chart: the title gets a row of its own below the toolbar's.
const TITLE = { yref: "container", y: 1, yanchor: "top", pad: { t: 34 } };
const BASE_LAYOUT = {
  margin: { l: 64, r: 16, t: 68, b: 48 },
  font: { family: "system-ui, sans-serif", size: 12 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#fff",
  // Above the plot, right: below it the legend would sit on the x axis title.
  legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
};
// Box and lasso select and the zoom buttons add nothing to a line chart that dragging and
// double-clicking do not; fewer buttons keep the toolbar short.
const PLOT_CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d"],
};

function plot(node, traces, layout) {
  if (!window.Plotly) return;
  const full = { ...BASE_LAYOUT, ...layout, title: { ...TITLE, ...(layout.title || {}) } };
  // Long tick labels ("12.1925k") push the axis title out rather than under themselves.
  full.xaxis = { automargin: true, ...(full.xaxis || {}) };
  full.yaxis = { automargin: true, ...(full.yaxis || {}) };
  if (full.showlegend !== false && traces.length > 1) {
    // The legend takes a row of its own between the title and the plot.
    full.margin = { ...full.margin, t: full.margin.t + 22 };
  }
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
