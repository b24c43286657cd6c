// distbench dashboard, Runs: the list and the start form. Needs common.js.
"use strict";

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
      queue: data.get("queue") === "on",
    };
    if (tokenInput.value) saveToken(tokenInput.value.trim());
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

document.addEventListener("DOMContentLoaded", initRuns);
