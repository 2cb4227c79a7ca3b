// One job: status and ETA, the curves, hyper-parameters, checkpoints (metrics, best,
// kept/pruned, downloads, deploy), every plot the API draws, inference on an upload, logs.

import { $, bytes, button, duration, el, fillHead, fillTable, fmt, showImage } from "./dom.js";
import { drawChart } from "./charts.js";
import { ACTIVE, V15, api, apiForm, download, jobPath, missing, state } from "./http.js";

const LOG_PAGE = 200;
const view = {
  losses: [],
  lrs: [],
  aifLoss: new Map(),
  logOffset: 0,
  logRun: 0,
  logs: true,
  plotsFor: "", // "<key>|<terminal>": the job-level plots were asked for in this state
  checkpoints: [],
  epoch: null, // the checkpoint opened in the detail
  categories: [],
};

export const headline = (task) => (task === "classification" ? "accuracy" : "mean_ap");
const HEADLINE_LABEL = { accuracy: "accuracy (0-1)", mean_ap: "mean AP (0-1)" };

export function select(key, onSelected) {
  if (state.selected === key) return;
  state.selected = key;
  Object.assign(view, { losses: [], lossPoints: [], lrs: [], aifLoss: new Map(), logs: true, plotsFor: "", checkpoints: [], epoch: null });
  restartLogs();
  $("checkpoint-detail").hidden = true;
  fillTable($("checkpoints"), []);
  fillTable($("hyper-parameters"), []);
  for (const id of ["model-graph-plot", "loss-plot", "metric-plot", "confusion-plot", "threshold-plot"]) showImage($(id), null, $(`${id}-note`));
  fillTable($("checkpoint-metrics"), []);
  fillTable($("class-metrics"), []);
  $("infer-image").hidden = true;
  fillTable($("infer-result"), []);
  $("infer-error").textContent = "";
  $("job").hidden = false;
  const job = state.jobs.get(key);
  if (job) $("job-title").textContent = title(job); // at once, before the next refresh's requests
  if (onSelected) onSelected();
}

const title = (job) => `${job.api === "v15" ? "v1.5" : "AI Factory"} job ${job.id}`;

export async function refreshJob() {
  const job = state.jobs.get(state.selected);
  if (!job) return;
  const v15 = job.api === "v15";
  $("job-title").textContent = title(job);
  $("job-status").textContent = job.status || "";
  $("job-status").className = `status ${job.status || ""}`;
  $("job-progress").textContent = progressText(job);
  $("job-message").textContent = job.message || (job.monitor && job.monitor.exception ? job.monitor.exception.message : "");
  $("job-callback").textContent = callbackText(job.callback);
  $("stop-button").disabled = !ACTIVE.has(job.status);
  $("restore-button").hidden = !v15;
  $("restore-button").disabled = job.status !== "stopped";
  for (const id of ["v15-only", "job-v15", "plots-panel", "infer-panel"]) $(id).hidden = !v15;
  $("model-download").hidden = v15 || job.status !== "Completed";
  if (v15) {
    view.losses = (await api("GET", `${jobPath(job.id)}/losses`)).losses || [];
    const m = job.monitor;
    if (m && m.learning_rate > 0) addSample(view.lrs, m.epoch - 1 + (m.total_batch ? m.batch / m.total_batch : 0), m.learning_rate);
    $("lr-value").textContent = m && m.learning_rate > 0 ? m.learning_rate.toPrecision(3) : "";
    await refreshCheckpoints(job);
    if (!$("hyper-parameters").tBodies[0].rows.length) await loadHyperParameters(job);
    loadJobPlots(job);
    renderInferEpochs(job);
  } else if (job.last) {
    if (job.last.loss >= 0) view.aifLoss.set(job.last.step, job.last.loss);
    view.losses = [...view.aifLoss.entries()].sort((a, b) => a[0] - b[0]);
    if (job.last.learning_rate > 0) addSample(view.lrs, job.last.step, job.last.learning_rate);
    $("lr-value").textContent = job.last.learning_rate > 0 ? job.last.learning_rate.toPrecision(3) : "";
  }
  const lossPoints = v15 ? view.losses.map((y, i) => [i + 1, y]) : view.losses;
  view.lossPoints = lossPoints;
  drawLoss();
  drawChart($("lr-chart"), view.lrs, { x: v15 ? "epoch" : "step", y: "learning rate" });
  await tailLogs(job);
}

/** The loss curve, smoothed as the slider says (redrawn at once when it moves). */
export function drawLoss() {
  const job = state.jobs.get(state.selected);
  const v15 = !job || job.api === "v15";
  const smoothing = $("loss-smoothing").value;
  drawChart($("loss-chart"), view.lossPoints || [], { x: v15 ? "report (every num_batches_to_display batches)" : "step", y: "training loss", smoothing });
}

function progressText(job) {
  const parts = [job.progress ? job.progress.text : ""];
  const m = job.monitor;
  const p = job.last;
  if (m && ACTIVE.has(job.status)) {
    if (m.avg_loss > 0) parts.push(`loss ${fmt(m.avg_loss)}`);
    if (m.samples_per_sec > 0) parts.push(`${m.samples_per_sec.toFixed(1)} images/s`);
    if (m.eta_hr > 0) parts.push(`ETA ${duration(m.eta_hr)}`);
    if (m.phase) parts.push(m.phase);
  } else if (p && job.api === "aif") {
    if (p.loss >= 0) parts.push(`loss ${fmt(p.loss)}`);
    if (p.samples_per_sec > 0) parts.push(`${p.samples_per_sec.toFixed(1)} samples/s`);
    if (ACTIVE.has(job.status) && p.eta_hr > 0) parts.push(`ETA ${duration(p.eta_hr)}`);
  }
  if (m && m.billable_seconds) parts.push(`${m.billable_seconds} s billed`);
  return parts.filter(Boolean).join(" · ");
}

function callbackText(callback) {
  if (!callback) return "";
  const attempts = `${callback.attempts} attempt${callback.attempts === 1 ? "" : "s"}`;
  if (callback.status === "delivered") return `Callback delivered${callback.delivered_at ? ` at ${callback.delivered_at}` : ""} (${attempts}).`;
  const error = callback.last_error ? `: ${callback.last_error}` : "";
  const next = callback.next_attempt_at ? `; next try ${callback.next_attempt_at}` : "";
  return `Callback ${callback.status} after ${attempts}${error}${next}.`;
}

function addSample(samples, x, y) {
  const last = samples[samples.length - 1];
  if (!last || last[0] !== x) samples.push([x, y]);
}

async function loadHyperParameters(job) {
  try {
    const body = await api("GET", `${jobPath(job.id)}/hyper-parameters`);
    const params = body["hyper-parameters"] || {};
    fillTable($("hyper-parameters"), Object.entries(params).map(([k, v]) => ({ cells: [k, typeof v === "object" ? JSON.stringify(v) : fmt(v)], data: { param: k } })));
  } catch (error) {
    if (!missing(error)) throw error;
  }
}

async function refreshCheckpoints(job) {
  const body = await api("GET", `${jobPath(job.id)}/checkpoints`);
  view.checkpoints = body.checkpoints || [];
  const metric = headline(job.task);
  drawChart(
    $("metric-chart"),
    view.checkpoints.map((c) => [c.epoch, c[metric]]),
    { x: "epoch", y: `validation ${HEADLINE_LABEL[metric]}` },
  );
  $("disk-bytes").textContent = body.disk_bytes ? `the job holds ${bytes(body.disk_bytes)}` : "";
  const deployed = new Set(state.deployments.filter((d) => d.job_id === job.id).map((d) => d.epoch));
  const rows = view.checkpoints.map((c) => {
    const files = el("span", undefined, "downloads");
    if (c.is_available) {
      for (const [name, label] of [["model.safetensors", "weights"], ["model.json", "model.json"], ["metrics.json", "metrics.json"]]) {
        files.append(
          button(label, () => saveFile(job, c.epoch, name), { download: name }),
        );
      }
    }
    const actions = el("span", undefined, "row-actions");
    actions.append(button("Details", () => showCheckpoint(job, c.epoch), { epoch: c.epoch }));
    if (c.is_available) {
      const deploy = button(deployed.has(c.epoch) ? "Deployed" : "Deploy", () => deployCheckpoint(job, c.epoch, deploy), { deploy: c.epoch });
      deploy.disabled = deployed.has(c.epoch);
      actions.append(deploy);
    }
    return {
      cells: [c.epoch, fmt(c.avg_loss), `${metric === "accuracy" ? "accuracy" : "mean AP"} ${fmt(c[metric])}`, c.is_best ? "best" : "", c.is_available ? "kept" : "pruned", bytes(c.bytes), files, actions],
      data: { epoch: c.epoch },
      className: `${c.is_best ? "best" : ""} ${c.epoch === view.epoch ? "selected" : ""}`,
    };
  });
  fillTable($("checkpoints"), rows);
}

async function saveFile(job, epoch, name) {
  $("checkpoint-message").textContent = `Downloading ${name} of epoch ${epoch}…`;
  try {
    const saved = await download(
      `/dashboard/api/v15/${encodeURIComponent(job.id)}/checkpoints/${epoch}/${name}`,
      `${job.id}-epoch-${epoch}-${name}`,
      (done, total) => ($("checkpoint-message").textContent = `Downloading ${name} of epoch ${epoch}: ${bytes(done)} of ${bytes(total)}…`),
    );
    $("checkpoint-message").textContent = saved.url ? `Opening the link to ${name}.` : `Saved ${name} of epoch ${epoch} (${bytes(saved.bytes)}).`;
  } catch (error) {
    $("checkpoint-message").textContent = error.message;
  }
}

/** An AI Factory job's model.tar.gz: what the callback's `model` link serves, here with the key. */
export async function downloadModel() {
  const job = state.jobs.get(state.selected);
  if (!job || job.api !== "aif") return;
  $("job-message").textContent = "Downloading the model…";
  try {
    const saved = await download(`/dashboard/api/aif/${encodeURIComponent(job.id)}/model`, `${job.id}-model.tar.gz`);
    $("job-message").textContent = saved.url ? "Opening the model's link." : `Saved ${job.id}-model.tar.gz (${bytes(saved.bytes)}).`;
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

async function deployCheckpoint(job, epoch, node) {
  node.disabled = true;
  $("checkpoint-message").textContent = `Deploying epoch ${epoch}…`;
  try {
    await apiForm("POST", `${V15}/deploy/${encodeURIComponent(job.id)}`, { task: job.task, epoch: String(epoch), target_device_id: $("deploy-device").value });
    $("checkpoint-message").textContent = `Epoch ${epoch} deployed: infer on an image below.`;
    state.deployments.push({ job_id: job.id, epoch, target_device_id: Number($("deploy-device").value) });
    renderInferEpochs(job, epoch);
  } catch (error) {
    node.disabled = false;
    $("checkpoint-message").textContent = error.message;
  }
}

export async function showCheckpoint(job, epoch) {
  view.epoch = epoch;
  const body = await api("GET", `${jobPath(job.id)}/checkpoints/epoch/${epoch}`);
  const c = body.checkpoint;
  $("checkpoint-title").textContent = `Epoch ${c.epoch}${c.is_best ? " (best)" : ""}: average loss ${fmt(c.avg_loss)}`;
  fillTable($("checkpoint-metrics"), Object.entries((c.metrics && c.metrics.overall) || {}).map(([k, v]) => [k, fmt(v)]));
  const specific = (c.metrics && c.metrics.specific) || {};
  view.categories = specific.categories || [];
  const columns = Object.keys(specific).filter((k) => k !== "categories" && Array.isArray(specific[k]));
  fillHead($("class-metrics"), ["class", ...columns]);
  fillTable($("class-metrics"), view.categories.map((name, i) => [name, ...columns.map((k) => fmt(specific[k][i]))]));
  showImage($("metric-plot"), c.base64_metric_plot, $("metric-plot-note"));
  if (!c.base64_metric_plot) $("metric-plot-note").textContent = "The server drew no metric plot for this checkpoint.";
  const classSelect = $("threshold-class");
  classSelect.replaceChildren(...(view.categories.length ? view.categories : ["mean"]).map((name, i) => Object.assign(el("option", i ? `class ${i}: ${name}` : "mean of all classes"), { value: String(i) })));
  $("checkpoint-detail").hidden = false;
  await Promise.all([
    loadPlot($("confusion-plot"), `${jobPath(job.id)}/plots/confusion-matrix/epoch/${epoch}`, "base64_confusion_matrix_plot"),
    loadThreshold(),
  ]);
}

export function loadThreshold() {
  const job = state.jobs.get(state.selected);
  if (!job || view.epoch === null) return Promise.resolve();
  return loadPlot($("threshold-plot"), `${jobPath(job.id)}/plots/threshold/epoch/${view.epoch}/class/${$("threshold-class").value || 0}`, "base64_threshold_plot");
}

/** One plot route's JPEG into its <img>; the figure's note says why when the API refuses. */
async function loadPlot(img, path, field) {
  const note = $(`${img.id}-note`);
  img.dataset.state = "loading";
  if (note) note.textContent = "drawing…";
  try {
    const body = await api("GET", path);
    showImage(img, body[field], note);
    img.dataset.state = "loaded";
  } catch (error) {
    showImage(img, null);
    img.dataset.state = "error";
    if (note) note.textContent = error.message;
  }
}

/** The model graph and the server-drawn loss curve: asked for once on opening the job and
 * once more when it ends (the trainer writes the graph's numbers after building the model). */
function loadJobPlots(job) {
  const when = `${state.selected}|${ACTIVE.has(job.status) ? "active" : "ended"}`;
  if (view.plotsFor === when) return;
  view.plotsFor = when;
  loadPlot($("model-graph-plot"), `${jobPath(job.id)}/plots/model-graph`, "base64_model_graph_plot");
  loadPlot($("loss-plot"), `${jobPath(job.id)}/plots/loss`, "base64_loss_plot");
}

export function redrawLossPlot() {
  const job = state.jobs.get(state.selected);
  if (job && job.api === "v15") loadPlot($("loss-plot"), `${jobPath(job.id)}/plots/loss`, "base64_loss_plot");
}

// ------------------------------------------------------------------ inference

function renderInferEpochs(job, chosen) {
  const select = $("infer-epoch");
  const epochs = [...new Set(state.deployments.filter((d) => d.job_id === job.id).map((d) => d.epoch))].sort((a, b) => a - b);
  const current = chosen ?? (select.value ? Number(select.value) : undefined);
  if (select.dataset.epochs === epochs.join(",") && chosen === undefined) return;
  select.dataset.epochs = epochs.join(",");
  select.replaceChildren(...epochs.map((e) => Object.assign(el("option", `epoch ${e}`), { value: String(e) })));
  if (epochs.includes(current)) select.value = String(current);
  $("infer-button").disabled = !epochs.length;
  $("infer-hint").textContent = epochs.length ? "" : "Deploy a checkpoint (table above) to infer with it.";
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export async function infer() {
  const job = state.jobs.get(state.selected);
  const file = $("infer-file").files[0];
  $("infer-error").textContent = "";
  if (!job || !file) {
    $("infer-error").textContent = file ? "" : "Choose an image first.";
    return;
  }
  $("infer-button").disabled = true;
  try {
    const fields = { task: job.task, epoch: $("infer-epoch").value, base64_image: await readBase64(file), returns_images: "True" };
    let body;
    for (let tries = 0; ; tries += 1) {
      try {
        body = await apiForm("POST", `${V15}/infer/${encodeURIComponent(job.id)}`, fields);
        break;
      } catch (error) { // a deployment still starting answers 503 until its server is up
        if (error.status !== 503 || !/starting/.test(error.message) || tries > 30) throw error;
        $("infer-error").textContent = error.message;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
    $("infer-error").textContent = "";
    showImage($("infer-image"), (body.base64_images || [])[0]);
    $("infer-image").dataset.file = file.name;
    fillTable($("infer-result"), inferRows(job.task, body));
  } catch (error) {
    $("infer-error").textContent = error.message;
  } finally {
    $("infer-button").disabled = false;
  }
}

function inferRows(task, body) {
  const answer = body[task] || body.classification || body.detection || body.instance_segmentation || {};
  if (task === "classification") return [["category", answer.category], ["probability", fmt(answer.prob)]];
  const found = Array.isArray(answer) ? answer : answer.detections || answer.instances || [];
  if (!found.length) return [["objects", "none above the threshold"]];
  return found.map((d, i) => [`${i + 1}. ${d.category ?? d.name ?? ""}`, `${fmt(d.prob ?? d.score)} ${d.bbox ? JSON.stringify(d.bbox) : ""}`]);
}

// ------------------------------------------------------------------ logs, stop, restore

// The log from its first line again: a new job, or #metric lines shown or hidden. Offsets
// count every line of the log, metric lines included, so a page asked for before the
// restart (`logRun` changed) is dropped rather than appended.
export function restartLogs() {
  view.logRun += 1;
  view.logOffset = 0;
  $("logs").textContent = "";
}

async function tailLogs(job) {
  if (!view.logs) return;
  const run = view.logRun;
  // #metric lines are for SageMaker's metric regexes: shown only when asked for.
  const metrics = $("log-metrics").checked;
  let page;
  try {
    page =
      job.api === "v15"
        ? await api("GET", `${jobPath(job.id)}/logs?offset=${view.logOffset}&limit=${LOG_PAGE}${metrics ? "&metrics=true" : ""}`)
        : await api("POST", "/logs", { job_name: job.id, offset: view.logOffset, limit: LOG_PAGE, ...(metrics ? { metrics: true } : {}) });
  } catch (error) {
    if (missing(error) && !/not found/i.test(error.message)) {
      view.logs = false;
      $("logs").textContent = "This server does not serve logs yet.";
      return;
    }
    throw error;
  }
  if (run !== view.logRun) return;
  if (page.lines && page.lines.length) {
    const box = $("logs");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(page.lines.join("\n") + "\n");
    if (atBottom) box.scrollTop = box.scrollHeight;
  }
  view.logOffset = page.next_offset ?? view.logOffset;
}

export async function stopJob() {
  const job = state.jobs.get(state.selected);
  if (!job) return;
  $("stop-button").disabled = true;
  try {
    if (job.api === "v15") await api("PATCH", jobPath(job.id));
    else await api("POST", "/stop_training_job", { job_name: job.id });
    $("job-message").textContent = "Stop requested.";
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}

export async function restoreJob() {
  const job = state.jobs.get(state.selected);
  if (!job || job.api !== "v15") return;
  $("restore-button").disabled = true;
  try {
    await api("PUT", jobPath(job.id));
    $("job-message").textContent = "Restore requested.";
  } catch (error) {
    $("job-message").textContent = error.message;
  }
}
