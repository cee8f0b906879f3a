// recordings.js - the Recordings view: the list (who, direction, the call's
// real date, length, the transcript's first words (`preview`), status in
// plain words; sort; filter by status, person and dates) and one recording (facts, Transcribe button, audio player,
// transcript segments that seek the player, and its transcript versions
// with the active one marked and a button to make another one active).
//
// The Transcribe button cannot cause a retry storm: it is disabled while
// the recording's job is queued, running, waiting on a lock or blocked by
// a full disk (lucy retries those by itself), and after a refusal until
// the Retry-After lucy gave; the reason and the retry time are shown next
// to it. Polling is slow (2 s on an open recording with an active job,
// 5 s on the list while any job is active, else 30 s).
import { api, get, audioSource, audioError, download } from "./api.js";
import { basename, bytes, clear, clock, confirmDialog, dateTime, duration, el, note, timestamp, toDate } from "./format.js";

const ACTIVE = new Set(["queued", "running", "retry_wait", "blocked"]);
const NEEDS_JOB = new Set(["retry_wait", "failed", "blocked"]); // words need the job's details

// The plain-words status of a recording (list row or full document).
// Returns {key, words, kind}: key for filtering, kind for the badge colour.
// ", 45 %, about 2 min left" while a worker runs the job (DESIGN §13).
function progressWords(rec) {
  if (rec.progress === null || rec.progress === undefined) return "";
  const pct = `, ${Math.floor(rec.progress * 100)} %`;
  if (rec.eta_s === null || rec.eta_s === undefined) return pct;
  return pct + `, about ${rec.eta_s < 60 ? `${Math.max(1, rec.eta_s)} s` : `${Math.round(rec.eta_s / 60)} min`} left`;
}

// Who said a segment: "Me", the person's name for the other party of a
// per-channel call ("Them" when the number is nobody's), nothing for mono.
export function speakerName(seg, rec) {
  if (seg.speaker === "me") return "Me";
  if (seg.channel === null || seg.channel === undefined) return "";
  const person = rec.call && rec.call.person;
  if (person && person.id === seg.speaker && person.name) return person.name;
  return "Them";
}

export function describe(rec, lockedUntil) {
  const job = rec.job || {};
  const retryAt = rec.next_retry_at || job.next_retry_at;
  switch (rec.transcript_status) {
    case "none":
      return { key: "scanned", words: "scanned, not transcribed yet", kind: "" };
    case "queued":
      if (lockedUntil)
        return { key: "locked", kind: "warn",
          words: `locked: being synced by the cloud storage client, will retry by itself at ${clock(lockedUntil)}` };
      return { key: "queued", words: "queued for transcription", kind: "" };
    case "running":
      return { key: "transcribing", kind: "",
        words: "transcribing now" + progressWords(rec) + (job.updated_at ? ` (started ${clock(job.updated_at)})` : "") };
    case "retry_wait":
      if (job.error_type === "file_locked" || (!job.error_type && lockedUntil))
        return { key: "locked", kind: "warn",
          words: `locked: being synced by the cloud storage client, will retry by itself at ${clock(retryAt || lockedUntil)}` };
      return { key: "waiting", kind: "warn",
        words: `waiting to retry by itself at ${clock(retryAt)}` + (job.message ? `: ${job.message}` : "") };
    case "blocked":
      return { key: "paused", kind: "warn",
        words: "paused: the disk is nearly full; transcription resumes by itself when space returns" };
    case "done":
      return { key: "done", words: "done", kind: "ok" };
    case "no_speech":
      return { key: "no_speech", words: "no speech (silence or noise only)", kind: "ok" };
    case "failed":
      if (job.error_type === "corrupt")
        return { key: "corrupt", kind: "bad", words: "corrupt: " + (job.message || "the audio cannot be decoded") };
      return { key: "failed", kind: "bad", words: "failed: " + (job.message || "see the log") };
    default:
      return { key: rec.transcript_status || "unknown", words: rec.transcript_status || "unknown", kind: "" };
  }
}

const SCAN_WORDS = {
  missing: "file missing (the transcript is kept)",
  unavailable: "folder unavailable: unmounted or the sync client stopped (the transcript is kept)",
};

const FILTER_LABELS = {
  scanned: "Scanned", queued: "Queued", transcribing: "Transcribing", locked: "Locked (syncing)",
  waiting: "Waiting to retry", paused: "Paused (disk full)", done: "Done", no_speech: "No speech",
  corrupt: "Corrupt", failed: "Failed", missing: "File missing",
};

// When the call took place: the call's started_at (lucy picked it from the
// recorder's sidecar, the file name, the tags or the mtime: call.sources),
// else, for a recording whose call is not read yet, its tags or mtime. A
// local wall-clock time (no zone) is read as the browser's local time.
function recordedAt(rec) {
  const tags = rec.tags || {};
  const call = rec.call || {};
  return toDate(call.started_at) || toDate(tags.creation_time) || toDate(tags.date) || toDate(rec.mtime);
}

// lucy's title: "Call with John Doe · in · 14 Apr 2023 21:57" (the call's
// person or number, direction, date), else the primary file's name.
function title(rec) {
  return rec.title || basename(rec.paths && rec.paths[0] && rec.paths[0].path) || rec.id.slice(0, 12);
}

// Who the call was with: the person (src/people/: their display name),
// else a name the recorder gave, else the number.
function who(rec) {
  const call = rec.call || {};
  if (call.person && call.person.name) return call.person.name;
  if (call.names && call.names.length) return call.names[0].name;
  if (call.number) return call.number.e164 || call.number.raw;
  return null;
}

const DIRECTION_WORDS = { in: "incoming", out: "outgoing", conference: "conference" };

const SORTS = {
  newest: { label: "Newest first", cmp: (a, b) => (recordedAt(b) || 0) - (recordedAt(a) || 0) },
  oldest: { label: "Oldest first", cmp: (a, b) => (recordedAt(a) || 0) - (recordedAt(b) || 0) },
  longest: { label: "Longest first", cmp: (a, b) => (b.duration_s || 0) - (a.duration_s || 0) },
  shortest: { label: "Shortest first", cmp: (a, b) => (a.duration_s || 0) - (b.duration_s || 0) },
  name: { label: "Name", cmp: (a, b) => title(a).localeCompare(title(b)) },
  status: { label: "Status", cmp: (a, b) => a.state.key.localeCompare(b.state.key) },
};

// filter: a state key; person: a person id ("" = everyone); from/to:
// "YYYY-MM-DD" from the date inputs, on the call's date, inclusive.
const listState = { sort: "newest", filter: "", person: "", from: "", to: "" };

function inDates(rec) {
  const at = recordedAt(rec);
  if (!listState.from && !listState.to) return true;
  if (!at) return false;
  const day = `${at.getFullYear()}-${String(at.getMonth() + 1).padStart(2, "0")}-${String(at.getDate()).padStart(2, "0")}`;
  return (!listState.from || day >= listState.from) && (!listState.to || day <= listState.to);
}

const personOf = (rec) => (rec.call && rec.call.person) || null;

async function loadAll() {
  const out = [];
  let cursor = "";
  do {
    const page = await get("/recordings?limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    out.push(...page.recordings);
    cursor = page.next_cursor;
  } while (cursor && out.length < 20000);
  // The list has no job details; fetch them for the few rows whose words need them.
  const detailed = out.filter((r) => NEEDS_JOB.has(r.transcript_status)).slice(0, 50);
  await Promise.all(detailed.map(async (r) => {
    try { Object.assign(r, await get("/recordings/" + r.id)); } catch (e) { /* words stay generic */ }
  }));
  for (const r of out) r.state = describe(r);
  return out;
}

function listItem(rec) {
  const at = recordedAt(rec);
  const call = rec.call || {};
  const scan = SCAN_WORDS[rec.scan_status];
  return el("li", { class: "card", "data-id": rec.id, "data-status": rec.state.key },
    el("a", { class: "title", href: "#/recordings/" + rec.id }, title(rec)),
    el("div", { class: "meta" },
      who(rec) ? el("span", { "data-role": "who" }, who(rec)) : null,
      call.direction ? el("span", { class: "badge", "data-role": "direction" }, DIRECTION_WORDS[call.direction] || call.direction) : null,
      el("span", null, el("span", { class: "visually-hidden" }, "Recorded "), at ? dateTime(at) : "unknown date"),
      el("span", null, duration(rec.duration_s))),
    rec.preview ? el("p", { class: "preview muted", "data-role": "preview" }, rec.preview) : null,
    el("p", { class: "status-text" },
      el("span", { class: "badge " + rec.state.kind, "data-role": "status" }, rec.state.words),
      scan ? [" ", el("span", { class: "badge warn" }, scan)] : null));
}

async function renderList(main, query, stale) {
  if (query.get("status")) listState.filter = query.get("status");
  const sortSel = el("select", { id: "rec-sort" },
    Object.entries(SORTS).map(([k, v]) => el("option", { value: k, selected: k === listState.sort }, v.label)));
  const filterSel = el("select", { id: "rec-filter" });
  if (query.get("person")) listState.person = query.get("person");
  const personSel = el("select", { id: "rec-person" });
  const fromIn = el("input", { type: "date", id: "rec-from", value: listState.from });
  const toIn = el("input", { type: "date", id: "rec-to", value: listState.to });
  const list = el("ul", { class: "cards two", id: "recordings", "aria-label": "Recordings" });
  const summary = el("p", { class: "muted", id: "rec-summary", role: "status" });
  // the last "Scan now" result stays until the next scan: the list's own
  // refresh rewrites `summary` and must not wipe it
  const scanResult = el("p", { class: "muted", id: "rec-scan-result", role: "status" });
  clear(main,
    el("h1", null, "Recordings"),
    el("div", { class: "controls" },
      el("div", null, el("label", { for: "rec-sort" }, "Sort"), sortSel),
      el("div", null, el("label", { for: "rec-filter" }, "Show"), filterSel),
      el("div", null, el("label", { for: "rec-person" }, "With"), personSel),
      el("div", null, el("label", { for: "rec-from" }, "From"), fromIn),
      el("div", null, el("label", { for: "rec-to" }, "To"), toIn),
      el("div", null, el("button", { type: "button", class: "secondary", id: "rec-scan",
        onclick: (ev) => scanNow(ev.target, scanResult, refresh) }, "Scan now"))),
    scanResult, summary, list);

  let recs = [];
  const draw = () => {
    const counts = {};
    for (const r of recs) {
      counts[r.state.key] = (counts[r.state.key] || 0) + 1;
      if (r.scan_status === "missing") counts.missing = (counts.missing || 0) + 1;
    }
    clear(filterSel, el("option", { value: "" }, `All (${recs.length})`),
      Object.keys(FILTER_LABELS).filter((k) => counts[k] || k === listState.filter).map((k) =>
        el("option", { value: k, selected: k === listState.filter }, `${FILTER_LABELS[k]} (${counts[k] || 0})`)));
    const people = new Map();
    for (const r of recs) {
      const p = personOf(r);
      if (p) people.set(String(p.id), p.name || `person ${p.id}`);
    }
    clear(personSel, el("option", { value: "" }, "Everyone"),
      [...people].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) =>
        el("option", { value: id, selected: id === listState.person }, name)));
    const shown = recs.filter((r) => (!listState.filter || r.state.key === listState.filter ||
      (listState.filter === "missing" && r.scan_status === "missing")) &&
      (!listState.person || String((personOf(r) || {}).id) === listState.person) && inDates(r));
    shown.sort(SORTS[listState.sort].cmp);
    clear(list, shown.map(listItem));
    summary.textContent = recs.length === 0
      ? "No recordings yet. lucy scans the folders in LUCY_RECORDINGS_DIRS; new files appear here."
      : `${shown.length} of ${recs.length} recordings shown.`;
  };
  sortSel.addEventListener("change", () => { listState.sort = sortSel.value; draw(); });
  filterSel.addEventListener("change", () => { listState.filter = filterSel.value; draw(); });
  personSel.addEventListener("change", () => { listState.person = personSel.value; draw(); });
  fromIn.addEventListener("change", () => { listState.from = fromIn.value; draw(); });
  toIn.addEventListener("change", () => { listState.to = toIn.value; draw(); });

  let timer = null;
  let stopped = false;
  async function refresh() {
    clearTimeout(timer);
    try {
      recs = await loadAll();
      if (stopped || stale()) return;
      draw();
    } catch (e) {
      if (stopped) return;
      summary.textContent = "Could not load the recordings: " + e.message;
    }
    const active = recs.some((r) => ACTIVE.has(r.transcript_status));
    if (!stopped) timer = setTimeout(refresh, active ? 5000 : 30000);
  }
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

async function scanNow(button, result, refresh) {
  button.disabled = true;
  result.textContent = "Scanning...";
  try {
    const s = (await api("/recordings/scan", { method: "POST" })).body;
    result.textContent = `Scan done at ${clock(new Date())}: ${s.files_seen} files seen, ${s.new} new, ` +
      `${s.changed} changed, ${s.locked} locked, ${s.corrupt} corrupt.`;
    await refresh();
  } catch (e) {
    result.textContent = "The scan could not run: " + e.message;
  } finally {
    setTimeout(() => { button.disabled = false; }, 3000);
  }
}

// ---- one recording ----------------------------------------------------------

const AUDIO_WORDS = {
  file_locked: "The audio cannot play now: the file is being synced by the cloud storage client. Try again in a while.",
  not_found: "The audio file is not present (missing, or its folder is unmounted). The transcript is kept.",
  conflict: "The file changed since the last scan; lucy will rescan it. Try again after the next scan.",
  forbidden: "lucy may not read this file; check the folder's permissions.",
};

function transcribeState(rec, hold, lockedUntil) {
  const st = rec.transcript_status;
  if (ACTIVE.has(st)) {
    const d = describe(rec, lockedUntil);
    const why = {
      queued: d.key === "locked" ? d.words : "Queued: waiting for a free transcription worker.",
      running: "Transcribing now.",
      retry_wait: d.words.charAt(0).toUpperCase() + d.words.slice(1) + ".",
      blocked: "Paused: the disk is nearly full; lucy resumes by itself when space returns.",
    }[st];
    return { disabled: true, label: "Transcribe", why };
  }
  if (hold && hold.until > Date.now())
    return { disabled: true, label: "Transcribe", why: `${hold.why} You can ask again at ${clock(hold.until / 1000)}.` };
  const again = st === "done" || st === "no_speech" || st === "failed";
  return { disabled: false, label: again ? "Transcribe again" : "Transcribe",
    why: again ? "" : "Not transcribed yet." };
}

// The transcript files lucy serves (GET /recordings/{id}/transcript.EXT).
const DOWNLOADS = [["txt", "Text"], ["srt", "SRT"], ["vtt", "WebVTT"], ["json", "JSON"]];

// Download buttons for the transcript, and Delete (forget) with a confirm.
function keepAndForget(id, rec, problem) {
  const buttons = DOWNLOADS.map(([ext, label]) => {
    const b = el("button", { type: "button", class: "secondary", id: "download-" + ext,
      "data-role": "download", "aria-label": `Download the transcript as ${label}` }, label);
    b.addEventListener("click", async () => {
      clear(problem);
      try {
        await download(`/recordings/${encodeURIComponent(id)}/transcript.${ext}`, `transcript.${ext}`);
      } catch (e) {
        clear(problem, note(e.message, "bad", "alert"));
      }
    });
    return b;
  });
  const del = el("button", { type: "button", class: "danger", id: "rec-delete" }, "Delete");
  del.addEventListener("click", async () => {
    if (!await confirmDialog(`Forget "${title(rec)}"? Its transcript and search entries are deleted ` +
      "and lucy will not pick it up again. Your audio file is not touched.", "Delete")) return;
    del.disabled = true;
    try {
      await api(`/recordings/${encodeURIComponent(id)}`, { method: "DELETE" });
      location.hash = "#/recordings";
    } catch (e) {
      clear(problem, note(e.message, "bad", "alert"));
      del.disabled = false;
    }
  });
  return { buttons, del };
}

async function renderRecording(main, id, query, stale) {
  let rec = await get("/recordings/" + encodeURIComponent(id));
  if (stale()) return null;
  let hold = null;           // {until: ms, why}: lucy asked to wait (Retry-After)
  let lockedUntil = null;    // from a 423 reply, until the job itself says so
  let stopped = false, timer = null, revoke = () => {};

  const statusBadge = el("span", { class: "badge", id: "rec-status", "data-role": "status" });
  const button = el("button", { type: "button", id: "transcribe" }, "Transcribe");
  const why = el("span", { id: "transcribe-why", role: "status" });
  const facts = el("dl", { class: "facts" });
  const audio = el("audio", { controls: true, preload: "metadata", class: "player", id: "player",
    "aria-label": "Recording audio" });
  const audioNote = el("div", { id: "audio-note", "aria-live": "polite" });
  const transcriptBox = el("section", { "aria-labelledby": "transcript-h" });
  const versionsBox = el("section", { id: "versions", "aria-labelledby": "versions-h" });
  const keepProblem = el("div", { id: "keep-problem", "aria-live": "polite" });
  const keep = keepAndForget(id, rec, keepProblem);
  const downloads = el("div", { class: "controls", id: "downloads", role: "group",
    "aria-label": "Download the transcript" }, el("span", { class: "muted" }, "Download:"), keep.buttons);
  clear(main,
    el("p", null, el("a", { href: "#/recordings" }, "All recordings")),
    el("h1", { id: "rec-title" }, title(rec)),
    el("p", null, statusBadge),
    el("div", { class: "transcribe" }, button, why, keep.del),
    audio, audioNote, facts, downloads, keepProblem, transcriptBox, versionsBox);

  // Audio: loaded directly (range requests) or through a Blob with the token.
  const showAudioError = (e) => {
    if (stopped) return;
    const words = e ? AUDIO_WORDS[e.errorType] || e.message
      : `This browser cannot play this audio (${rec.codec || "unknown codec"}).`;
    clear(audioNote, note(words + (e && e.body.retry_after_s ? ` lucy suggests retrying after ${clock(Date.now() / 1000 + e.body.retry_after_s)}.` : ""), "bad"));
  };
  audio.addEventListener("error", () => { if (!stopped && audio.getAttribute("src")) audioError(id).then(showAudioError, showAudioError); });
  audio.addEventListener("loadedmetadata", () => clear(audioNote));
  audioSource(id).then((src) => {
    if (stopped) return src.revoke();
    revoke = src.revoke;
    audio.src = src.url;
  }, showAudioError);

  const segButtons = [];
  const seek = (ms, play) => {
    const go = () => {
      audio.currentTime = ms / 1000;
      if (play) audio.play().catch(() => { /* no autoplay or no output device: the seek stands */ });
    };
    if (audio.readyState >= 1) go();
    else audio.addEventListener("loadedmetadata", go, { once: true });
  };
  const wordSpans = [];
  audio.addEventListener("timeupdate", () => {
    const ms = audio.currentTime * 1000;
    for (const b of segButtons)
      b.classList.toggle("current", ms >= b.dataset.t0 && ms < b.dataset.t1);
    // The word being played (words carry their own times, DESIGN §13).
    for (const w of wordSpans)
      w.classList.toggle("playing", ms >= Number(w.dataset.t0) && ms < Number(w.dataset.t1));
  });

  const drawTranscript = () => {
    segButtons.length = 0;
    const t = rec.transcript;
    downloads.hidden = !t; // 409 until there is a transcript
    if (!t) {
      clear(transcriptBox, el("h2", { id: "transcript-h" }, "Transcript"),
        el("p", { class: "muted" }, "No transcript yet."));
      return;
    }
    wordSpans.length = 0;
    const target = query.get("t") !== null ? Number(query.get("t")) : null;
    const items = (t.segments || []).map((s, i) => {
      // Words with times are spans inside the segment's button: a click on
      // one plays from that word, anywhere else from the segment's start.
      const words = (s.words || []).length
        ? s.words.flatMap((w, k) => {
          const span = el("span", { class: "w", "data-t0": w.t0_ms, "data-t1": w.t1_ms }, w.text);
          wordSpans.push(span);
          return k ? [" ", span] : [span];
        })
        : [s.text];
      const who = speakerName(s, rec);
      const b = el("button", { type: "button", "data-t0": s.t0_ms, "data-t1": s.t1_ms, "data-index": i,
        "aria-label": `Play from ${timestamp(s.t0_ms)}: ${who ? who + ": " : ""}${s.text}`,
        onclick: (e) => {
          const w = e.target.closest && e.target.closest(".w");
          seek(w ? Number(w.dataset.t0) : s.t0_ms, true);
        } },
      el("span", { class: "t" }, timestamp(s.t0_ms)),
      who ? el("span", { class: "who" + (s.speaker === "me" ? " me" : "") }, who) : null,
      el("span", { class: "text" }, ...words));
      if (target !== null && target >= s.t0_ms && target < s.t1_ms + 1) b.classList.add("target");
      segButtons.push(b);
      return el("li", null, b);
    });
    const truncated = (t.warnings || []).includes("truncated");
    clear(transcriptBox, el("h2", { id: "transcript-h" }, "Transcript"),
      truncated ? note(`This file looks cut short: lucy could decode ${duration(t.duration_s)}` +
        (t.source_duration_s ? ` of the ${duration(t.source_duration_s)} the file claims` : "") +
        ". The rest is missing from the file itself (a sync or copy that did not finish?); " +
        "once the whole file is there, lucy reads it again.", "warn truncated") : null,
      el("p", { class: "muted" }, `${t.engine || "unknown engine"}` + (t.language ? `, language ${t.language}` : "") +
        (t.channels === 2 ? ", each party on its own channel" : "") +
        `. Click a line or a word to play from there.`),
      items.length ? el("ol", { class: "segments", id: "segments" }, items)
        : el("p", { class: "muted" }, rec.transcript_status === "no_speech" ? "No speech in this recording." : "Empty transcript."));
    const hit = segButtons.find((b) => b.classList.contains("target"));
    if (hit) { hit.scrollIntoView({ block: "center" }); seek(Number(hit.dataset.t0), false); }
  };

  // Transcript versions (DESIGN §13): every run is kept; one is active
  // (shown above and searched). Re-read when the active transcript changes.
  let versionsNote = null;
  const drawVersions = async () => {
    let list;
    try {
      list = await get(`/recordings/${encodeURIComponent(id)}/transcripts`);
    } catch (e) {
      clear(versionsBox, el("h2", { id: "versions-h" }, "Versions"), note("Could not read the versions: " + e.message, "bad"));
      return;
    }
    if (stopped) return;
    if (!list.versions.length) { clear(versionsBox); return; }
    const rows = list.versions.map((v) => {
      const activate = el("button", { type: "button", "data-role": "activate", "data-version": v.version,
        "aria-label": `Make version ${v.version} the active transcript`,
        onclick: async () => {
          activate.disabled = true;
          try {
            await api(`/recordings/${encodeURIComponent(id)}/transcripts/active`,
              { method: "PUT", json: { version: v.version } });
            versionsNote = null;
            poll(); // the active transcript changed: redraws it and this list
          } catch (e) {
            versionsNote = note(e.message, "bad");
            drawVersions();
          }
        } }, "Make active");
      return el("tr", { "data-version": v.version, class: v.active ? "active" : "" },
        el("td", null, String(v.version)),
        el("td", null, v.engine || ""),
        el("td", { title: v.model || "" }, v.model ? basename(v.model) : ""),
        el("td", null, dateTime(v.created_at)),
        el("td", null, v.status === "done" ? String(v.word_count) : "no speech"),
        el("td", null, v.active ? el("span", { class: "badge ok", "data-role": "active" }, "active")
          : v.status === "done" ? activate : null));
    });
    clear(versionsBox, el("h2", { id: "versions-h" }, "Versions"),
      el("p", { class: "muted" }, "Each transcription is kept. The active version is the one shown above and searched; " +
        "Transcribe adds a new version and makes it active when it is done."),
      versionsNote,
      el("div", { class: "table-wrap" }, el("table", { class: "checks versions" },
        el("thead", null, el("tr", null, ...["Version", "Engine", "Model", "Date", "Words", ""].map((h) => el("th", null, h)))),
        el("tbody", null, rows))));
  };

  const drawState = () => {
    const d = describe(rec, lockedUntil);
    statusBadge.className = "badge " + d.kind;
    statusBadge.textContent = d.words;
    const s = transcribeState(rec, hold, lockedUntil);
    button.disabled = s.disabled;
    button.textContent = s.label;
    why.textContent = s.why;
    const tags = rec.tags || {};
    clear(facts,
      el("dt", null, "Recorded"), el("dd", null, dateTime(recordedAt(rec))),
      el("dt", null, "Length"), el("dd", null, duration(rec.duration_s)),
      el("dt", null, "Audio"), el("dd", null, [rec.codec, rec.sample_rate && `${rec.sample_rate} Hz`,
        rec.channels && (rec.channels === 1 ? "mono" : `${rec.channels} channels`), bytes(rec.size)].filter(Boolean).join(", ")),
      tags.title ? [el("dt", null, "Title"), el("dd", null, tags.title)] : null,
      el("dt", null, rec.paths.length > 1 ? "Files" : "File"),
      el("dd", null, rec.paths.map((p) => el("div", null, p.path + (p.presence !== "present" ? ` (${p.presence})` : "")))),
      SCAN_WORDS[rec.scan_status] ? [el("dt", null, "Note"), el("dd", null, SCAN_WORDS[rec.scan_status])] : null);
  };

  let lastKey = "";
  const poll = async () => {
    clearTimeout(timer);
    if (stopped) return;
    try {
      const fresh = await get("/recordings/" + encodeURIComponent(id));
      if (stopped) return;
      const key = JSON.stringify([fresh.transcript_status, fresh.job, fresh.progress, fresh.transcript && fresh.transcript.text]);
      const transcriptChanged = JSON.stringify(fresh.transcript) !== JSON.stringify(rec.transcript);
      rec = fresh;
      if (fresh.job && fresh.job.error_type) lockedUntil = null; // the job speaks for itself now
      if (key !== lastKey || transcriptChanged) {
        drawState();
        if (transcriptChanged) { drawTranscript(); drawVersions(); }
        lastKey = key;
      }
    } catch (e) {
      why.textContent = "Could not refresh: " + e.message;
    }
    schedule();
  };
  const schedule = () => {
    clearTimeout(timer);
    if (stopped) return;
    if (ACTIVE.has(rec.transcript_status)) timer = setTimeout(poll, 2000);
    else if (hold && hold.until > Date.now()) timer = setTimeout(() => { drawState(); schedule(); }, hold.until - Date.now() + 50);
  };

  button.addEventListener("click", async () => {
    button.disabled = true;
    why.textContent = "Asking lucy...";
    try {
      const r = await api(`/recordings/${encodeURIComponent(id)}/transcribe`,
        { method: "POST", allow: [423, 429, 503, 507] });
      const body = r.body || {};
      const job = body.job || (body.job_id ? body : null);
      if (r.status === 423) lockedUntil = job && job.next_retry_at ? toDate(job.next_retry_at).getTime() / 1000
        : Date.now() / 1000 + (body.retry_after_s || 30);
      else if (r.status !== 202) hold = { until: Date.now() + 1000 * (body.retry_after_s || 30), why: body.message || "" };
      if (job) {
        rec = { ...rec, transcript_status: job.status, job, next_retry_at: job.next_retry_at };
      }
    } catch (e) {
      // Not a wait-and-retry answer: say so, and hold the button briefly.
      hold = { until: Date.now() + 5000, why: e.message };
    }
    drawState();
    poll();
  });

  drawState();
  drawTranscript();
  drawVersions();
  lastKey = JSON.stringify([rec.transcript_status, rec.job, rec.progress, rec.transcript && rec.transcript.text]);
  schedule();
  return () => { stopped = true; clearTimeout(timer); audio.removeAttribute("src"); audio.load(); revoke(); };
}

export function render(main, parts, query, stale) {
  if (parts[0]) return renderRecording(main, parts[0], query, stale);
  return renderList(main, query, stale);
}
