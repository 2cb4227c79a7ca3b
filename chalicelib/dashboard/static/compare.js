// Compare runs (MLflow's compare view): the ticked v1.5 jobs' loss and validation-metric
// curves overlaid, and a table of the hyper-parameters that differ between them with each
// run's best metric and its epoch.

import { $, el, fillHead, fillTable, fmt } from "./dom.js";
import { drawChart, legend } from "./charts.js";
import { api, jobPath, state } from "./http.js";
import { headline } from "./job.js";

const short = (id) => (id.length > 22 ? `${id.slice(0, 14)}…${id.slice(-6)}` : id);

async function runOf(job) {
  const [losses, checkpoints, params] = await Promise.all([
    api("GET", `${jobPath(job.id)}/losses`),
    api("GET", `${jobPath(job.id)}/checkpoints`),
    api("GET", `${jobPath(job.id)}/hyper-parameters`),
  ]);
  const metric = headline(job.task);
  const points = (checkpoints.checkpoints || []).map((c) => [c.epoch, c[metric]]);
  const best = (checkpoints.checkpoints || []).find((c) => c.is_best);
  return {
    job,
    name: short(job.id),
    metric,
    losses: (losses.losses || []).map((y, i) => [i + 1, y]),
    scores: points,
    best,
    params: params["hyper-parameters"] || {},
  };
}

const show = (value) => (value === undefined ? "—" : typeof value === "object" ? JSON.stringify(value) : fmt(value));

export async function openCompare() {
  const jobs = [...state.compare].map((key) => state.jobs.get(key)).filter((job) => job && job.api === "v15");
  $("compare").hidden = false;
  $("job").hidden = true;
  $("launch").hidden = true;
  $("compare-note").textContent = jobs.length < 2 ? "Tick two or more v1.5 jobs in the list to compare them." : "";
  const runs = await Promise.all(jobs.map(runOf));
  const names = runs.map((r) => r.name);
  legend($("compare-legend"), names);
  const drawLoss = () =>
    drawChart($("compare-loss"), runs.map((r) => ({ name: r.name, points: r.losses })), {
      x: "report (every num_batches_to_display batches)",
      y: "training loss",
      smoothing: $("compare-smoothing").value,
    });
  drawLoss();
  $("compare-smoothing").oninput = drawLoss;
  const metrics = [...new Set(runs.map((r) => r.metric))];
  drawChart($("compare-metric"), runs.map((r) => ({ name: r.name, points: r.scores })), { x: "epoch", y: `validation ${metrics.join(" / ")}` });
  renderTable(runs);
  $("compare").dataset.runs = String(runs.length);
}

export function renderTable(runs) {
  const table = $("compare-table");
  fillHead(table, ["", ...runs.map((r) => r.job.id)]);
  const all = $("compare-all").checked;
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.params)))];
  const differs = (name) => new Set(runs.map((r) => JSON.stringify(r.params[name]))).size > 1;
  const rows = [
    { cells: ["task", ...runs.map((r) => r.job.task)], data: { row: "task" } },
    { cells: ["status", ...runs.map((r) => r.job.status || "")], data: { row: "status" } },
    {
      cells: ["best metric", ...runs.map((r) => (r.best ? `${r.metric} ${fmt(r.best[r.metric])} (epoch ${r.best.epoch})` : "—"))],
      data: { row: "best" },
      className: "best",
    },
  ];
  for (const name of names) {
    if (!all && !differs(name)) continue;
    rows.push({ cells: [name, ...runs.map((r) => show(r.params[name]))], data: { param: name }, className: differs(name) ? "differs" : "" });
  }
  if (runs.length > 1 && !names.some(differs)) rows.push([el("em", "no hyper-parameter differs"), ...runs.map(() => "")]);
  fillTable(table, rows);
  table.dataset.runs = JSON.stringify(runs.map((r) => r.job.id));
  $("compare-all").onchange = () => renderTable(runs);
}
