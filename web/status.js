// status.js - the Status view: readiness and every health check in plain
// words (GET /health), disk gauges per watched path with the warn and
// critical thresholds (GET /metrics for free space, GET /config for the
// thresholds), backlogs and the last scan (GET /metrics), and the ingest
// ledger (GET /ledger): each file the scanner did not make a recording of,
// and each failed transcription, with its reason and what to do.
// Refreshes itself every 5 seconds while shown (the ledger too, until the
// user pages further or picks an outcome).
import { api, get } from "./api.js";
import { bytes, clear, clock, dateTime, el, note } from "./format.js";

const REFRESH_MS = 5000;
const LEDGER_PAGE = 50;
const LEDGER_WORDS = {
  ignored: "ignored", placeholder: "cloud placeholder", changing: "still changing", locked: "locked (syncing)",
  corrupt: "corrupt", permission_denied: "permission denied", io_error: "I/O error", unsupported: "not audio",
  orphan_sidecar: "sidecar without audio", call_metadata: "call details dropped",
  transcription_failed: "transcription failed", transcription_retrying: "transcription retrying",
};
const LEDGER_KIND = {
  corrupt: "bad", permission_denied: "bad", io_error: "bad", transcription_failed: "bad",
  locked: "warn", placeholder: "warn", orphan_sidecar: "warn", call_metadata: "warn", transcription_retrying: "warn",
};

const CHECK_NAMES = {
  "disk:free": "Free disk space",
  "store:writable": "Local database accepts writes",
  "store:integrity": "Local database is sound (integrity check)",
  "backup:age": "Scheduled backups",
  "redis:ping": "Redis reachable",
  "redis:persistence": "Redis can save",
  "redis:memory": "Redis has memory for writes",
  "qdrant:ready": "Qdrant reachable",
  "qdrant:collection": "Qdrant collection",
  "qdrant:indexes": "Qdrant payload indexes",
  "kv:backend": "Key-value store (aliases, rate limits)",
  "index:outbox": "Search index",
  "call_recordings:scan": "Recordings folder scan",
  "call_recordings:jobs": "Transcription",
  "whatsapp:inbox": "WhatsApp inbox",
};
const STATUS_WORDS = { pass: "OK", warn: "Warning", fail: "Failing" };
const STATUS_KIND = { pass: "ok", warn: "warn", fail: "bad" };
const READINESS = {
  pass: ["Ready: lucy is doing its job.", "ok"],
  warn: ["Ready, with warnings: lucy works, but something below needs attention.", ""],
  fail: ["Not ready: lucy cannot do its core job now. The failing checks below say why and what to do.", "bad"],
};
const LEVEL_WORDS = [
  ["OK", "ok"],
  ["Low on space (warning)", "warn"],
  ["Critical: optional work is paused and the reserve file is released", "bad"],
];
const JOB_WORDS = { queued: "queued", running: "transcribing", retry_wait: "waiting to retry (e.g. locked)", blocked: "paused (disk full)", failed: "failed" };
const SCAN_WORDS = {
  new: "new", changed: "changed", unchanged: "unchanged", locked: "locked (syncing)", placeholder: "cloud placeholders",
  ignored: "ignored", changing: "still changing", corrupt: "corrupt", permission_denied: "permission denied",
  io_error: "I/O errors", unsupported: "not audio", missing: "missing", unavailable: "unavailable",
};

// Prometheus text -> [{name, labels, value}]
export function parseMetrics(text) {
  const out = [];
  for (const line of String(text).split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith("#")) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]] = l[2].replace(/\\(.)/g, (x, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const pick = (metrics, name) => metrics.filter((m) => m.name === name);
const one = (metrics, name) => { const m = pick(metrics, name)[0]; return m ? m.value : null; };

function observed(c) {
  if (c.observedValue === undefined || c.observedValue === null) return "";
  const v = Number(c.observedValue);
  const shown = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1);
  return c.observedUnit ? `${shown} ${c.observedUnit}` : shown;
}

function checksTable(health) {
  const rows = [];
  for (const [key, entries] of Object.entries(health.checks || {}))
    for (const c of entries)
      rows.push(el("tr", { "data-check": key, "data-status": c.status },
        el("th", { scope: "row" }, CHECK_NAMES[key] || key, el("div", { class: "muted" }, c.componentId || "")),
        el("td", null, el("span", { class: "badge " + (STATUS_KIND[c.status] || "") }, STATUS_WORDS[c.status] || c.status)),
        el("td", null, observed(c)),
        el("td", null, c.output || (c.status === "pass" ? "" : "no details"))));
  return el("div", { class: "table-wrap" }, el("table", { class: "checks", id: "checks" },
    el("thead", null, el("tr", null, el("th", { scope: "col" }, "Check"), el("th", { scope: "col" }, "Status"),
      el("th", { scope: "col" }, "Measured"), el("th", { scope: "col" }, "Why, and what to do"))),
    el("tbody", null, rows)));
}

function gauges(metrics, cfg) {
  const o = (cfg && cfg.options) || {};
  const warnPct = o.LUCY_DISK_WARN_PCT, warnMb = o.LUCY_DISK_WARN_MB;
  const critPct = o.LUCY_DISK_CRITICAL_PCT, critMb = o.LUCY_DISK_CRITICAL_MB;
  const limit = (pct, mb) => [pct > 0 ? `${pct}%` : null, mb > 0 ? bytes(mb * 1048576) : null]
    .filter(Boolean).join(" or ") || "nothing (off)";
  const thresholds = warnPct !== undefined
    ? `Warning below ${limit(warnPct, warnMb)} free; critical below ${limit(critPct, critMb)} free.`
    : "Thresholds: see GET /config (needs the API token).";
  const items = pick(metrics, "lucy_disk_free_bytes").map((m) => {
    const path = m.labels.path;
    const pct = pick(metrics, "lucy_disk_free_pct").find((x) => x.labels.path === path);
    const level = pick(metrics, "lucy_disk_level").find((x) => x.labels.path === path);
    const freePct = pct ? pct.value : null;
    const total = freePct > 0 ? m.value / (freePct / 100) : null;
    const [words, kind] = LEVEL_WORDS[level ? level.value : 0] || ["unknown", ""];
    const id = "gauge-" + path.replace(/[^\w-]/g, "_");
    const meter = el("meter", { id, min: 0, max: 100, value: freePct === null ? 0 : (100 - freePct).toFixed(1),
      optimum: 0, low: warnPct !== undefined ? 100 - warnPct : 90, high: critPct !== undefined ? 100 - critPct : 95 });
    return el("li", { class: "card gauge", "data-path": path, "data-level": level ? level.value : 0 },
      el("label", { for: id }, `${path} (${m.labels.role || "watched"})`),
      meter,
      el("div", null, el("span", { class: "badge " + kind, "data-role": "disk-level" }, words), " ",
        `${bytes(m.value)} free` + (total ? ` of ${bytes(total)}` : "") +
        (freePct !== null ? ` (${freePct.toFixed(1)}% free, ${(100 - freePct).toFixed(1)}% used)` : "")));
  });
  const reserve = one(metrics, "lucy_disk_reserve_present");
  return [el("p", { class: "muted" }, thresholds +
      (reserve === null ? "" : reserve ? " The reserve file is in place." : " The reserve file is released (or disabled).")),
    el("ul", { class: "cards two", id: "disks" }, items)];
}

function counts(id, pairs) {
  return el("div", { class: "counts", id }, pairs.map(([label, value]) =>
    el("div", null, el("b", null, value === null ? "-" : String(value)), label)));
}

function backlog(metrics) {
  const jobs = {};
  for (const m of pick(metrics, "lucy_jobs")) jobs[m.labels.status] = m.value;
  return counts("backlog", [
    ...Object.entries(JOB_WORDS).map(([k, w]) => ["recordings " + w, jobs[k] ?? null]),
    ["documents waiting for the search index", one(metrics, "lucy_index_outbox_pending")],
    ["documents the index rejected", one(metrics, "lucy_index_outbox_failed")],
    ["WhatsApp items waiting", one(metrics, "lucy_whatsapp_inbox_pending")],
    ["voice notes waiting", one(metrics, "lucy_whatsapp_media_pending")],
    // Each running transcription with its progress and ETA (DESIGN §13).
    ...pick(metrics, "lucy_job_progress").map((m) => {
      const eta = pick(metrics, "lucy_job_eta_seconds").find((x) => x.labels.job_id === m.labels.job_id);
      return [`% of transcription job ${m.labels.job_id} done` +
        (eta ? `, about ${eta.value < 60 ? Math.max(1, Math.round(eta.value)) + " s" : Math.round(eta.value / 60) + " min"} left` : ""),
      Math.floor(m.value * 100)];
    }),
    ["speech recognition models in memory (loaded by a job, unloaded when idle)", pick(metrics, "lucy_asr_instances_loaded").reduce((n, m) => n + m.value, 0)],
  ]);
}

// The scan's recordings only; files it did not make recordings of are in
// the ledger below, one row each, not a bare count.
const SCAN_RECORDINGS = ["new", "changed", "unchanged", "missing", "unavailable"];

function lastScan(metrics) {
  const files = pick(metrics, "lucy_scan_files");
  const seen = one(metrics, "lucy_scan_files_seen");
  if (!files.length && seen === null) return el("p", { class: "muted", id: "scan" }, "No scan yet (or no folders configured).");
  const ms = one(metrics, "lucy_scan_duration_ms");
  return [el("p", { id: "scan-summary" }, `${seen ?? "?"} files seen` + (ms !== null ? ` in ${ms} ms` : "") + "."),
    counts("scan", files.filter((m) => m.value > 0 && SCAN_RECORDINGS.includes(m.labels.outcome))
      .map((m) => [SCAN_WORDS[m.labels.outcome] || m.labels.outcome, m.value]))];
}

function ledgerRow(r) {
  const when = [`first seen ${dateTime(r.first_seen_s)}`, `last seen ${dateTime(r.last_seen_s)}`];
  if (r.next_retry_s) when.push(`next try ${dateTime(r.next_retry_s)}`);
  const path = r.recording_id
    ? el("a", { href: "#/recordings/" + r.recording_id }, r.path)
    : r.path;
  return el("tr", { "data-outcome": r.outcome, "data-path": r.path },
    el("td", { class: "path" }, path, el("div", { class: "muted" }, when.join(" · "))),
    el("td", null, el("span", { class: "badge " + (LEDGER_KIND[r.outcome] || "") }, LEDGER_WORDS[r.outcome] || r.outcome)),
    el("td", { "data-role": "reason" }, r.reason || r.reason_code || ""),
    el("td", { "data-role": "advice" }, r.advice));
}

// The ledger section: an outcome filter with counts, a table, "Show more".
// state.paged: the user asked for more than the first page (or filtered),
// so the 5-second refresh leaves the section alone.
function ledgerSection(state) {
  const box = el("div", { id: "ledger" });
  const load = async (cursor) => {
    const q = new URLSearchParams({ limit: String(LEDGER_PAGE) });
    if (state.outcome) q.set("outcome", state.outcome);
    if (cursor) q.set("cursor", cursor);
    return get("/ledger?" + q);
  };
  const draw = async () => {
    let page;
    try {
      page = await load(null);
    } catch (e) {
      clear(box, note("Could not read the ledger: " + e.message, "bad", "alert"));
      return;
    }
    const total = Object.values(page.counts || {}).reduce((a, b) => a + b, 0);
    if (!total) {
      clear(box, el("p", { class: "muted", id: "ledger-empty" }, "Every file seen is a recording; nothing failed."));
      return;
    }
    const select = el("select", { id: "ledger-outcome", "aria-label": "Show outcome" },
      el("option", { value: "" }, `all (${total})`),
      Object.entries(page.counts).map(([k, n]) =>
        el("option", { value: k, selected: state.outcome === k ? "" : null }, `${LEDGER_WORDS[k] || k} (${n})`)));
    select.addEventListener("change", () => { state.outcome = select.value; state.paged = !!select.value; draw(); });
    const tbody = el("tbody", null, page.items.map(ledgerRow));
    const more = el("button", { type: "button", id: "ledger-more" }, "Show more");
    let next = page.next_cursor;
    more.hidden = !next;
    more.addEventListener("click", async () => {
      state.paged = true;
      more.disabled = true;
      try {
        const p = await load(next);
        for (const r of p.items) tbody.append(ledgerRow(r));
        next = p.next_cursor;
        more.hidden = !next;
      } catch (e) {
        more.after(note("Could not read more of the ledger: " + e.message, "bad", "alert"));
      }
      more.disabled = false;
    });
    clear(box,
      el("p", { class: "muted" }, "Files the scanner saw and did not make a recording of, recordings whose call " +
        "details were dropped, and failed transcriptions. Each row says why and what to do; it leaves this list " +
        "when the file becomes a recording or goes away."),
      el("p", null, select),
      el("div", { class: "table-wrap" }, el("table", { class: "checks", id: "ledger-table" },
        el("thead", null, el("tr", null, el("th", { scope: "col" }, "File"), el("th", { scope: "col" }, "Outcome"),
          el("th", { scope: "col" }, "Reason"), el("th", { scope: "col" }, "What to do"))),
        tbody)),
      more);
  };
  return { box, draw };
}

export async function render(main, parts, query, stale) {
  const stamp = el("p", { class: "muted", id: "status-updated", role: "status" });
  const body = el("div", { id: "status-body" });
  clear(main, el("h1", null, "Status"), stamp, body);
  let cfg = null, timer = null, stopped = false;
  const ledgerState = { outcome: "", paged: false };
  const ledger = ledgerSection(ledgerState);

  const refresh = async () => {
    clearTimeout(timer);
    try {
      if (!cfg) cfg = await get("/config").catch(() => null);
      const [health, metricsText] = await Promise.all([
        api("/health", { allow: [503] }).then((r) => r.body),
        get("/metrics"),
      ]);
      if (stopped || stale()) return;
      const metrics = parseMetrics(metricsText);
      const [words, kind] = READINESS[health.status] || [`Status: ${health.status}`, ""];
      clear(body,
        el("p", { class: "note " + kind, id: "readiness", "data-status": health.status }, words),
        el("h2", null, "Checks"), checksTable(health),
        el("h2", null, "Disk"), gauges(metrics, cfg),
        el("h2", null, "Backlog"), backlog(metrics),
        el("h2", null, "Last scan"), lastScan(metrics),
        el("h2", null, "Not made recordings, and failures"), ledger.box);
      if (!ledgerState.paged || !ledger.box.firstChild) await ledger.draw();
      stamp.textContent = `Updated ${clock(Date.now() / 1000)}:${String(new Date().getSeconds()).padStart(2, "0")}; ` +
        `refreshes every ${REFRESH_MS / 1000} seconds. lucy ${health.version || ""}`;
    } catch (e) {
      if (stopped) return;
      stamp.textContent = "";
      clear(body, note("Could not read lucy's status: " + e.message, "bad", "alert"));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
