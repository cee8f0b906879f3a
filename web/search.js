// search.js - the Search view: one box over recordings and messages.
// /search answers one card per conversation (a recording, or a person's
// messages on one day) with its best hits under it and a count of the
// rest (`more`); a card's own fields are its best hit's. Snippets arrive
// HTML-escaped with <mark> around the matched words; they are turned into
// text nodes and <mark> elements by snippetNodes(), never assigned as HTML.
// A recording hit opens its transcript at the matching segment
// (#/recordings/{id}?t=t0_ms), a message hit the contact's messages with
// that message marked.
import { get, ApiError } from "./api.js";
import { clear, dateTime, el, note, snippetNodes, timestamp } from "./format.js";

const SOURCES = { "": "Everything", call_recording: "Recordings", whatsapp: "Messages" };

function hitLink(h) {
  if (h.source === "call_recording")
    return "#/recordings/" + encodeURIComponent(h.id) + (h.t0_ms !== undefined && h.t0_ms !== null ? "?t=" + h.t0_ms : "");
  if (h.contact) return "#/messages/" + encodeURIComponent(h.contact) + "?m=" + encodeURIComponent(h.id);
  return "#/messages";
}

// One of a conversation's hits: where it is (segment time or message
// time), linked, and its snippet.
function hitLine(h) {
  const isRec = h.source === "call_recording";
  const where = isRec && h.t0_ms !== undefined ? "at " + timestamp(h.t0_ms) : h.time ? dateTime(h.time) : "open";
  return el("li", { class: "hit" },
    el("a", { class: "at", href: hitLink(h) }, where),
    el("p", { class: "snippet" }, snippetNodes(h.snippet)));
}

// One conversation: its title (linked to its best hit), what it is, and its
// best hits. A reply without `hits` per card (group=0) shows the card's own
// snippet.
function groupItem(g) {
  const isRec = g.source === "call_recording";
  const hits = Array.isArray(g.hits) ? g.hits : [g];
  const total = hits.length + (g.more || 0);
  return el("li", { class: "card", "data-source": g.source, "data-id": g.id, "data-key": g.key || "" },
    el("a", { class: "title", href: hitLink(g) }, g.title || g.id),
    el("div", { class: "meta" },
      el("span", { class: "badge" }, isRec ? "Recording" : "Messages"),
      g.time ? el("span", null, dateTime(g.time)) : null,
      el("span", null, `${total} match${total === 1 ? "" : "es"}`)),
    el("ol", { class: "hits" }, hits.map(hitLine)),
    g.more ? el("p", { class: "muted more" }, `${g.more} more`) : null);
}

export async function render(main, parts, query, stale) {
  const q = query.get("q") || "";
  const source = query.get("source") || "";
  const input = el("input", { type: "search", id: "search-q", name: "q", value: q, required: true,
    placeholder: "words from a call or a message", autocomplete: "off" });
  const sourceSel = el("select", { id: "search-source", name: "source" },
    Object.entries(SOURCES).map(([k, v]) => el("option", { value: k, selected: k === source }, v)));
  const results = el("section", { id: "results", "aria-live": "polite", "aria-label": "Results" });
  const form = el("form", { class: "controls", role: "search", id: "search-form" },
    el("div", { class: "grow" }, el("label", { for: "search-q" }, "Search for"), input),
    el("div", null, el("label", { for: "search-source" }, "In"), sourceSel),
    el("div", null, el("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ q: input.value.trim() });
    if (sourceSel.value) p.set("source", sourceSel.value);
    const hash = "#/search?" + p.toString();
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange")); // search again
    else location.hash = hash;
  });
  clear(main, el("h1", null, "Search"), form, results);
  if (!q) { input.focus(); return; }

  const p = new URLSearchParams({ q, limit: "50", per_group: "3" });
  if (source) p.set("source", source);
  try {
    const r = await get("/search?" + p.toString());
    // A recording's segments carry no title (DESIGN §12): show the
    // recording's own (the call's: who, direction, date).
    const ids = [...new Set(r.hits.filter((h) => h.source === "call_recording" && !h.title).map((h) => h.id))];
    const titles = {};
    await Promise.all(ids.map(async (id) => {
      try { titles[id] = (await get("/recordings/" + encodeURIComponent(id))).title; } catch (e) { /* id stays */ }
    }));
    for (const h of r.hits) if (!h.title) h.title = titles[h.id] || (h.source === "call_recording" ? "Call recording" : "");
    if (stale()) return;
    clear(results,
      el("p", { class: "muted", id: "search-count" },
        `${r.count} conversation${r.count === 1 ? "" : "s"} for "${q}".`),
      r.degraded ? note("The search index is catching up or its backend is degraded; some recent items may be missing.") : null,
      el("ol", { class: "cards", id: "hits" }, r.hits.map(groupItem)));
  } catch (e) {
    clear(results, note(e instanceof ApiError ? e.message : String(e), "bad", "alert"));
  }
}
