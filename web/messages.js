// messages.js - the Messages view: WhatsApp contacts, and one contact's
// latest messages with the alias editable in place (PUT /contacts/{id}).
// A contact is shown by the alias you gave it here, else by its person's
// name as the People view shows it, else by its WhatsApp profile name.
import { api, get } from "./api.js";
import { clear, confirmDialog, dateTime, el, note } from "./format.js";

function name(c) {
  return (c.alias_source === "user" && c.alias) || (c.person && c.person.name) || c.profile_name ||
    c.wa_id || c.user_id || c.id;
}

export const TYPE_WORDS = {
  text: "", audio: "Voice note", image: "Image", video: "Video", document: "Document", sticker: "Sticker",
  location: "Location", contacts: "Contact card", reaction: "Reaction", interactive: "Reply", button: "Button",
};

const MEDIA_WORDS = {
  pending: "voice note waiting to be downloaded and transcribed",
  downloaded: "voice note downloaded, waiting to be transcribed",
  transcribed: "voice note transcribed",
  no_speech: "voice note without speech",
  failed: "the voice note could not be downloaded or transcribed",
  not_downloaded: "voice note not downloaded (WHATSAPP_ACCESS_TOKEN is not set)",
};

function contactItem(c, selected) {
  return el("li", { class: "card" + (selected ? " target" : ""), "data-id": c.id },
    el("a", { class: "title", href: "#/messages/" + encodeURIComponent(c.id),
      "aria-current": selected ? "true" : null }, name(c)),
    el("div", { class: "meta" },
      el("span", null, c.wa_id ? "+" + c.wa_id : c.user_id || c.id),
      el("span", null, `${c.messages} message${c.messages === 1 ? "" : "s"}`),
      c.last_message_time ? el("span", null, "last " + dateTime(c.last_message_time)) : null));
}

// Delete (forget) for one message, with a confirm; the item goes on 204.
function deleteButton(m) {
  const b = el("button", { type: "button", class: "danger small", "data-role": "delete",
    "aria-label": "Delete this message" }, "Delete");
  b.addEventListener("click", async () => {
    if (!await confirmDialog("Forget this message? It is deleted from lucy and from search, " +
      "and will not come back if WhatsApp sends it again.", "Delete")) return;
    const item = b.closest("li");
    b.disabled = true;
    try {
      await api("/messages/" + encodeURIComponent(m.wamid), { method: "DELETE" });
      item.remove();
    } catch (e) {
      item.append(note(e.message, "bad", "alert"));
      b.disabled = false;
    }
  });
  return b;
}

function messageItem(m, target) {
  const kind = TYPE_WORDS[m.type] !== undefined ? TYPE_WORDS[m.type] : m.type;
  const media = m.media ? MEDIA_WORDS[m.media.state] || m.media.state : null;
  return el("li", { class: "message" + (m.wamid === target ? " target" : ""), "data-wamid": m.wamid, id: "m-" + m.wamid },
    el("div", { class: "meta" },
      el("span", null, dateTime(m.time)),
      kind ? el("span", { class: "badge" }, kind) : null,
      m.rate_limited ? el("span", { class: "badge warn" }, "over the rate limit (kept)") : null,
      m.state && m.state !== "done" ? el("span", { class: "badge warn" }, "processing: " + m.state) : null,
      deleteButton(m)),
    m.text ? el("p", null, m.text) : null,
    m.media && m.media.transcript ? el("p", null, el("em", null, "Transcript: "), m.media.transcript) : null,
    media && !(m.media && m.media.transcript) ? el("p", { class: "muted" }, media) : null);
}

function aliasForm(contact, onSaved) {
  const input = el("input", { type: "text", id: "alias-input", name: "alias", value: contact.alias_source === "user" ? contact.alias : "",
    placeholder: contact.profile_name || "a name for this contact", maxlength: 256, autocomplete: "off" });
  const status = el("span", { id: "alias-status", role: "status", class: "muted" },
    contact.alias_source === "user" ? "Your alias." : contact.profile_name ? "Using the WhatsApp profile name." : "");
  const save = el("button", { type: "submit", id: "alias-save" }, "Save alias");
  const form = el("form", { class: "alias-form", id: "alias-form" },
    el("div", { class: "grow" }, el("label", { for: "alias-input" }, "Alias"), el("br"), input),
    save, status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    status.textContent = "Saving...";
    try {
      const value = input.value.trim();
      const r = await api("/contacts/" + encodeURIComponent(contact.id), { method: "PUT", json: { alias: value || null } });
      status.textContent = value ? "Saved." : "Cleared: using the WhatsApp profile name.";
      onSaved(r.body);
    } catch (e) {
      status.textContent = "Not saved: " + e.message;
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// The contact's person (docs/people.md): one search by its WhatsApp id,
// after the page is drawn; the link appears only when that person exists,
// and a failed look-up leaves the contact page as it is.
async function personLink(c, where) {
  const value = c.wa_id || c.user_id;
  if (!value || !where) return;
  try {
    const page = await get("/people?limit=20&q=" + encodeURIComponent(value));
    const p = page.people.find((x) => x.identifiers.some((i) => (i.kind === "wa_id" || i.kind === "user_id") && i.value === value));
    if (p && where.isConnected)
      where.append(" · ", el("a", { href: "#/people/" + encodeURIComponent(p.id), id: "contact-person" }, "person page"));
  } catch (e) {
    if (where.isConnected) where.append(" · ", el("span", { class: "error" }, "no person page: " + e.message));
  }
}

async function loadContacts() {
  const out = [];
  let cursor = "";
  do {
    const page = await get("/contacts?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    out.push(...page.contacts);
    cursor = page.next_cursor;
  } while (cursor && out.length < 20000);
  out.sort((a, b) => (b.last_message_time || 0) - (a.last_message_time || 0));
  return out;
}

export async function render(main, parts, query, stale) {
  const selected = parts[0] || null;
  const [contacts, contact] = await Promise.all([
    loadContacts(),
    selected ? get("/contacts/" + encodeURIComponent(selected)) : Promise.resolve(null),
  ]);
  if (stale()) return;
  const list = el("ul", { class: "cards", id: "contacts", "aria-label": "Contacts" },
    contacts.map((c) => contactItem(c, c.id === selected)));
  const detail = el("section", { id: "contact", "aria-labelledby": "contact-h" });
  clear(main, el("h1", null, "Messages"),
    contacts.length === 0 ? note("No WhatsApp messages yet. They arrive through the webhook (docs/whatsapp.md).") : null,
    el("div", { class: "panes" }, el("nav", { "aria-label": "Contacts" }, list), detail));

  const drawContact = (c) => {
    const target = query.get("m");
    clear(detail,
      el("h2", { id: "contact-h" }, name(c)),
      el("p", { class: "muted", id: "contact-ids" }, c.wa_id ? "+" + c.wa_id : c.user_id || c.id),
      aliasForm(c, (fresh) => {
        const item = list.querySelector(`li[data-id="${CSS.escape(c.id)}"]`);
        if (item) item.replaceWith(contactItem(fresh, true));
        clear(detail.querySelector("#contact-h"), name(fresh));
      }),
      el("h3", null, `Latest messages (${c.recent_messages.length} of ${c.messages})`),
      el("ol", { class: "cards", id: "messages", "aria-label": "Messages" },
        c.recent_messages.map((m) => messageItem(m, target))));
    const hit = target && detail.querySelector(`[data-wamid="${CSS.escape(target)}"]`);
    if (hit) hit.scrollIntoView({ block: "center" });
    personLink(c, detail.querySelector("#contact-ids"));
  };
  if (contact) drawContact(contact);
  else if (contacts.length) clear(detail, el("p", { class: "muted" }, "Choose a contact to see the messages."));
}
