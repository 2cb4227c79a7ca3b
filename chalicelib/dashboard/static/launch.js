// "New job": a form built from the v1.5 argument tables the API publishes in its OpenAPI
// document (components.schemas.V15Train<Task>Form, read from contracts/v15_arguments.py), so
// a new argument appears here without a change to the page. Each field shows its default and
// allowed values; the API is the one judge of a value, and its 400 is shown beside the field
// it names.

import { $, el } from "./dom.js";
import { V15, api, apiForm } from "./http.js";

const TITLES = { classification: "Classification", detection: "Detection", instance_segmentation: "InstanceSegmentation" };
// Shown first; the rest of the table sits under "All arguments".
const MAIN = ["data_dir", "algorithm", "backbone", "num_epochs_to_finish", "batch_size", "learning_rate", "pretrained", "backbone_pretrained", "image_resized_width", "image_resized_height"];
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
  if (s.anyOf) return s.anyOf.map((part) => (part.const !== undefined ? String(part.const) : allowed(part))).join(", or ");
  if (s.enum) return `one of ${s.enum.join(", ")}`;
  if (s.type === "boolean") return "True or False";
  if (s.type === "integer" || s.type === "number") return `${s.type === "integer" ? "an integer" : "a number"} ${bound(s)}`.trim();
  if (s.example) return `a literal such as ${s.example}`;
  if (s.type === "string" && s.minLength) return "a path";
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

function field(name, s, required) {
  const box = el("div", undefined, "field");
  box.dataset.field = name;
  const label = el("label", name);
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

export async function buildForm() {
  const task = $("launch-task").value;
  schema = (await loadSchemas())[`V15Train${TITLES[task]}Form`];
  const required = new Set(schema.required || []);
  const names = Object.keys(schema.properties).filter((name) => name !== "task");
  const main = names.filter((name) => MAIN.includes(name) || required.has(name));
  $("launch-main").replaceChildren(...main.map((name) => field(name, schema.properties[name], required.has(name))));
  $("launch-more").replaceChildren(...names.filter((name) => !main.includes(name)).map((name) => field(name, schema.properties[name], false)));
  $("launch-count").textContent = `${names.length - main.length} more`;
  $("launch-error").textContent = "";
  $("launch-result").textContent = "";
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

export async function submitLaunch(onStarted) {
  clearErrors();
  const task = $("launch-task").value;
  const fields = { task };
  for (const input of document.querySelectorAll("#launch-form [name]")) {
    if (input.value.trim() !== "") fields[input.name] = input.value.trim();
  }
  $("launch-submit").disabled = true;
  try {
    const body = await apiForm("POST", `${V15}/train`, fields);
    const ignored = (body.ignored_arguments || []).length ? ` (ignored: ${body.ignored_arguments.join(", ")})` : "";
    $("launch-result").textContent = `Started job ${body.job_id}${ignored}.`;
    if (onStarted) onStarted(body.job_id);
  } catch (error) {
    const named = namedFields(error.message);
    for (const name of named.slice(0, 1)) {
      const box = $(`arg-${name}`).closest(".field");
      box.classList.add("invalid");
      $(`err-${name}`).textContent = error.message;
      if (box.closest("details")) box.closest("details").open = true;
      $(`arg-${name}`).focus();
    }
    if (!named.length) $("launch-error").textContent = error.message;
  } finally {
    $("launch-submit").disabled = false;
  }
}
