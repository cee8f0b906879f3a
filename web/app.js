// app.js - the UI's entry point: a hash router over five views.
//
//   #/recordings            list          #/recordings/{id}?t=ms  transcript
//   #/messages              contacts      #/messages/{id}?m=wamid messages
//   #/people?q=             persons       #/people/{id}?from=&to= one person
//   #/search?q=&source=     search        #/status                health
//   #/ask?q=                a question, answered with playable citations
//
// Each view module exports render(container, parts, query) and may return
// a cleanup function (timers, object URLs), called before the next view.
import { ApiError } from "./api.js";
import { clear, el, note, parseHash } from "./format.js";
import * as recordings from "./recordings.js";
import * as messages from "./messages.js";
import * as people from "./people.js";
import * as search from "./search.js";
import * as ask from "./ask.js";
import * as status from "./status.js";

const views = { recordings, messages, people, search, ask, status };
const titles = { recordings: "Recordings", messages: "Messages", people: "People", search: "Search", ask: "Ask", status: "Status" };

let cleanup = null;
let generation = 0;

async function route() {
  const { parts, query } = parseHash(location.hash);
  const name = views[parts[0]] ? parts[0] : "recordings";
  const view = views[name];
  const main = document.getElementById("view");
  if (cleanup) { try { cleanup(); } catch (e) { /* the old view is gone anyway */ } }
  // A question the old view asked (confirmDialog) is moot on another page: Cancel.
  const asking = document.getElementById("confirm-dialog");
  if (asking) asking.close();
  cleanup = null;
  const mine = ++generation;
  for (const a of document.querySelectorAll("nav a[data-view]"))
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  document.title = `${titles[name]} - lucy`;
  clear(main, el("p", { class: "muted" }, "Loading..."));
  try {
    const c = await view.render(main, parts.slice(1), query, () => mine !== generation);
    if (mine === generation) cleanup = c || null;
    else if (c) c();
  } catch (e) {
    if (mine !== generation) return;
    clear(main, el("h1", null, titles[name]),
      note(e instanceof ApiError ? e.message : "Something went wrong in the page: " + e.message, "bad", "alert"));
  }
}

window.addEventListener("hashchange", route);
route();
