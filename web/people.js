// people.js - the People view (DESIGN §12, docs/people.md): the persons
// lucy knows across calls and WhatsApp, and one person's page with its
// identifiers, names, alias, timeline, and the journaled edits (merge,
// split, alias) with undo from History.
//
//   #/people?q=&limit=                 list, searched, paged with "Load more"
//   #/people/{id}?from=&to=&limit=     one person; from/to filter the
//                                      timeline (dates), limit its page size
import { api, get } from "./api.js";
import { clear, confirmDialog, dateTime, duration, el, note, phone } from "./format.js";
import { TYPE_WORDS } from "./messages.js";

const LIST_PAGE = 20; // rows per "Load more"
const TIMELINE_PAGE = 50;

const KIND_WORDS = { phone: "Phone", wa_id: "WhatsApp", user_id: "WhatsApp username" };

const SOURCE_WORDS = {
  alias: "your alias", contact_name: "contact name", call_log_name: "call log",
  caller_name: "caller name (recorder)", profile_name: "WhatsApp profile name", file_name: "file name",
  phone: "phone number", wa_id: "WhatsApp number", user_id: "WhatsApp username",
  whatsapp: "WhatsApp", migration: "earlier release",
};

const sourceWords = (s) => SOURCE_WORDS[s] || s;

// An identifier as a person reads it: "+1 555-000-2222" for a phone or a
// WhatsApp number (a wa_id is the number without "+"), the name for a user_id.
export function identifierText(i) {
  if (i.kind === "phone") return phone(i.value);
  if (i.kind === "wa_id") return phone("+" + i.value);
  return i.value;
}

const personPath = (id) => "/people/" + encodeURIComponent(id);
const msDate = (ms) => (ms === null || ms === undefined ? "unknown date" : dateTime(ms / 1000));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function countsText(p) {
  const parts = [plural(p.messages, "message"), plural(p.calls, "call")];
  parts.push(p.last_contact ? "last contact " + dateTime(p.last_contact) : "no contact yet");
  return parts.join(" · ");
}

// A row's identifiers, one span per number or name: a phone and the
// WhatsApp id of the same number read the same, so they share one span
// ("+1 555-000-2222 (phone, WhatsApp)").
function identifierSpans(p) {
  const byText = new Map();
  for (const i of p.identifiers) {
    const t = identifierText(i);
    if (!byText.has(t)) byText.set(t, []);
    byText.get(t).push(KIND_WORDS[i.kind] || i.kind);
  }
  return [...byText].map(([t, kinds]) =>
    el("span", { "data-role": "identifier" }, t, el("span", { class: "muted" }, ` (${kinds.join(", ").toLowerCase()})`)));
}

// ---- the list ---------------------------------------------------------------

// The list's items carry their counts and last contact (GET /people counts
// them in its own query): no request per row.
function personRow(p) {
  return el("li", { class: "card", "data-id": p.id },
    el("a", { class: "title", href: "#" + personPath(p.id) }, p.name),
    el("div", { class: "meta" }, identifierSpans(p)),
    el("div", { class: "meta" }, el("span", { "data-role": "counts" }, countsText(p))));
}

async function renderList(main, query, stale) {
  const q = (query.get("q") || "").trim();
  const pageSize = Math.min(LIST_PAGE, Math.max(1, Number(query.get("limit")) || LIST_PAGE));
  const input = el("input", { type: "search", id: "people-q", name: "q", value: q,
    placeholder: "a name or a number", autocomplete: "off" });
  const form = el("form", { class: "controls", id: "people-form", role: "search" },
    el("div", { class: "grow" }, el("label", { for: "people-q" }, "Find a person"), input),
    el("div", null, el("button", { type: "submit" }, "Search")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    location.hash = "#/people" + (v ? "?q=" + encodeURIComponent(v) : "");
  });
  const list = el("ul", { class: "cards", id: "people", "aria-label": "People" });
  const summary = el("p", { class: "muted", id: "people-summary", role: "status" });
  const more = el("button", { type: "button", class: "secondary", id: "people-more", hidden: true }, "Load more");
  const problem = el("div", { role: "alert" });
  let cursor = "";
  let shown = 0;

  const load = async () => {
    more.disabled = true;
    clear(problem);
    try {
      const page = await get("/people?limit=" + pageSize + (q ? "&q=" + encodeURIComponent(q) : "") +
        (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      if (stale()) return;
      list.append(...page.people.map(personRow));
      shown += page.people.length;
      cursor = page.next_cursor === null || page.next_cursor === undefined ? "" : String(page.next_cursor);
      more.hidden = !cursor;
      summary.textContent = shown === 0
        ? (q ? `Nobody matches "${q}".` : "Nobody yet: persons come from WhatsApp messages and calls.")
        : plural(shown, "person") + " shown" + (cursor ? "; more below" : "");
    } catch (e) {
      clear(problem, note(e.message, "bad", "alert"));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
  if (stale()) return;
  clear(main, el("h1", null, "People"), form, summary, problem, list, el("p", null, more));
}

// ---- one person -------------------------------------------------------------

function aliasOf(p) {
  const a = (p.names || []).find((n) => n.source === "alias");
  return a ? a.name : "";
}

function timelineItem(t) {
  if (t.kind === "call") {
    return el("li", { class: "message", "data-kind": "call", "data-id": t.recording_id },
      el("div", { class: "meta" },
        el("span", null, dateTime(t.time)),
        el("span", { class: "badge" }, t.direction === "out" ? "Outgoing call" : t.direction === "in" ? "Incoming call" : "Call"),
        t.number ? el("span", null, phone(t.number)) : null,
        el("span", null, duration(t.duration_s))),
      el("p", null, el("a", { href: "#/recordings/" + encodeURIComponent(t.recording_id) }, t.title || "The recording")));
  }
  const kind = TYPE_WORDS[t.type] !== undefined ? TYPE_WORDS[t.type] : t.type;
  return el("li", { class: "message", "data-kind": "message", "data-wamid": t.wamid },
    el("div", { class: "meta" },
      el("span", null, dateTime(t.time)),
      el("span", { class: "badge" }, "WhatsApp" + (kind ? ": " + kind : "")),
      t.sender ? el("a", { href: "#/messages/" + encodeURIComponent(t.sender) + "?m=" + encodeURIComponent(t.wamid) },
        "in Messages") : null),
    t.text ? el("p", null, t.text) : el("p", { class: "muted" }, "(no text)"));
}

// "Merged person 2 into this one" - what a History entry did, in words.
function historyWords(h, pid) {
  const other = h.other !== null && h.other !== undefined ? h.other : null;
  const link = (n) => el("a", { href: "#" + personPath(n) }, "person " + n);
  if (h.op === "merge")
    return h.person === pid ? ["Merged ", link(other), " into this person"] : ["Merged into ", link(h.person)];
  if (h.op === "split")
    return h.person === pid ? ["Split ", link(other), " off this person"] : ["Split off ", link(h.person)];
  if (h.op === "alias") return ["Set the alias"];
  return [h.op];
}

async function renderPerson(main, id, query, stale, flash) {
  const from = query.get("from") || "";
  const to = query.get("to") || "";
  const pageSize = Math.min(500, Math.max(1, Number(query.get("limit")) || TIMELINE_PAGE));
  const [p, hist] = await Promise.all([get(personPath(id)), get(personPath(id) + "/history")]);
  if (stale()) return;
  const pid = p.id; // the number, where the URL gave text

  const redraw = (msg) => renderPerson(main, id, query, stale, msg).catch((e) => {
    if (!stale()) clear(main, el("h1", null, "People"), note(e.message, "bad", "alert"));
  });

  // -- alias, edited in place (PUT /people/{id})
  const aliasInput = el("input", { type: "text", id: "person-alias", name: "alias", value: aliasOf(p),
    placeholder: p.name, maxlength: 200, autocomplete: "off" });
  const aliasStatus = el("span", { id: "person-alias-status", role: "status", class: "muted" },
    aliasOf(p) ? "Your alias." : "No alias: the name comes from " + sourceWords(p.name_source) + ".");
  const aliasSave = el("button", { type: "submit", id: "person-alias-save" }, "Save alias");
  const aliasForm = el("form", { class: "alias-form", id: "person-alias-form" },
    el("div", { class: "grow" }, el("label", { for: "person-alias" }, "Alias"), el("br"), aliasInput),
    aliasSave, aliasStatus);
  aliasForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    aliasSave.disabled = true;
    aliasStatus.textContent = "Saving...";
    try {
      const v = aliasInput.value.trim();
      await api(personPath(id), { method: "PUT", json: { alias: v || null } });
      await redraw(note(v ? "Alias saved." : "Alias cleared.", "ok"));
    } catch (e) {
      aliasStatus.textContent = "Not saved: " + e.message;
      aliasSave.disabled = false;
    }
  });

  // -- identifiers, each can be split off into a new person
  const identifiers = el("ul", { class: "cards", id: "identifiers", "aria-label": "Identifiers" },
    p.identifiers.map((i) => {
      const err = el("p", { class: "error", role: "alert", "data-role": "split-error", hidden: true });
      const split = p.identifiers.length > 1
        ? el("button", { type: "button", class: "secondary", "data-role": "split" }, "Split off")
        : null;
      if (split) split.addEventListener("click", async () => {
        const what = `${KIND_WORDS[i.kind] || i.kind} ${identifierText(i)}`;
        if (!await confirmDialog(`Move ${what} out of ${p.name} into a new person? ` +
          "The names seen with it go along. You can undo it from History.", "Split off")) return;
        split.disabled = true;
        try {
          const r = await api(personPath(id) + "/split", { method: "POST", json: { identifier: { kind: i.kind, value: i.value } } });
          const n = r.body.split_into;
          await redraw(note([`${what} is now `, el("a", { href: "#" + personPath(n.id), id: "split-into" }, n.name),
            ` (person ${n.id}).`], "ok"));
        } catch (e) {
          err.hidden = false;
          err.textContent = e.message;
          split.disabled = false;
        }
      });
      return el("li", { class: "card", "data-kind": i.kind, "data-value": i.value },
        el("div", { class: "row" },
          el("span", null, el("strong", null, KIND_WORDS[i.kind] || i.kind), " ",
            el("span", { "data-role": "identifier" }, identifierText(i))),
          split),
        el("div", { class: "meta" },
          el("span", null, "from " + sourceWords(i.source)),
          el("span", null, "first seen " + msDate(i.first_seen_ms))),
        err);
    }));

  // -- names with their sources
  const names = el("ul", { class: "cards", id: "names", "aria-label": "Names" },
    (p.names || []).map((n) => el("li", { class: "card", "data-source": n.source },
      el("div", null, el("span", { "data-role": "name" }, n.name), " ",
        el("span", { class: "badge" + (n.name === p.name && n.source === p.name_source ? " ok" : "") }, sourceWords(n.source))),
      el("div", { class: "meta" },
        el("span", null, "first seen " + msDate(n.first_seen_ms)),
        el("span", null, "last seen " + msDate(n.last_seen_ms))))));

  // -- merge with another person, picked by search
  const mergeQ = el("input", { type: "search", id: "merge-q", placeholder: "a name or a number", autocomplete: "off" });
  const mergeResults = el("ul", { class: "cards", id: "merge-results", "aria-label": "Persons to merge" });
  const mergeProblem = el("div", { role: "alert" });
  const mergeForm = el("form", { class: "controls", id: "merge-form", hidden: true, role: "search" },
    el("div", { class: "grow" }, el("label", { for: "merge-q" }, "Find the other person"), mergeQ),
    el("div", null, el("button", { type: "submit" }, "Find")));
  const mergeOpen = el("button", { type: "button", class: "secondary", id: "merge-open", "aria-expanded": "false" }, "Merge with...");
  let asked = 0; // only the latest search's answer is drawn
  const findOthers = async () => {
    clear(mergeProblem);
    const mine = ++asked;
    try {
      const v = mergeQ.value.trim();
      const page = await get("/people?limit=20" + (v ? "&q=" + encodeURIComponent(v) : ""));
      if (mine !== asked) return;
      mergeResults.dataset.q = v;
      const others = page.people.filter((o) => o.id !== p.id);
      clear(mergeResults, others.length ? others.map((o) => {
        const b = el("button", { type: "button", "data-role": "merge" }, "Merge");
        b.addEventListener("click", async () => {
          if (!await confirmDialog(`Merge ${o.name} (person ${o.id}) into ${p.name}? ` +
            `Its identifiers and names move here and person ${o.id} is gone. You can undo it from History.`, "Merge")) return;
          b.disabled = true;
          try {
            await api(personPath(id) + "/merge", { method: "POST", json: { other: o.id } });
            await redraw(note(`Merged ${o.name} (person ${o.id}) into this person. Undo it from History below.`, "ok"));
          } catch (e) {
            clear(mergeProblem, note(e.message, "bad", "alert"));
            b.disabled = false;
          }
        });
        return el("li", { class: "card", "data-id": o.id },
          el("div", { class: "row" }, el("span", { class: "title" }, o.name), b),
          el("div", { class: "meta" }, identifierSpans(o)));
      }) : el("li", { class: "muted" }, "Nobody else matches."));
    } catch (e) {
      clear(mergeProblem, note(e.message, "bad", "alert"));
    }
  };
  mergeForm.addEventListener("submit", (ev) => { ev.preventDefault(); findOthers(); });
  mergeOpen.addEventListener("click", () => {
    const open = mergeForm.hidden;
    mergeForm.hidden = !open;
    mergeOpen.setAttribute("aria-expanded", String(open));
    if (open) { mergeQ.focus(); findOthers(); } else clear(mergeResults);
  });

  // -- history, each entry undoable
  const history = el("ol", { class: "cards", id: "history", "aria-label": "History" },
    hist.history.map((h) => {
      const err = el("p", { class: "error", role: "alert", "data-role": "undo-error", hidden: true });
      const undo = el("button", { type: "button", class: "secondary", "data-role": "undo",
        disabled: h.undone_at_ms !== null && h.undone_at_ms !== undefined }, "Undo");
      undo.addEventListener("click", async () => {
        undo.disabled = true;
        err.hidden = true;
        try {
          await api("/people/history/" + encodeURIComponent(h.seq) + "/undo", { method: "POST" });
          if (h.op === "split" && h.person !== pid) {
            // this page is the split-off person, gone now: show the one it went back to
            location.hash = "#" + personPath(h.person);
            return;
          }
          const msg = h.op === "merge" && h.person === pid
            ? ["Undone: ", el("a", { href: "#" + personPath(h.other), id: "undo-back" }, "person " + h.other), " is back."]
            : ["Undone."];
          await redraw(note(msg, "ok"));
        } catch (e) {
          err.hidden = false;
          err.textContent = "Not undone: " + e.message;
          undo.disabled = false;
        }
      });
      return el("li", { class: "card", "data-seq": h.seq, "data-op": h.op },
        el("div", { class: "row" }, el("span", null, historyWords(h, pid)), undo),
        el("div", { class: "meta" },
          el("span", null, msDate(h.at_ms)),
          h.auto ? el("span", { class: "badge" }, "automatic link") : null,
          h.undone_at_ms ? el("span", { class: "badge warn" }, "undone " + msDate(h.undone_at_ms)) : null),
        err);
    }));

  // -- timeline, newest first, cursor-paged, filtered by dates
  const fromIn = el("input", { type: "date", id: "timeline-from", name: "from", value: from });
  const toIn = el("input", { type: "date", id: "timeline-to", name: "to", value: to });
  const range = el("form", { class: "controls", id: "timeline-range" },
    el("div", null, el("label", { for: "timeline-from" }, "From"), fromIn),
    el("div", null, el("label", { for: "timeline-to" }, "To"), toIn),
    el("div", null, el("button", { type: "submit" }, "Show")));
  range.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (fromIn.value) q.set("from", fromIn.value);
    if (toIn.value) q.set("to", toIn.value);
    if (query.get("limit")) q.set("limit", query.get("limit"));
    const s = q.toString();
    location.hash = "#" + personPath(id) + (s ? "?" + s : "");
  });
  const timeline = el("ol", { class: "cards", id: "timeline", "aria-label": "Timeline", "data-from": from, "data-to": to });
  const timelineSummary = el("p", { class: "muted", id: "timeline-summary", role: "status" });
  const timelineProblem = el("div", { role: "alert" });
  const more = el("button", { type: "button", class: "secondary", id: "timeline-more", hidden: true }, "Load more");
  let cursor = "";
  let shown = 0;
  const loadTimeline = async () => {
    more.disabled = true;
    clear(timelineProblem);
    try {
      const q = new URLSearchParams({ limit: String(pageSize) });
      if (from) q.set("from", from);
      if (to) q.set("to", to);
      if (cursor) q.set("cursor", cursor);
      const page = await get(personPath(id) + "/timeline?" + q);
      if (stale()) return;
      timeline.append(...page.items.map(timelineItem));
      shown += page.items.length;
      cursor = page.next_cursor || "";
      more.hidden = !cursor;
      timelineSummary.textContent = shown === 0
        ? (from || to ? "No calls or messages in these dates." : "No calls or messages yet.")
        : plural(shown, "item") + " shown, newest first" + (cursor ? "; more below" : "");
    } catch (e) {
      clear(timelineProblem, note(e.message, "bad", "alert"));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", loadTimeline);
  await loadTimeline();
  if (stale()) return;

  const forget = el("button", { type: "button", class: "danger", id: "person-delete" }, "Delete");
  const forgetProblem = el("div", { role: "alert" });
  forget.addEventListener("click", async () => {
    if (!await confirmDialog(`Forget ${p.name} (person ${p.id})? Every call with their numbers and ` +
      "every message from them is deleted from lucy and from search, and will not come back. " +
      "Your audio files are not touched. This cannot be undone.", "Delete")) return;
    forget.disabled = true;
    try {
      await api(personPath(id), { method: "DELETE" });
      location.hash = "#/people";
    } catch (e) {
      clear(forgetProblem, note(e.message, "bad", "alert"));
      forget.disabled = false;
    }
  });

  document.title = p.name + " - lucy";
  clear(main,
    el("p", null, el("a", { href: "#/people" }, "All people")),
    el("h1", { id: "person-h", "data-id": p.id }, p.name),
    el("p", { class: "muted", id: "person-summary" },
      `Person ${p.id} · name from ${sourceWords(p.name_source)} · ${countsText(p)}`),
    el("div", { id: "person-note", "aria-live": "polite" }, flash || null),
    el("div", { class: "panes" },
      el("div", null,
        aliasForm,
        el("h2", null, "Identifiers"), identifiers,
        el("h2", null, "Names"), (p.names || []).length ? names : el("p", { class: "muted" }, "No names seen yet."),
        el("h2", null, "Merge"),
        el("p", { class: "muted" }, "Two entries for the same person? Merge the other one into this one."),
        mergeOpen, mergeForm, mergeProblem, mergeResults,
        el("h2", null, "History"),
        hist.history.length ? history : el("p", { class: "muted", id: "history-empty" }, "No merges, splits or aliases yet."),
        el("h2", null, "Forget"),
        el("p", { class: "muted" }, "Delete this person with all their calls and messages."),
        forget, forgetProblem),
      el("section", { "aria-labelledby": "timeline-h" },
        el("h2", { id: "timeline-h" }, "Calls and messages"),
        range, timelineSummary, timelineProblem, timeline, el("p", null, more))));
}

export async function render(main, parts, query, stale) {
  if (parts[0]) return renderPerson(main, parts[0], query, stale, null);
  return renderList(main, query, stale);
}
