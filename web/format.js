// format.js - DOM building and the plain-words formatting every view uses.
// Text goes into the page only as text nodes (never innerHTML), so nothing
// from the API can become markup; search snippets are the one exception,
// handled by snippetNodes() below.

// el("a", {href: "#/x", class: "title"}, "text", otherNode): an element.
// Attributes starting with "on" are event listeners; null/false are skipped.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'" };

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e) => {
    if (ENTITIES[e] !== undefined) return ENTITIES[e];
    const code = e[1] === "x" ? parseInt(e.slice(2), 16) : e[0] === "#" ? parseInt(e.slice(1), 10) : NaN;
    return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
  });
}

// A search snippet is HTML-escaped text whose only markup is <mark> and
// </mark> (src/index). It becomes text nodes and <mark> elements here: the
// string is split at those two tags and every other part is decoded as
// text, so even a snippet that broke that rule could not inject markup.
export function snippetNodes(snippet) {
  const out = [];
  let marked = false;
  for (const part of String(snippet || "").split(/(<\/?mark>)/)) {
    if (part === "<mark>") { marked = true; continue; }
    if (part === "</mark>") { marked = false; continue; }
    if (!part) continue;
    const text = document.createTextNode(decodeEntities(part));
    out.push(marked ? el("mark", null, text) : text);
  }
  return out;
}

const pad = (n) => String(n).padStart(2, "0");

// 75.3 -> "1:15"; 3725 -> "1:02:05"
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "unknown length";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
}

// 460 -> "0:00.4"; segment timestamps, to a tenth of a second
export function timestamp(ms) {
  const t = Math.max(0, ms) / 1000;
  const m = Math.floor(t / 60), s = t - m * 60;
  return `${m}:${s < 10 ? "0" : ""}${s.toFixed(1)}`;
}

// Unix seconds or ISO text -> Date
export function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return isNaN(d.getTime()) ? null : d;
}

export function dateTime(t) {
  const d = toDate(t);
  return d ? d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "unknown date";
}

// "14:05" - when something will happen today; with the date when not today.
export function clock(t) {
  const d = toDate(t);
  if (!d) return "soon";
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const now = new Date();
  return d.toDateString() === now.toDateString() ? hm : `${d.toLocaleDateString()} ${hm}`;
}

export function bytes(n) {
  if (!Number.isFinite(n)) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function basename(p) {
  const s = String(p || "");
  return s.slice(s.lastIndexOf("/") + 1) || s;
}

// Parses a hash like "#/recordings/abc?t=460" -> {parts: ["recordings","abc"], query}
export function parseHash(hash) {
  const h = (hash || "").replace(/^#\/?/, "");
  const q = h.indexOf("?");
  const path = q < 0 ? h : h.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query };
}

// A note box: kind "" (warning), "bad", "ok". text may be a string, a node
// or an array of both.
export function note(text, kind = "", role = "status") {
  return el("p", { class: "note " + kind, role }, text);
}

// Asks before a change (merge, split): a modal <dialog> in the page, not
// window.confirm(), so it looks like the rest of the UI and a test can
// answer it like any button. Resolves true for "ok", false for Cancel/Esc.
export function confirmDialog(text, okLabel) {
  return new Promise((resolve) => {
    const ok = el("button", { type: "submit", id: "confirm-ok", value: "ok" }, okLabel);
    const cancel = el("button", { type: "submit", class: "secondary", id: "confirm-cancel", value: "cancel" }, "Cancel");
    const dialog = el("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-text" },
      el("form", { method: "dialog" },
        el("p", { id: "confirm-text" }, text),
        el("div", { class: "actions" }, cancel, ok)));
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// "+14155550123" -> "+1 415-555-0123" (the North American plan, as lucy's
// display name writes it); other numbers stay in E.164, which is unambiguous.
export function phone(e164) {
  const s = String(e164 || "");
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(s);
  return m ? `+1 ${m[1]}-${m[2]}-${m[3]}` : s;
}
