// "New job": a form built from the argument tables the API publishes in its OpenAPI document
// (components.schemas.V15Train<Task>Form, read from contracts/v15_arguments.py; AiFactoryCreate
// with AiFactoryHyperParameters, from contracts/text_hyperparameters.py), so a new argument
// appears here without a change to the page. Each field shows its default and allowed values;
// the API is the one judge of a value, and its 400 is shown beside the field it names.

import { $, el } from "./dom.js";
import { V15, api, apiForm } from "./http.js";

const TITLES = { classification: "Classification", detection: "Detection", instance_segmentation: "InstanceSegmentation" };
const TEXT_TASKS = new Set(["ml_tagger", "ml_topic"]);
// Shown first; the rest of the table sits under "All arguments".
const MAIN = [
  "data_dir", "algorithm", "backbone", "num_epochs_to_finish", "batch_size", "learning_rate", "pretrained", "backbone_pretrained", "image_resized_width", "image_resized_height",
  "dataset_endpoint.headers", "callback_url.headers", "dataset_endpoint.pagination.page_size", "training_model.resource.InstanceCount",
  "training_model.hyperparameters.process.train.steps", "training_model.hyperparameters.process.train.initLearningRate", "training_model.hyperparameters.process.train.batchsize",
];
let schemas = null;
let schema = null;

async function loadSchemas() {
  if (!schemas) schemas = (await api("GET", "/openapi.json")).components.schemas;
  return schemas;
}

function bound(s) {
  const low = s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : "";
  const high = s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : "";
  return [low, high].filter(Boolean).join(" and ");
}

/** What a value may be, in words, from the argument's JSON Schema. */
export function allowed(s) {
  // AI Factory hyper-parameters also travel as text ("0.2"): their description says the rule.
  if (s.anyOf && s.description && s.anyOf.some((part) => part.type === "string")) return "";
  if (s.anyOf) return s.anyOf.map((part) => (part.const !== undefined ? String(part.const) : allowed(part))).join(", or ");
  if (s.type === "object") return 'a JSON object such as {"x-api-key": "..."}: kept as a secret, never shown again';
  if (s.format === "uri") return "an http(s) URL";
  if (s.enum) return `one of ${s.enum.join(", ")}`;
  if (s.type === "boolean") return "True or False";
  if (s.type === "integer" || s.type === "number") return `${s.type === "integer" ? "an integer" : "a number"} ${bound(s)}`.trim();
  if (s.example) return `a literal such as ${s.example}`;
  if (s.type === "string" && s["x-python-type"]) return "a path"; // the v1.5 table's path arguments
  if (s.type === "string" && s.maxLength) return `text, at most ${s.maxLength} characters`;
  return s.type || "";
}

function defaultOf(name, s) {
  if (s["x-default-by-algorithm"]) {
    const algorithm = $("arg-algorithm") && ($("arg-algorithm").value || $("arg-algorithm").dataset.default);
    const value = s["x-default-by-algorithm"][algorithm];
    return value === undefined ? "depends on the algorithm" : JSON.stringify(value);
  }
  if (s.default === undefined) return undefined;
  if (typeof s.default === "boolean") return s.default ? "True" : "False";
  return typeof s.default === "string" ? s.default : JSON.stringify(s.default);
}

function field(name, s, required, path = [name]) {
  const box = el("div", undefined, "field");
  box.dataset.field = name;
  box.dataset.path = JSON.stringify(path);
  box.dataset.kind = s.type === "object" ? "json" : s.type === "integer" ? "integer" : "text";
  // A hyper-parameter by its key; another payload field with its parent ("callback_url.url").
  const short = path.length > 1 && path[path.length - 2] !== "hyperparameters" ? path.slice(-2) : path.slice(-1);
  const label = el("label", short.join("."));
  label.title = name;
  label.htmlFor = `arg-${name}`;
  if (required) label.append(el("span", " *", "required"));
  let input;
  const choices = s.enum || (s.type === "boolean" ? ["True", "False"] : null);
  const fallback = defaultOf(name, s);
  if (choices) {
    input = el("select");
    if (!required) input.append(Object.assign(el("option", `default (${fallback ?? "none"})`), { value: "" }));
    input.append(...choices.map((value) => Object.assign(el("option", value), { value })));
  } else {
    input = el("input");
    input.type = "text";
    input.placeholder = required ? "required" : `default: ${fallback ?? "none"}`;
    input.autocomplete = "off";
  }
  input.id = `arg-${name}`;
  input.name = name;
  if (fallback !== undefined) input.dataset.default = fallback;
  const hint = el("small", [allowed(s), s.description].filter(Boolean).join(" · "), "hint");
  hint.id = `hint-${name}`;
  const error = el("p", "", "field-error");
  error.id = `err-${name}`;
  error.setAttribute("role", "alert");
  box.append(label, input, hint, error);
  return box;
}

export async function openLaunch() {
  $("launch").hidden = false;
  $("job").hidden = true;
  $("compare").hidden = true;
  await buildForm();
}

/** The AI Factory payload's leaves as dotted paths; a leaf is required when it and each
 * object above it are (a hyper-parameter's key keeps its dots as one segment). */
function leaves(s, path, required, out) {
  if (s.$ref) s = schemas[s.$ref.split("/").pop()];
  if (s.type === "object" && s.properties && !s.additionalProperties) {
    for (const [key, sub] of Object.entries(s.properties)) leaves(sub, [...path, key], required && (s.required || []).includes(key), out);
  } else if (s.type === "object" && s.properties) {
    for (const [key, sub] of Object.entries(s.properties)) out.push({ path: [...path, key], schema: sub, required: false });
  } else {
    out.push({ path, schema: s, required });
  }
  return out;
}

function buildTextForm(task) {
  const all = leaves(schemas.AiFactoryCreate, [], true, []).filter((leaf) => leaf.path[0] !== "task_def");
  const main = all.filter((leaf) => leaf.required || MAIN.includes(leaf.path.join(".")));
  const rest = all.filter((leaf) => !main.includes(leaf));
  const make = (leaf) => field(leaf.path.join("."), leaf.schema, leaf.required, leaf.path);
  $("launch-main").replaceChildren(...main.map(make));
  $("launch-more").replaceChildren(...rest.map(make));
  $("launch-count").textContent = `${rest.length} more`;
  schema = { properties: {} };
  $("launch-form").dataset.task = task;
}

export async function buildForm() {
  const task = $("launch-task").value;
  await loadSchemas();
  $("launch-error").textContent = "";
  $("launch-result").textContent = "";
  if (TEXT_TASKS.has(task)) return buildTextForm(task);
  schema = schemas[`V15Train${TITLES[task]}Form`];
  const required = new Set(schema.required || []);
  const names = Object.keys(schema.properties).filter((name) => name !== "task");
  const main = names.filter((name) => MAIN.includes(name) || required.has(name));
  $("launch-main").replaceChildren(...main.map((name) => field(name, schema.properties[name], required.has(name))));
  $("launch-more").replaceChildren(...names.filter((name) => !main.includes(name)).map((name) => field(name, schema.properties[name], false)));
  $("launch-count").textContent = `${names.length - main.length} more`;
  $("launch-form").dataset.task = task;
  if ($("arg-algorithm")) $("arg-algorithm").addEventListener("change", refreshDefaults);
}

function refreshDefaults() {
  for (const [name, s] of Object.entries(schema.properties)) {
    const input = $(`arg-${name}`);
    if (!input || !s["x-default-by-algorithm"]) continue;
    const fallback = defaultOf(name, s);
    if (input.tagName === "INPUT") input.placeholder = `default: ${fallback}`;
    else input.options[0].textContent = `default (${fallback})`;
  }
}

function clearErrors() {
  for (const node of document.querySelectorAll("#launch-form .field-error")) node.textContent = "";
  for (const node of document.querySelectorAll("#launch-form .field.invalid")) node.classList.remove("invalid");
  $("launch-error").textContent = "";
}

/** The fields the API's message names ("Invalid 'batch_size': ..."), first named first. */
export function namedFields(message) {
  return [...message.matchAll(/'([A-Za-z_][A-Za-z0-9_.]*)'/g)].map((m) => m[1]).filter((name) => $(`arg-${name}`));
}

function fieldError(name, message) {
  const box = $(`arg-${name}`).closest(".field");
  box.classList.add("invalid");
  $(`err-${name}`).textContent = message;
  if (box.closest("details")) box.closest("details").open = true;
  $(`arg-${name}`).focus();
}

/** The AI Factory payload from the filled fields: nested by path, integers as numbers,
 * headers parsed from their JSON (a bad one is named beside its field, nothing is sent). */
function textPayload(task) {
  const payload = { task_def: task };
  for (const box of document.querySelectorAll("#launch-form .field[data-path]")) {
    const input = box.querySelector("[name]");
    const raw = input.value.trim();
    if (raw === "") continue;
    let value = raw;
    if (box.dataset.kind === "json") {
      try {
        value = JSON.parse(raw);
      } catch (_) {
        fieldError(input.name, `Invalid '${input.name}': must be a JSON object of header names and values`);
        return null;
      }
    } else if (box.dataset.kind === "integer" && /^-?\d+$/.test(raw)) {
      value = Number(raw);
    }
    const path = JSON.parse(box.dataset.path);
    let node = payload;
    for (const key of path.slice(0, -1)) node = node[key] = node[key] || {};
    node[path[path.length - 1]] = value;
  }
  return payload;
}

async function start(task) {
  if (TEXT_TASKS.has(task)) {
    const payload = textPayload(task);
    if (!payload) return null;
    const body = await api("POST", "/create_training_job", payload);
    $("launch-result").textContent = `Started job ${body.job_name}.`;
    return { api: "aif", id: body.job_name };
  }
  const fields = { task };
  for (const input of document.querySelectorAll("#launch-form [name]")) {
    if (input.value.trim() !== "") fields[input.name] = input.value.trim();
  }
  const body = await apiForm("POST", `${V15}/train`, fields);
  const ignored = (body.ignored_arguments || []).length ? ` (ignored: ${body.ignored_arguments.join(", ")})` : "";
  $("launch-result").textContent = `Started job ${body.job_id}${ignored}.`;
  return { api: "v15", id: body.job_id };
}

export async function submitLaunch(onStarted) {
  clearErrors();
  $("launch-submit").disabled = true;
  try {
    const started = await start($("launch-task").value);
    if (started && onStarted) onStarted(started);
  } catch (error) {
    const named = namedFields(error.message);
    for (const name of named.slice(0, 1)) fieldError(name, error.message);
    if (!named.length) $("launch-error").textContent = error.message;
  } finally {
    $("launch-submit").disabled = false;
  }
}
