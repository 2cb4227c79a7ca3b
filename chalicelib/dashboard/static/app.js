// AI Factory dashboard: plain JavaScript modules, no build step, nothing loaded from elsewhere.
// This file signs in, lists both APIs' jobs and the deployments, and refreshes the open view;
// job.js, compare.js and launch.js draw the views.

import { $, button, el, fillTable, wrap } from "./dom.js";
import { ACTIVE, KEY, V15, api, apiForm, missing, state, whenRefused } from "./http.js";
import { downloadModel, drawLoss, infer, loadThreshold, redrawLossPlot, refreshJob, restartLogs, restoreJob, select, stopJob } from "./job.js";
import { openCompare } from "./compare.js";
import { buildForm, openLaunch, submitLaunch } from "./launch.js";

const POLL_MS = 1500;

// ------------------------------------------------------------------ sign in

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearTimeout(state.timer);
  $("app").hidden = true;
  $("logout-button").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}
whenRefused(signOut);

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    const version = await api("GET", "/api/version");
    $("server-version").textContent = `v1.5 API ${version}`;
  } catch (error) {
    signOut(error.status === 403 ? "The API key was refused." : `Cannot reach the API: ${error.message}`);
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout-button").hidden = false;
  // A link to one job (`#v15:<job_id>`, `#aif:<job_name>`, the address a job's view sets)
  // opens it once the list has it.
  const linked = decodeURIComponent(location.hash.slice(1));
  if (/^(v15|aif):./.test(linked)) {
    state.linked = linked;
    if (linked.startsWith("v15:")) state.opened.add(linked.slice(4));
  }
  loadDevices();
  poll();
}

// ------------------------------------------------------------------ jobs list

async function loadAiFactoryJobs() {
  const jobs = await api("POST", "/check_trained_job", {});
  for (const job of jobs) {
    const key = `aif:${job.TrainingJobName}`;
    const known = state.jobs.get(key) || {};
    const entry = { ...known, api: "aif", id: job.TrainingJobName, task: known.task || "text", status: job.TrainingJobStatus, created: job.CreationTime, callback: job.callback };
    if (ACTIVE.has(entry.status) || !known.progress) {
      try {
        const status = await api("POST", "/status", { job_name: entry.id });
        entry.status = status.status;
        entry.message = status.message || "";
        entry.callback = status.callback || entry.callback;
        const p = status.progress;
        entry.progress = p && p.total_steps ? { done: p.step, total: p.total_steps, text: `step ${p.step}/${p.total_steps}` } : entry.progress;
        if (p) entry.last = p;
      } catch (_) {
        /* the list entry still shows */
      }
    }
    state.jobs.set(key, entry);
  }
}

async function loadV15Jobs() {
  let listed = [];
  if (state.v15List) {
    try {
      listed = (await api("GET", `${V15}/train`)).jobs || [];
    } catch (error) {
      if (!missing(error)) throw error;
      state.v15List = false;
    }
  }
  $("jobs-note").textContent = state.v15List ? "" : "This server cannot list v1.5 jobs: open one by its id.";
  const ids = new Map(listed.map((job) => [job.job_id, job]));
  for (const id of state.opened) if (!ids.has(id)) ids.set(id, { job_id: id });
  for (const [id, job] of ids) {
    const key = `v15:${id}`;
    const known = state.jobs.get(key) || {};
    const entry = { ...known, api: "v15", id, task: job.task || known.task || "", status: job.status || known.status, created: job.created_at || known.created || "" };
    if (ACTIVE.has(entry.status) || !known.monitor || !entry.status || known.monitor.status !== entry.status) {
      try {
        const monitor = await api("GET", `${V15}/train/${encodeURIComponent(id)}`);
        entry.monitor = monitor;
        entry.status = monitor.status;
        const total = monitor.total_epoch * Math.max(monitor.total_batch, 1);
        const done = Math.max(monitor.epoch - 1, 0) * Math.max(monitor.total_batch, 1) + monitor.batch;
        entry.progress = { done: Math.min(done, total), total, text: `epoch ${monitor.epoch}/${monitor.total_epoch}, batch ${monitor.batch}/${monitor.total_batch}` };
        if (monitor.status === "finished") entry.progress = { done: 1, total: 1, text: `epoch ${monitor.epoch}/${monitor.total_epoch}` };
      } catch (error) {
        if (error.status === 404) {
          state.opened.delete(id);
          state.jobs.delete(key);
          continue;
        }
      }
    }
    state.jobs.set(key, entry);
  }
}

async function loadDeployments() {
  try {
    state.deployments = (await api("GET", `${V15}/deploy/list`)).deployments || [];
  } catch (error) {
    if (!missing(error)) throw error;
    $("deployments-panel").hidden = true;
    return;
  }
  fillTable(
    $("deployments"),
    state.deployments.map((d) => ({
      cells: [d.job_id, d.epoch, d.target_device_id === -1 ? "CPU" : `GPU ${d.target_device_id}`, d.status || "", d.memory || "", button("Undeploy", () => undeploy(d), { undeploy: `${d.job_id}:${d.epoch}` })],
      data: { deployment: `${d.job_id}:${d.epoch}` },
    })),
  );
  $("deployments-panel").hidden = !state.deployments.length;
}

async function undeploy(d) {
  try {
    await apiForm("DELETE", `${V15}/deploy/${encodeURIComponent(d.job_id)}`, { epoch: String(d.epoch), target_device_id: String(d.target_device_id) });
  } catch (error) {
    $("jobs-note").textContent = error.message;
  }
  poll();
}

async function loadDevices() {
  const options = [["CPU", "-1"]];
  try {
    for (const d of (await api("GET", `${V15}/devices`)).devices || []) options.push([`GPU ${d.id}: ${d.name}`, String(d.id)]);
  } catch (_) {
    /* CPU only */
  }
  $("deploy-device").replaceChildren(...options.map(([label, value]) => Object.assign(el("option", label), { value })));
}

/** The filter box: every word must appear in the job's API, id, task or status. */
function shown(job) {
  const words = $("jobs-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const text = `${job.api === "aif" ? "ai factory" : "v1.5"} ${job.id} ${job.task} ${job.status}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

function renderJobs() {
  const body = $("jobs").tBodies[0];
  const all = [...state.jobs.entries()].sort((a, b) => String(b[1].created).localeCompare(String(a[1].created)));
  const jobs = all.filter(([, job]) => shown(job));
  $("jobs").dataset.shown = `${jobs.length}/${all.length}`;
  if (jobs.length < all.length) $("jobs-note").textContent = `${jobs.length} of ${all.length} jobs match the filter.`;
  else if (/match the filter/.test($("jobs-note").textContent)) $("jobs-note").textContent = "";
  body.replaceChildren(
    ...jobs.map(([key, job]) => {
      const row = document.createElement("tr");
      row.dataset.jobKey = key;
      row.dataset.status = job.status || "";
      if (key === state.selected) row.classList.add("selected");
      const tick = el("input");
      tick.type = "checkbox";
      tick.className = "compare-tick";
      tick.checked = state.compare.has(key);
      tick.disabled = job.api !== "v15";
      tick.title = job.api === "v15" ? "compare this run" : "only v1.5 runs have curves to compare";
      tick.setAttribute("aria-label", `compare ${job.id}`);
      tick.addEventListener("click", (event) => {
        event.stopPropagation();
        if (tick.checked) state.compare.add(key);
        else state.compare.delete(key);
        $("compare-button").textContent = `Compare (${state.compare.size})`;
      });
      const status = el("span", job.status || "?", `status ${job.status || ""}`);
      const progress = el("td");
      if (job.progress) {
        const bar = document.createElement("progress");
        bar.max = job.progress.total || 1;
        bar.value = job.progress.done || 0;
        progress.append(bar, " ", job.progress.text);
      }
      const name = el("td", job.id);
      name.title = job.id;
      row.append(wrap(tick), el("td", job.api === "aif" ? "AI Factory" : "v1.5"), name, el("td", job.task), wrap(status), progress, el("td", job.created || ""));
      row.addEventListener("click", () => openJob(key));
      return row;
    }),
  );
}

function openJob(key) {
  history.replaceState(null, "", `#${encodeURIComponent(key)}`);
  $("compare").hidden = true;
  $("launch").hidden = true;
  select(key, () => {
    renderJobs();
    poll();
  });
  $("job").hidden = false;
}

// ------------------------------------------------------------------ loop

async function poll() {
  clearTimeout(state.timer);
  if (!sessionStorage.getItem(KEY)) return;
  if (!state.busy) {
    state.busy = true;
    try {
      await Promise.all([loadAiFactoryJobs(), loadV15Jobs(), loadDeployments()]);
      renderJobs();
      if (state.linked && state.jobs.has(state.linked)) {
        const key = state.linked;
        state.linked = null;
        openJob(key);
      }
      if (state.selected && !$("job").hidden) await refreshJob();
      const polled = Number(document.body.dataset.polled || 0) + 1;
      // An open compare view follows runs still training, every few refreshes.
      const training = [...state.compare].some((key) => ACTIVE.has((state.jobs.get(key) || {}).status));
      if (!$("compare").hidden && training && polled % 4 === 0) await openCompare();
      document.body.dataset.polled = String(polled);
    } catch (error) {
      $("jobs-note").textContent = `Refresh failed: ${error.message}`;
    } finally {
      state.busy = false;
    }
  }
  if (sessionStorage.getItem(KEY)) state.timer = setTimeout(poll, POLL_MS);
}

function on(id, event, handler) {
  $(id).addEventListener(event, (e) => {
    if (event === "submit") e.preventDefault();
    handler(e);
  });
}

function start() {
  on("login-form", "submit", () => signIn($("api-key").value.trim()));
  on("logout-button", "click", () => signOut(""));
  on("open-form", "submit", () => {
    const id = $("open-job-id").value.trim();
    if (!id) return;
    state.opened.add(id);
    $("open-job-id").value = "";
    poll().then(() => state.jobs.has(`v15:${id}`) && openJob(`v15:${id}`));
  });
  on("stop-button", "click", stopJob);
  on("model-download", "click", downloadModel);
  on("restore-button", "click", restoreJob);
  on("log-metrics", "change", restartLogs); // the next refresh reads from line 0
  on("threshold-class", "change", loadThreshold);
  on("loss-plot-redraw", "click", redrawLossPlot);
  on("infer-form", "submit", infer);
  on("compare-button", "click", () => openCompare().catch((error) => ($("compare-note").textContent = error.message)));
  on("compare-close", "click", () => ($("compare").hidden = true));
  on("launch-button", "click", () => openLaunch().catch((error) => ($("launch-error").textContent = error.message)));
  on("launch-close", "click", () => ($("launch").hidden = true));
  on("launch-task", "change", buildForm);
  on("jobs-filter", "input", renderJobs);
  on("loss-smoothing", "input", drawLoss);
  on("launch-form", "submit", () =>
    submitLaunch(({ api: which, id }) => {
      if (which === "v15") state.opened.add(id);
      poll().then(() => state.jobs.has(`${which}:${id}`) && openJob(`${which}:${id}`));
    }),
  );
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key);
  else signOut("");
}

// Module scripts run after the document is parsed.
start();
