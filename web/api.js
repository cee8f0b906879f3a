// api.js - talking to lucy's API from the browser.
//
// Every call goes to this origin (the UI is served by lucy itself). When
// LUCY_API_TOKEN is set, the API answers 401; the UI then asks for the
// token once (one dialog, shared by every request waiting on it), keeps it
// in sessionStorage (this tab's session only, never localStorage, never in
// a URL) and sends it as "Authorization: Bearer". A wrong token asks again.

const TOKEN_KEY = "lucy.token";

export class ApiError extends Error {
  // status: HTTP status (0 = no answer); body: lucy's JSON error
  // {error_type, message, retry_after_s, ...} when there is one.
  constructor(status, body, fallback) {
    super((body && body.message) || fallback || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.errorType = this.body.error_type || (status ? "http_" + status : "network");
  }
}

export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}

function setToken(t) {
  try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* private mode: this page only */ }
  memoryToken = t;
}

let memoryToken = "";
let pendingAsk = null;

// Shows the token dialog; resolves with the token typed. One dialog at a
// time: concurrent 401s wait for the same answer.
function askToken(wrong) {
  if (pendingAsk) return pendingAsk;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const err = document.getElementById("token-error");
  err.hidden = !wrong;
  err.textContent = wrong ? "That token was not accepted. Check LUCY_API_TOKEN and try again." : "";
  input.value = "";
  pendingAsk = new Promise((resolve) => {
    const done = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      form.removeEventListener("submit", done);
      dialog.close();
      pendingAsk = null;
      resolve(t);
    };
    form.addEventListener("submit", done);
    dialog.addEventListener("cancel", (ev) => ev.preventDefault()); // the API needs it
    dialog.showModal();
    input.focus();
  });
  return pendingAsk;
}

function authHeaders(extra) {
  const h = new Headers(extra || {});
  const t = token() || memoryToken;
  if (t) h.set("Authorization", "Bearer " + t);
  return h;
}

// fetch() with the token, asking for it on a 401. Returns the Response.
export async function authFetch(path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    let r;
    try {
      r = await fetch(path, { ...opts, headers: authHeaders(opts.headers), cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, null, "lucy cannot be reached: is it running? (" + e.message + ")");
    }
    if (r.status !== 401 || attempt > 5) return r;
    setToken(await askToken(attempt > 0 || !!token()));
  }
}

async function bodyOf(r) {
  const type = r.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { return await r.json(); } catch (e) { return null; }
  }
  return await r.text();
}

// A JSON (or text) API call. Resolves with {status, body, headers} for a
// 2xx or a status listed in opts.allow; throws ApiError otherwise.
export async function api(path, opts = {}) {
  const { allow = [], json, ...rest } = opts;
  if (json !== undefined) {
    rest.body = JSON.stringify(json);
    rest.headers = { ...(rest.headers || {}), "Content-Type": "application/json" };
  }
  const r = await authFetch(path, rest);
  const body = await bodyOf(r);
  if (r.ok || allow.includes(r.status)) return { status: r.status, body, headers: r.headers };
  throw new ApiError(r.status, typeof body === "object" ? body : null,
    typeof body === "string" && body ? body.slice(0, 200) : `HTTP ${r.status}`);
}

export const get = (path, opts) => api(path, opts).then((r) => r.body);

// The audio URL for a recording. Without a token the <audio> element loads
// it directly, with range requests (seeking fetches only what it needs).
// With a token, <audio src> cannot send the header, so the file is fetched
// with it and played from a Blob URL (docs/ui.md says why not ?token=).
// Returns {url, revoke}.
export async function audioSource(id) {
  const path = "/recordings/" + encodeURIComponent(id) + "/audio";
  if (!token() && !memoryToken) return { url: path, revoke() {} };
  const r = await authFetch(path);
  if (!r.ok) throw new ApiError(r.status, await bodyOf(r));
  const url = URL.createObjectURL(await r.blob());
  return { url, revoke: () => URL.revokeObjectURL(url) };
}

// Downloads path (a transcript file) with the token when one is set: the
// file is fetched, then saved under the name lucy's Content-Disposition
// gives (fallback when there is none). Throws ApiError on an error reply.
export async function download(path, fallback) {
  const r = await authFetch(path);
  if (!r.ok) throw new ApiError(r.status, await bodyOf(r));
  const m = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = m ? m[1] : fallback;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000); // the download has started by then
}

// Why the audio of a recording cannot play: lucy's JSON error for it.
export async function audioError(id) {
  const r = await authFetch("/recordings/" + encodeURIComponent(id) + "/audio",
    { headers: { Range: "bytes=0-0" } });
  if (r.ok) return null;
  return new ApiError(r.status, await bodyOf(r));
}
