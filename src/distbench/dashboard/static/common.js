// distbench dashboard, shared by every page: DOM building, the API client (with the server
// token), formatting, polling. Each page loads this, then its own script (overview.js, runs.js,
// run.js, compare.js); the pages with charts also load plotly.min.js and charts.js. All are
// classic deferred scripts, run in order, sharing top-level names. Times come as UTC ("...Z") and
// are shown in the viewer's zone.
"use strict";

const POLL_MS = 2000;
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
// Runs not ended yet: their pages keep polling and offer Abort. A QUEUED run waits its turn
// behind the active one; aborting it means it never starts.
const ACTIVE = new Set(["QUEUED", "INITIALIZED", "STARTED"]);

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

// -- the server token ----------------------------------------------------------------------------
// Writes need it, and so do reads on a server started with --protect-reads. It is kept in this
// tab's sessionStorage only (gone when the tab closes) and sent as a header, never in a URL.
const TOKEN_KEY = "distbench-token";
localStorage.removeItem(TOKEN_KEY); // where earlier versions kept it, beyond the tab's life

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function saveToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function authHeaders() {
  return token() ? { Authorization: `Bearer ${token()}` } : {};
}

// A read refused for want of the token: ask for it once, above the page, then load the page
// again with it.
function askForToken(message) {
  if (document.getElementById("token-prompt")) return;
  const input = el("input", {
    type: "password",
    id: "token-prompt-input",
    autocomplete: "off",
    required: true,
  });
  const form = el(
    "form",
    { id: "token-prompt", class: "error" },
    el("p", {}, message),
    el("label", {}, "Server token ", input),
    " ",
    el("button", { type: "submit" }, "Use token"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveToken(input.value.trim());
    window.location.reload();
  });
  document.querySelector("main").prepend(form);
  input.focus();
}

function isRead(options) {
  const method = ((options && options.method) || "GET").toUpperCase();
  return method === "GET" || method === "HEAD";
}

async function api(path, options) {
  const headers = {
    Accept: "application/json",
    ...authHeaders(),
    ...((options && options.headers) || {}),
  };
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
    if ((response.status === 401 || response.status === 403) && isRead(options)) {
      // Without the token the page can show nothing: it waits (this read never settles, so no
      // page script goes on to fail) until the token is given and the page loaded again.
      askForToken(`${error.message}.`);
      return new Promise(() => {});
    }
    throw error;
  }
  return body;
}

// Links into the API (the exports) cannot carry the header: with a token, fetch the file and
// hand it to the browser as a download.
async function downloadWithToken(link) {
  const response = await fetch(link.href, { headers: authHeaders() });
  if (!response.ok) {
    if (response.status === 401 || response.status === 403) {
      askForToken(`${response.status}: the server refused the token.`);
    }
    return;
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = /filename="?([^";]+)"?/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const save = el("a", { href: url, download: named ? named[1] : "" });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[href^='/api/']") : null;
  if (!link || !token()) return;
  event.preventDefault();
  downloadWithToken(link).catch((error) => console.error(error));
});

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
  // Under a second (a step's compute time) "0.0 s" would say nothing: milliseconds instead.
  if (seconds > 0 && seconds < 1) return `${significant(seconds * 1000)} ms`;
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

// -- numbers by their unit -----------------------------------------------------------------------
// A metric's unit is in its name (STYLE: `_s`, `_per_s`, `_mbit`, `_bytes`, `_share`, accuracy),
// so every number the pages show goes through formatValue, never through String(): a loss reads
// "0.1329", not 0.13293325837820727, and samples_per_s is a rate, not a duration.
function significant(value, digits = 4) {
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return Number(value.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 20 });
}

function formatBandwidth(mbit) {
  return mbit >= 1000 ? `${significant(mbit / 1000, 3)} Gbit/s` : `${significant(mbit, 3)} Mbit/s`;
}

function formatBytes(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${significant(value, 3)} ${units[unit]}`;
}

function formatValue(key, value) {
  if (value === null || value === undefined) return "none";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value !== "number") return String(value);
  if (key.endsWith("_per_s")) return `${significant(value, 5)} ${key.replace(/_per_s$/, "").replaceAll("_", " ")}/s`;
  if (key.endsWith("_s")) return formatDuration(value);
  if (key.endsWith("_mbit")) return formatBandwidth(value);
  if (key.endsWith("_bytes")) return formatBytes(value);
  if (key.endsWith("_share") || key.includes("accuracy")) return pct(value);
  return significant(value);
}

// The label of a key whose value formatValue gives with its unit: "_s" and "_mbit" leave it.
function valueLabel(key) {
  return key.replace(/_(per_s|s|mbit|bytes)$/, (_, unit) => (unit === "per_s" ? " per second" : ""))
    .replaceAll("_", " ");
}

// A run's outcome in one line, for the lists of runs (the Runs page, the overview).
function resultText(run) {
  const meta = run.job_metadata || {};
  const result = meta.result;
  if (run.state === "FAILED" && meta.error) return `failed: ${meta.error}`;
  if (!result && run.state === "QUEUED") return "queued…";
  if (!result) return ACTIVE.has(run.state) ? "running…" : "—";
  if (result.target_reached) {
    return `${pct(result.target_accuracy)} reached in ${formatDuration(result.time_to_accuracy_s)}`;
  }
  if (result.target_accuracy !== undefined && result.target_accuracy !== null) {
    return `${pct(result.target_accuracy)} not reached`;
  }
  return result.state || run.state;
}

// A run's headline numbers, those a result has: what training reached and how fast it went,
// or what a collective measured.
function headlineText(result) {
  const labels = {
    final_val_accuracy: "accuracy ",
    samples_per_s: "",
    bus_bandwidth_mbit: "bus bandwidth ",
    total_time_s: "took ",
  };
  return Object.entries(labels)
    .filter(([key]) => typeof (result || {})[key] === "number")
    .map(([key, label]) => `${label}${formatValue(key, result[key])}`)
    .join(" · ");
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
