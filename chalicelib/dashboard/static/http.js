// Talking to the two APIs with the key the user signed in with (sessionStorage only, gone
// when the tab closes), and the state every view of the page shares.

export const KEY = "aifactory.apiKey";
export const V15 = "/api/v1.5.0";
export const ACTIVE = new Set(["Pending", "InProgress", "Stopping", "initializing", "initialized", "running"]);

export const state = {
  jobs: new Map(), // "<api>:<id>" -> {api, id, task, status, progress, created, monitor, last, callback}
  opened: new Set(), // v1.5 job ids opened by hand (shown even without the list route)
  v15List: true, // false once the server says it has no GET /api/v1.5.0/train
  selected: null,
  compare: new Set(), // job keys ticked for the compare view
  deployments: [],
  devices: null, // [[label, target_device_id]] once read
  timer: null,
  busy: false,
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onRefused = () => {};
export function whenRefused(callback) {
  onRefused = callback;
}

// A 503 with Retry-After is the API's "still being computed" (its synchronous budget,
// docs/contracts.md) or a deployment still starting: the same request is sent again after
// the wait, a few times.
const RETRIES = 8;

function headers(extra) {
  return { "x-api-key": sessionStorage.getItem(KEY) || "", Accept: "application/json", ...extra };
}

async function send(method, path, init, retried) {
  const response = await fetch(path, { method, ...init });
  const retryAfter = Number(response.headers.get("Retry-After"));
  if (response.status === 503 && retryAfter > 0 && retried < RETRIES) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, 10) * 1000));
    return send(method, path, init, retried + 1);
  }
  return response;
}

async function parsed(response) {
  const text = await response.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch (_) {
    /* text/plain bodies stay text */
  }
  if (!response.ok) {
    const message = (data && (data.message || data.Message)) || response.statusText;
    if (response.status === 403 && message === "Forbidden") onRefused("The API key was refused.");
    throw new ApiError(response.status, message);
  }
  return data;
}

/** A JSON request (the AI Factory API, and every GET). */
export async function api(method, path, body) {
  const init = { headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return parsed(await send(method, path, init, 0));
}

/** A form-encoded request, as the v1.5 API's clients send them (every value a string). */
export async function apiForm(method, path, fields) {
  const init = {
    headers: headers({ "Content-Type": "application/x-www-form-urlencoded" }),
    body: new URLSearchParams(fields).toString(),
  };
  return parsed(await send(method, path, init, 0));
}

/** Saves a key-protected file. On AWS the route answers a presigned link, which the browser
 * opens itself (S3 needs no key); locally it answers the file a part at a time (each under
 * Lambda's 6 MB answer), `Content-Range` saying where the next part starts. */
export async function download(path, filename, onProgress = () => {}) {
  const parts = [];
  for (let offset = 0; ; ) {
    const response = await send("GET", `${path}?offset=${offset}`, { headers: headers({ Accept: "*/*" }) }, 0);
    if (!response.ok) return parsed(response);
    if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
      const body = await response.json();
      if (body.url) window.location.assign(body.url);
      return body;
    }
    parts.push(await response.blob());
    const range = /bytes (\d+)-(-?\d+)\/(\d+)/.exec(response.headers.get("Content-Range") || "");
    if (!range) break;
    const [end, total] = [Number(range[2]), Number(range[3])];
    onProgress(end + 1, total);
    if (end + 1 >= total) break;
    offset = end + 1;
  }
  const url = URL.createObjectURL(new Blob(parts, { type: "application/octet-stream" }));
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return { saved: filename, bytes: parts.reduce((sum, part) => sum + part.size, 0) };
}

// A route this server does not have: 403 "Missing Authentication Token", 404, 405.
export const missing = (error) =>
  error instanceof ApiError &&
  (error.status === 404 || error.status === 405 || (error.status === 403 && /Missing Authentication/.test(error.message)));

export const jobPath = (id) => `${V15}/train/${encodeURIComponent(id)}`;
