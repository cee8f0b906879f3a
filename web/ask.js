// ask.js - the Ask view (DESIGN §14, docs/ask.md): a question, lucy's
// answer with its [n] citations, and the sources under it. A recording's
// citation plays its audio from t0_ms to t1_ms (the media fragment
// #t=start,end on the audio URL, or a seek when the audio comes from a
// Blob because a token is set) and links to the transcript at that
// moment; a message's opens it in its thread. An unverified citation is
// marked, and retrieval.llm says whether an LLM wrote the answer.
import { get, ApiError, audioSource } from "./api.js";
import { clear, dateTime, el, note } from "./format.js";

// Without the LLM the answer's own text says why it only quotes (ask.c):
// nothing to add here.
const LLM_WORDS = {
  used: "Written by the LLM from the sources below.",
  not_configured: "",
  unavailable: "",
};

// The UI-relative link of a citation (its url is absolute, on the host asked).
function hashOf(c) {
  const i = c.url ? c.url.indexOf("#/") : -1;
  return i >= 0 ? c.url.slice(i) : "#/search";
}

// The answer's text with each [n] a link to source n below.
function answerNodes(text, cited) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    nodes.push(text.slice(last, m.index));
    const c = cited.get(Number(m[1]));
    nodes.push(c && c.id ? el("a", { href: "#ask-source-" + m[1], class: "cite" + (c.verified ? "" : " bad") }, m[0])
      : el("span", { class: "cite bad", title: "names no source" }, m[0]));
    last = m.index + m[0].length;
  }
  nodes.push(text.slice(last));
  return nodes;
}

// A recording citation's player: loaded on demand, plays t0..t1.
function player(c, revokers) {
  const audio = el("audio", { controls: true, preload: "none", class: "ask-audio", hidden: true });
  const button = el("button", { type: "button", class: "play" }, "Play");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const src = await audioSource(c.id);
      revokers.push(src.revoke);
      const from = c.t0_ms / 1000, to = c.t1_ms / 1000;
      audio.src = src.url + `#t=${from.toFixed(1)},${to.toFixed(1)}`;
      audio.hidden = false;
      audio.addEventListener("loadedmetadata", () => {
        if (Math.abs(audio.currentTime - from) > 0.5) audio.currentTime = from; // a Blob ignores #t
      }, { once: true });
      audio.addEventListener("timeupdate", () => { if (audio.currentTime >= to) audio.pause(); });
      await audio.play().catch(() => { /* no autoplay or no output: the controls are there */ });
    } catch (e) {
      button.replaceWith(note(e instanceof ApiError ? e.message : String(e), "bad"));
    }
  });
  return el("div", { class: "ask-player" }, button, audio);
}

function sourceItem(c, revokers) {
  const isRec = c.source === "call_recording";
  return el("li", { class: "card", id: "ask-source-" + c.n, "data-n": String(c.n), "data-id": c.id || "" },
    el("div", { class: "meta" },
      el("span", { class: "badge" }, `[${c.n}]`),
      el("a", { class: "title", href: hashOf(c) }, c.label || c.id),
      c.verified ? null : el("span", { class: "badge bad" }, "not verified")),
    c.quote ? el("blockquote", null, c.quote) : null,
    isRec && c.t0_ms !== null ? player(c, revokers) : null,
    !isRec ? el("a", { href: hashOf(c) }, "Open in its thread") : null);
}

export async function render(main, parts, query, stale) {
  const q = query.get("q") || "";
  const revokers = [];
  const input = el("input", { type: "search", id: "ask-q", name: "q", value: q, required: true,
    placeholder: "What did John say about the invoice last week?", autocomplete: "off" });
  const results = el("section", { id: "ask-results", "aria-live": "polite", "aria-label": "Answer" });
  const form = el("form", { class: "controls", id: "ask-form" },
    el("div", { class: "grow" }, el("label", { for: "ask-q" }, "Ask"), input),
    el("div", null, el("button", { type: "submit" }, "Ask")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const hash = "#/ask?" + new URLSearchParams({ q: input.value.trim() }).toString();
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = hash;
  });
  clear(main, el("h1", null, "Ask"), form, results);
  const cleanup = () => revokers.forEach((r) => r());
  if (!q) { input.focus(); return cleanup; }
  clear(results, el("p", { class: "muted" }, "Thinking..."));
  try {
    const r = await get("/ask?" + new URLSearchParams({ q }).toString());
    if (stale()) return cleanup;
    const cited = new Map(r.citations.map((c) => [c.n, c]));
    const f = r.retrieval.filters || {};
    const understood = [f.person ? "with " + f.person.name : null, f.time_phrase,
      f.from || f.to ? `${f.from ? dateTime(Date.parse(f.from) / 1000) : "…"} – ${f.to ? dateTime(Date.parse(f.to) / 1000) : "…"}` : null]
      .filter(Boolean).join(", ");
    clear(results,
      el("div", { class: "ask-answer", id: "ask-answer" }, answerNodes(r.answer, cited)),
      el("p", { class: "muted", id: "ask-llm" }, r.retrieval.llm in LLM_WORDS ? LLM_WORDS[r.retrieval.llm] : r.retrieval.llm,
        understood ? ` Understood: ${understood}.` : ""),
      r.verified ? null : note("Some citations could not be verified against their sources.", "bad"),
      r.retrieval.degraded ? note(r.retrieval.degraded_reason || "The search index is degraded.") : null,
      el("ol", { class: "cards", id: "ask-sources" }, r.citations.filter((c) => c.id).map((c) => sourceItem(c, revokers))));
  } catch (e) {
    clear(results, note(e instanceof ApiError ? e.message : String(e), "bad", "alert"));
  }
  return cleanup;
}
