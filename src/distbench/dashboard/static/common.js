// distbench dashboard, shared by every page: DOM building, the API client (with the server
// token), formatting, polling. Each page loads this, then its own script (overview.js, runs.js,
// run.js, compare.js); the pages with charts also load plotly.min.js and charts.js. All are
// classic deferred scripts, run in order, sharing top-level names. Times come as UTC ("...Z") and
// are shown in the viewer's zone.
"use strict";

const POLL_MS = 2000;
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

document.addEventListener("DOMContentLoaded", () => {
  for (const node of document.querySelectorAll("#zone")) node.textContent = ZONE;
});
