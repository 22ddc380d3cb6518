// Every request the dashboard makes goes through this module: one place adds the bearer
// token, turns Pulzar's JSON envelope into data or an ApiError, and knows how keys become
// URL paths. The page is served by the master, so its API paths are relative to it.

const TOKEN_STORAGE = "pulzar.token";

export class ApiError extends Error {
  /** `status` is the HTTP status (0 when the server could not be reached). */
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_STORAGE) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_STORAGE, token);
  else localStorage.removeItem(TOKEN_STORAGE);
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * A key (`/a/b c.txt`) as a URL path: each segment percent-encoded, `/` kept. A browser
 * resolves `.` and `..` segments (even percent-encoded) before sending, so a key holding one
 * would reach another key: such keys, invalid anyway, are refused here. A listing prefix may
 * end with `/` (an empty last segment).
 */
export function keyPath(key, { prefix = false } = {}) {
  const segments = (key.startsWith("/") ? key : `/${key}`).split("/").slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === "." || segment === ".." || (segment === "" && !(prefix && last))) {
      throw new ApiError(400, `invalid key ${JSON.stringify(key)}: ` +
        "no empty, '.' or '..' segments between slashes");
    }
  });
  return `/${segments.map(encodeURIComponent).join("/")}`;
}

async function send(method, path, { json, signal } = {}) {
  const init = { method, headers: authHeaders(), signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  try {
    return await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the master cannot be reached");
  }
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.msg) message = body.msg;
  } catch {
    // not an envelope: keep the status line
  }
  return new ApiError(response.status, message);
}

/** The whole envelope (`{data, status, msg, ...}`) of a JSON call; ApiError when it failed. */
async function call(method, path, options) {
  const response = await send(method, path, options);
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

async function data(method, path, options) {
  return (await call(method, path, options)).data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

/** PUT `file` to a volume URL with XHR (fetch cannot report upload progress). */
function putFile(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (onProgress && event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // leave body null
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body ? body.data : null);
      else reject(new ApiError(xhr.status, (body && body.msg) || `${xhr.status} ${xhr.statusText}`));
    });
    xhr.addEventListener("error", () => {
      const origin = new URL(url).origin;
      reject(new ApiError(0, `the volume at ${origin} could not be reached, or did not accept ` +
        `requests from this page (open the dashboard at the master URL the volumes were given)`));
    });
    xhr.send(file);
  });
}

export const api = {
  health: async () => {
    const response = await send("GET", "/health");
    return { ok: response.ok, body: await response.json().catch(() => null) };
  },
  /** `{data: [node...], repair: {...}}`. */
  network: () => call("GET", "/admin/network"),
  indexStatus: () => data("GET", "/admin/status"),

  listKeys: (prefix, { limit, after, signal } = {}) =>
    data("GET", `/list_keys${keyPath(prefix || "/", { prefix: true })}${query({ limit, after })}`,
      { signal }),
  statKey: (key, options) => data("GET", `/stat_key${keyPath(key)}`, options),
  deleteKey: (key) => call("DELETE", `/delete_key${keyPath(key)}`),
  keyUrl: (key) => `/get_key${keyPath(key)}`,

  /** The value of `key` as a Blob. The master answers 307 and the browser follows it to a
   *  volume, which allows this page's origin (CORS). */
  download: async (key, onProgress) => {
    const response = await send("GET", `/get_key${keyPath(key)}`);
    if (!response.ok) throw await errorFrom(response);
    const total = Number(response.headers.get("Content-Length")) || 0;
    const type = response.headers.get("Content-Type") || "application/octet-stream";
    if (!response.body || !onProgress) return new Blob([await response.arrayBuffer()], { type });
    const reader = response.body.getReader();
    const chunks = [];
    let loaded = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      onProgress(loaded, total);
    }
    return new Blob(chunks, { type });
  },

  /** Store `file` under `key`: ask the master for a volume URL with a signed write ticket
   *  (`/get_node`), then PUT the file straight to that volume, as every Pulzar client does:
   *  the master never sees the bytes. Resolves with the volume's answer (`{url, version}`). */
  upload: async (key, file, { ttlDays, onProgress } = {}) => {
    const plan = await data("GET", `/get_node${keyPath(key)}${query({ size: file.size, temporal: ttlDays })}`);
    return putFile(plan.node, file, onProgress);
  },

  jobs: (limit = 100) => data("GET", `/admin/jobs${query({ limit })}`),
  job: (id) => data("GET", `/admin/jobs/${encodeURIComponent(id)}`),
  catalog: () => data("GET", "/admin/job_catalog"),
  launchJob: (name, body) =>
    data("POST", `/launch_job/${name.split("/").map(encodeURIComponent).join("/")}`, { json: body }),
  cancelJob: (id) => call("POST", `/cancel_job/${encodeURIComponent(id)}`),
};
