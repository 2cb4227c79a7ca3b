// AI Factory dashboard: plain JavaScript, no build step, nothing loaded from elsewhere.
// The API key lives in sessionStorage only (gone when the tab closes) and goes out as x-api-key.
"use strict";

const KEY = "aifactory.apiKey";
const V15 = "/api/v1.5.0";
const POLL_MS = 1500;
const LOG_PAGE = 200;
const ACTIVE = new Set(["Pending", "InProgress", "Stopping", "initializing", "initialized", "running"]);

const $ = (id) => document.getElementById(id);
const state = {
  jobs: new Map(), // "<api>:<id>" -> {api, id, task, status, progress, created}
  opened: new Set(), // v1.5 job ids opened by hand (shown even without the list route)
  v15List: true, // false once the server says it has no GET /api/v1.5.0/train
  selected: null,
  losses: [], // the selected job's loss points
  lrs: [], // [x, learning rate] samples of the selected job
  aifLoss: new Map(), // AI Factory: step -> loss, from /status progress
  logOffset: 0,
  logs: true,
  timer: null,
  busy: false,
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ------------------------------------------------------------------ HTTP

// A 503 with Retry-After is the API's "still being computed" (its synchronous budget,
// docs/contracts.md): the same request is sent again after the wait, a few times.
const RETRIES = 5;

async function api(method, path, body, retried = 0) {
  const headers = { "x-api-key": sessionStorage.getItem(KEY) || "", Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch (_) {
    /* text/plain bodies stay text */
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  if (response.status === 503 && retryAfter > 0 && retried < RETRIES) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, 10) * 1000));
    return api(method, path, body, retried + 1);
  }
  if (!response.ok) {
    const message = (data && (data.message || data.Message)) || response.statusText;
    if (response.status === 403 && message === "Forbidden") signOut("The API key was refused.");
    throw new ApiError(response.status, message);
  }
  return data;
}

// A route this server does not have: 403 "Missing Authentication Token", 404, 405.
const missing = (error) =>
  error instanceof ApiError &&
  (error.status === 404 || error.status === 405 || (error.status === 403 && /Missing Authentication/.test(error.message)));

// ------------------------------------------------------------------ sign in

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearTimeout(state.timer);
  $("app").hidden = true;
  $("logout-button").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

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
  poll();
}

// ------------------------------------------------------------------ jobs list

async function loadAiFactoryJobs() {
  const jobs = await api("POST", "/check_trained_job", {});
  for (const job of jobs) {
    const key = `aif:${job.TrainingJobName}`;
    const known = state.jobs.get(key) || {};
    const entry = { ...known, api: "aif", id: job.TrainingJobName, task: known.task || "text", status: job.TrainingJobStatus, created: job.CreationTime };
    if (ACTIVE.has(entry.status) || !known.progress) {
      try {
        const status = await api("POST", "/status", { job_name: entry.id });
        entry.status = status.status;
        entry.message = status.message || "";
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
    if (ACTIVE.has(entry.status) || !known.monitor || !entry.status) {
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
    const body = await api("GET", `${V15}/deploy/list`);
    const rows = (body.deployments || []).map((d) => [d.job_id, d.epoch, d.target_device_id === -1 ? "CPU" : `GPU ${d.target_device_id}`]);
    fillTable($("deployments"), rows);
    $("deployments-panel").hidden = false;
  } catch (error) {
    if (!missing(error)) throw error;
    $("deployments-panel").hidden = true;
  }
}

function renderJobs() {
  const body = $("jobs").tBodies[0];
  const jobs = [...state.jobs.entries()].sort((a, b) => String(b[1].created).localeCompare(String(a[1].created)));
  body.replaceChildren(
    ...jobs.map(([key, job]) => {
      const row = document.createElement("tr");
      row.dataset.jobKey = key;
      row.dataset.status = job.status || "";
      if (key === state.selected) row.classList.add("selected");
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
      row.append(el("td", job.api === "aif" ? "AI Factory" : "v1.5"), name, el("td", job.task), wrap(status), progress, el("td", job.created || ""));
      row.addEventListener("click", () => select(key));
      return row;
    }),
  );
}

// ------------------------------------------------------------------ one job

function select(key) {
  if (state.selected === key) return;
  state.selected = key;
  state.losses = [];
  state.lrs = [];
  state.aifLoss = new Map();
  restartLogs();
  state.logs = true;
  $("checkpoint-detail").hidden = true;
  fillTable($("checkpoints"), []);
  $("job").hidden = false;
  renderJobs();
  poll();
}

async function refreshJob() {
  const job = state.jobs.get(state.selected);
  if (!job) return;
  $("job-title").textContent = `${job.api === "aif" ? "AI Factory" : "v1.5"} job ${job.id}`;
  $("job-status").textContent = job.status || "";
  $("job-status").className = `status ${job.status || ""}`;
  $("job-progress").textContent = job.progress ? job.progress.text : "";
  $("job-message").textContent = job.message || (job.monitor && job.monitor.exception ? job.monitor.exception.message : "");
  $("stop-button").disabled = !ACTIVE.has(job.status);
  $("restore-button").hidden = job.api !== "v15";
  $("restore-button").disabled = job.status !== "stopped";
  if (job.api === "v15") {
    state.losses = (await api("GET", `${V15}/train/${encodeURIComponent(job.id)}/losses`)).losses || [];
    const m = job.monitor;
    if (m && m.learning_rate > 0) addSample(state.lrs, m.epoch - 1 + (m.total_batch ? m.batch / m.total_batch : 0), m.learning_rate);
    $("lr-value").textContent = m && m.learning_rate > 0 ? m.learning_rate.toPrecision(3) : "";
    await refreshCheckpoints(job);
  } else if (job.last) {
    if (job.last.loss >= 0) state.aifLoss.set(job.last.step, job.last.loss);
    state.losses = [...state.aifLoss.entries()].sort((a, b) => a[0] - b[0]).map((p) => p[1]);
    if (job.last.learning_rate > 0) addSample(state.lrs, job.last.step, job.last.learning_rate);
    $("lr-value").textContent = job.last.learning_rate > 0 ? job.last.learning_rate.toPrecision(3) : "";
  }
  drawChart($("loss-chart"), state.losses.map((y, i) => [i + 1, y]));
  drawChart($("lr-chart"), state.lrs);
  await tailLogs(job);
}

function addSample(samples, x, y) {
  const last = samples[samples.length - 1];
  if (!last || last[0] !== x) samples.push([x, y]);
}

async function refreshCheckpoints(job) {
  const body = await api("GET", `${V15}/train/${encodeURIComponent(job.id)}/checkpoints`);
  const table = $("checkpoints");
  const rows = (body.checkpoints || []).map((c) => {
    const score = c.accuracy !== undefined ? `accuracy ${fmt(c.accuracy)}` : `mean AP ${fmt(c.mean_ap)}`;
    const button = el("button", "Plots");
    button.type = "button";
    button.dataset.epoch = c.epoch;
    button.addEventListener("click", () => showCheckpoint(job, c.epoch));
    return [c.epoch, fmt(c.avg_loss), score, c.is_best ? "best" : "", c.is_available ? "kept" : "pruned", button];
  });
  fillTable(table, rows);
}

async function showCheckpoint(job, epoch) {
  const body = await api("GET", `${V15}/train/${encodeURIComponent(job.id)}/checkpoints/epoch/${epoch}`);
  const c = body.checkpoint;
  $("checkpoint-title").textContent = `Epoch ${c.epoch}${c.is_best ? " (best)" : ""}: average loss ${fmt(c.avg_loss)}`;
  const rows = Object.entries((c.metrics && c.metrics.overall) || {}).map(([k, v]) => [k, fmt(v)]);
  const specific = (c.metrics && c.metrics.specific) || {};
  for (const [k, v] of Object.entries(specific)) if (k !== "categories" && Array.isArray(v)) rows.push([k, v.map((x, i) => `${(specific.categories || [])[i] ?? i}: ${fmt(x)}`).join(", ")]);
  fillTable($("checkpoint-metrics"), rows);
  const plot = $("metric-plot");
  plot.hidden = !c.base64_metric_plot;
  if (c.base64_metric_plot) plot.src = `data:image/jpeg;base64,${c.base64_metric_plot}`;
  $("checkpoint-detail").hidden = false;
}

// The log from its first line again: a new job, or #metric lines shown or hidden. Offsets
// count every line of the log, metric lines included, so a page asked for before the
// restart (`logRun` changed) is dropped rather than appended.
function restartLogs() {
  state.logRun = (state.logRun || 0) + 1;
  state.logOffset = 0;
  $("logs").textContent = "";
}

async function tailLogs(job) {
  if (!state.logs) return;
  const run = state.logRun;
  // #metric lines are for SageMaker's metric regexes: shown only when asked for.
  const metrics = $("log-metrics").checked;
  let page;
  try {
    page =
      job.api === "v15"
        ? await api(
            "GET",
            `${V15}/train/${encodeURIComponent(job.id)}/logs?offset=${state.logOffset}&limit=${LOG_PAGE}` +
              (metrics ? "&metrics=true" : ""),
          )
        : await api("POST", "/logs", {
            job_name: job.id,
            offset: state.logOffset,
            limit: LOG_PAGE,
            ...(metrics ? { metrics: true } : {}),
          });
  } catch (error) {
    if (missing(error) && !/not found/i.test(error.message)) {
      state.logs = false;
      $("logs").textContent = "This server does not serve logs yet.";
      return;
    }
    throw error;
  }
  if (run !== state.logRun) return;
  if (page.lines && page.lines.length) {
    const box = $("logs");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(page.lines.join("\n") + "\n");
    if (atBottom) box.scrollTop = box.scrollHeight;
  }
  state.logOffset = page.next_offset ?? state.logOffset;
}

async function stopJob() {
  const job = state.jobs.get(state.selected);
  if (!job) return;
  $("stop-button").disabled = true;
  try {
    if (job.api === "v15") await api("PATCH", `${V15}/train/${encodeURIComponent(job.id)}`);
    else await api("POST", "/stop_training_job", { job_name: job.id });
    $("job-message").textContent = "Stop requested.";
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

async function restoreJob() {
  const job = state.jobs.get(state.selected);
  if (!job || job.api !== "v15") return;
  $("restore-button").disabled = true;
  try {
    await api("PUT", `${V15}/train/${encodeURIComponent(job.id)}`);
    $("job-message").textContent = "Restore requested.";
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

// ------------------------------------------------------------------ drawing

const SVG = "http://www.w3.org/2000/svg";

function drawChart(svg, points) {
  const [w, h, pad] = [480, 200, 36];
  svg.replaceChildren();
  svg.dataset.points = String(points.length);
  const axis = svgEl("path", { class: "axis", d: `M${pad},${pad / 2} V${h - pad} H${w - 8}` });
  svg.append(axis);
  if (!points.length) {
    svg.append(svgEl("text", { x: w / 2 - 40, y: h / 2 }, "no data yet"));
    return;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1e-9 - Math.abs(y0) * 0.1, y1 + 1e-9 + Math.abs(y1) * 0.1];
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (w - pad - 12);
  const sy = (y) => h - pad - ((y - y0) / (y1 - y0)) * (h - pad * 1.5);
  const line = points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
  svg.append(
    svgEl("polyline", { class: "line", points: points.length === 1 ? `${line} ${(sx(x0) + 4).toFixed(1)},${sy(ys[0]).toFixed(1)}` : line }),
    svgEl("text", { x: 2, y: pad / 2 + 4 }, fmt(y1)),
    svgEl("text", { x: 2, y: h - pad }, fmt(y0)),
    svgEl("text", { x: pad, y: h - pad + 16 }, fmt(x0)),
    svgEl("text", { x: w - 40, y: h - pad + 16 }, fmt(x1)),
  );
}

function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function el(name, text, className) {
  const node = document.createElement(name);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function wrap(child) {
  const td = document.createElement("td");
  td.append(child);
  return td;
}

function fillTable(table, rows) {
  table.tBodies[0].replaceChildren(
    ...rows.map((cells) => {
      const row = document.createElement("tr");
      row.append(...cells.map((cell) => (cell instanceof Node ? wrap(cell) : el("td", cell))));
      return row;
    }),
  );
}

function fmt(value) {
  if (typeof value !== "number") return String(value ?? "");
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) < 1e-3 ? value.toExponential(2) : value.toFixed(4);
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
      if (state.selected) await refreshJob();
      document.body.dataset.polled = String(Number(document.body.dataset.polled || 0) + 1);
    } catch (error) {
      $("jobs-note").textContent = `Refresh failed: ${error.message}`;
    } finally {
      state.busy = false;
    }
  }
  if (sessionStorage.getItem(KEY)) state.timer = setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("api-key").value.trim());
  });
  $("logout-button").addEventListener("click", () => signOut(""));
  $("open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("open-job-id").value.trim();
    if (!id) return;
    state.opened.add(id);
    $("open-job-id").value = "";
    poll().then(() => state.jobs.has(`v15:${id}`) && select(`v15:${id}`));
  });
  $("stop-button").addEventListener("click", stopJob);
  $("log-metrics").addEventListener("change", restartLogs); // the next refresh reads from line 0
  $("restore-button").addEventListener("click", restoreJob);
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key);
  else signOut("");
});
