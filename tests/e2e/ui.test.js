// ui.test.js - lucy's web UI end to end, in Debian's Chromium driven by
// playwright-core (no browser download: executablePath /usr/bin/chromium).
//
//   node ui.test.js URL                      the main cases
//   node ui.test.js URL --token TOKEN        the LUCY_API_TOKEN case
//
// Started by tests/integration/test_ui_e2e.py against a real lucy that
// scanned and transcribed copies of samples/ and received signed WhatsApp
// webhooks. The environment says what the harness set up:
//   E2E_ARTEFACTS      folder for the screenshots (created)
//   E2E_LOCK_CONTROL   the lock shim's control file (tests/faults/lockshim.c)
//   E2E_LOCK_TARGET    absolute path of a recording's copy to lock (not
//                      goforward.m4a, which the seek case plays)
//   E2E_DATA_DIR       lucy's data dir
//   E2E_DISK_MODE      "tmpfs": the data dir is a small tmpfs this script
//                      fills to between the warn and critical thresholds;
//                      "thresholds": lucy runs with thresholds that make
//                      the normal disk "warn" already
//   E2E_DISK_LEAVE_BYTES  tmpfs mode: bytes to leave free when filling
//
// Every console error and uncaught page error fails the run, except the
// HTTP error replies a case provokes on purpose (Chromium logs "Failed to
// load resource: ... 423" for them): each case lists those by status and
// URL path, and anything else fails.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const h = require("./harness");
const { test, shot } = h;

const RECORDING_ID = /^\/recordings\/[0-9a-f]{64}\/(transcribe|audio)$/;

const argv = process.argv.slice(2);
const base = h.baseUrl("node ui.test.js http://127.0.0.1:PORT [--token TOKEN]");
const tokenIdx = argv.indexOf("--token");
const token = tokenIdx >= 0 ? argv[tokenIdx + 1] : null;
const api = (p, opts) => h.api(base, p, opts, token);

function setLocks(rules) {
  const control = process.env.E2E_LOCK_CONTROL;
  fs.writeFileSync(control + ".new", rules.map((r) => r + "\n").join(""));
  fs.renameSync(control + ".new", control);
}

// ---- the cases ----------------------------------------------------------------

async function mainCases(page) {
  const recs = (await api("/recordings?limit=500")).body.recordings;
  const byName = Object.fromEntries(recs.map((r) => [path.basename(r.paths[0].path), r]));
  const forward = byName["goforward.m4a"];
  assert.ok(forward, "goforward.m4a is scanned");

  await test("the recordings list renders, sorts and filters", async () => {
    await page.goto(base + "/#/recordings");
    await page.locator("#recordings li").nth(recs.length - 1).waitFor();
    assert.equal(await page.locator("#recordings li").count(), recs.length);
    const words = await page.locator('#recordings [data-role="status"]').allTextContents();
    assert.ok(words.every((w) => w === "done"), "every sample is transcribed: " + words);
    const first = page.locator(`#recordings li[data-id="${forward.id}"]`);
    assert.match(await first.locator(".meta").textContent(), /0:03/, "duration 2.8 s shows as 0:03");
    await page.selectOption("#rec-sort", "name");
    const byTitle = recs.map((r) => r.title).sort((a, b) => a.localeCompare(b));
    assert.equal(await page.locator("#recordings li a.title").first().textContent(), byTitle[0]);
    // The recorder-named sample: its call's person and direction (docs/samples.md).
    const call = recs.find((r) => path.basename(r.paths[0].path).startsWith("20230414_"));
    assert.ok(call && call.call.direction, "the BCR sample with a call direction");
    const card = page.locator(`#recordings li[data-id="${call.id}"]`);
    assert.equal(await card.locator("a.title").textContent(), call.title);
    assert.equal(await card.locator('[data-role="direction"]').textContent(), "incoming");
    assert.equal(await card.locator('[data-role="who"]').textContent(), call.call.names[0].name);
    await page.selectOption("#rec-filter", "done");
    assert.equal(await page.locator("#recordings li").count(), recs.length);
    await page.selectOption("#rec-sort", "newest");
    await page.selectOption("#rec-filter", "");
    await shot(page, "recordings");
  });

  // ---- the Part II story (test_ui_e2e.py story_fixtures): a BCR call with
  // its sidecar and a stereo number-first call, both with John Doe
  // (+14155550123), a Samsung-named call with Sarah Lee, plain samples.
  const samsung = byName[process.env.E2E_CALL_SAMSUNG || ""];
  const stereo = byName[process.env.E2E_CALL_STEREO || ""];
  const bcr = recs.find((r) => path.basename(r.paths[0].path).startsWith("20230414_"));
  const startedAt = (r) => new Date(r.call.started_at).getTime();
  const shownIds = () => page.locator("#recordings li").evaluateAll((l) => l.map((x) => x.dataset.id));
  // How the page's own locale writes a date (the UI's dateTime()).
  const localDate = (iso) => page.evaluate((t) =>
    new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }), iso);
  const listShows = async (n) => {
    await page.locator("#rec-summary", { hasText: new RegExp(`^${n} of ${recs.length} recordings shown`) }).waitFor();
    return shownIds();
  };

  await test("each call shows its person, direction, real date, length and first words", async () => {
    assert.ok(samsung && stereo, "the story's calls are scanned: " + Object.keys(byName).join(", "));
    await page.goto(base + "/#/recordings");
    await page.locator("#recordings li").nth(recs.length - 1).waitFor();
    const fileYear = String(new Date().getFullYear()); // the copies' mtime: the sync time
    const cases = [
      [stereo, "John Doe", "incoming", "2024"],  // the person of +14155550123 (the BCR call named him)
      [samsung, "Sarah Lee", null, "2024"],      // the name from the file name, no number
      [bcr, "John Doe", "incoming", "2023"],    // the BCR sidecar
    ];
    for (const [rec, who, direction, year] of cases) {
      const card = page.locator(`#recordings li[data-id="${rec.id}"]`);
      assert.equal(await card.locator('[data-role="who"]').textContent(), who, rec.title);
      assert.equal(await card.locator('[data-role="direction"]').count(), direction ? 1 : 0);
      if (direction) assert.equal(await card.locator('[data-role="direction"]').textContent(), direction);
      const meta = await card.locator(".meta").textContent();
      assert.ok(meta.includes(await localDate(rec.call.started_at)), `${meta} has the call's date ${rec.call.started_at}`);
      assert.ok(meta.includes(year) && !meta.includes(fileYear), `${meta}: the call's year, not the file's mtime`);
      assert.ok(meta.includes(`${Math.floor(Math.round(rec.duration_s) / 60)}:`), meta);
      assert.ok(rec.preview, "a preview: " + rec.title);
      assert.equal(await card.locator('[data-role="preview"]').textContent(), rec.preview);
    }
    assert.match(stereo.preview, /clubs/);
    assert.match(samsung.preview, /^go forward ten meters/);
    assert.equal(stereo.call.person.id, bcr.call.person.id, "both calls of +14155550123 are one person");
  });

  await test("sorted by the call's date both ways, filtered by dates and by person", async () => {
    const byDate = [...recs].sort((a, b) => startedAt(b) - startedAt(a)).map((r) => r.id);
    assert.equal(new Set(recs.map(startedAt)).size, recs.length, "the fixtures' dates are distinct");
    assert.deepEqual(byDate.slice(0, 3), [stereo.id, samsung.id, bcr.id], "2024-03-01, 2024-01-15, 2023-04-14");
    await page.selectOption("#rec-sort", "oldest");
    assert.deepEqual(await shownIds(), [...byDate].reverse());
    await page.selectOption("#rec-sort", "newest");
    assert.deepEqual(await shownIds(), byDate);
    // From/To are the call's local dates, inclusive: the two 2024 calls.
    await page.fill("#rec-from", "2024-01-15");
    await page.fill("#rec-to", "2024-03-01");
    assert.deepEqual(await listShows(2), [stereo.id, samsung.id]);
    await page.fill("#rec-from", "2024-01-16");
    assert.deepEqual(await listShows(1), [stereo.id]);
    await shot(page, "recordings-dates");
    await page.fill("#rec-from", "");
    await page.fill("#rec-to", "");
    await listShows(recs.length);
    // "With": the persons of the listed calls (the samples' two-party stereo
    // call is with +1 415-555-0188); John Doe has both his calls.
    const john = String(bcr.call.person.id);
    assert.deepEqual(await page.locator("#rec-person option").evaluateAll((o) => o.map((x) => x.textContent)),
      ["Everyone", "+1 415-555-0188", "John Doe"]);
    await page.selectOption("#rec-person", john);
    assert.deepEqual(await listShows(2), [stereo.id, bcr.id]);
    await page.selectOption("#rec-sort", "oldest");
    assert.deepEqual(await shownIds(), [bcr.id, stereo.id]);
    await shot(page, "recordings-person");
    await page.selectOption("#rec-person", "");
    await page.selectOption("#rec-sort", "newest");
    await listShows(recs.length);
    // #/recordings?person=ID opens the list filtered.
    await page.evaluate(() => document.getElementById("view") && document.getElementById("view").replaceChildren());
    await page.goto(base + "/#/recordings?person=" + john);
    assert.deepEqual(await listShows(2), [stereo.id, bcr.id]);
    await page.selectOption("#rec-person", "");
    await listShows(recs.length);
  });

  await test("the Scan now result stays on screen after the list refreshes", async () => {
    await page.click("#rec-scan");
    await page.locator("#rec-scan-result", { hasText: "Scan done" }).waitFor();
    await page.waitForTimeout(1500); // the list has refreshed meanwhile
    assert.match(await page.locator("#rec-scan-result").textContent(), /Scan done at .*files seen/);
    assert.match(await page.locator("#rec-summary").textContent(), /recordings shown/);
  });

  await test("a transcript opens and clicking a segment seeks the player", async () => {
    await page.locator(`#recordings li[data-id="${forward.id}"] a.title`).click();
    await page.waitForURL(/#\/recordings\/[0-9a-f]{64}$/);
    const seg = page.locator("#segments button").first();
    await seg.waitFor();
    const t0 = Number(await seg.getAttribute("data-t0"));
    assert.ok(t0 > 0, "the first segment starts after 0 (got " + t0 + ")");
    // The player loads the file from lucy with range requests.
    await page.waitForFunction(() => document.getElementById("player").readyState >= 1, null, { timeout: 15000 });
    assert.equal(await page.$eval("#player", (a) => new URL(a.currentSrc).pathname),
      `/recordings/${forward.id}/audio`);
    await page.$eval("#player", (a) => {
      window.__seeked = [];
      a.addEventListener("seeked", () => window.__seeked.push(a.currentTime));
    });
    await seg.click();
    await page.waitForFunction(() => window.__seeked.length > 0, null, { timeout: 10000 });
    const at = await page.evaluate(() => window.__seeked[0]);
    assert.ok(Math.abs(at - t0 / 1000) < 0.1, `audio.currentTime ${at} ~ segment t0 ${t0 / 1000}`);
    // Words carry their times: a click on one seeks there, and the word
    // being played is highlighted (DESIGN §13 Words).
    const word = page.locator("#segments .w", { hasText: "forward" }).first();
    const w0 = Number(await word.getAttribute("data-t0"));
    assert.ok(w0 > t0, `the word starts after its segment (${w0} > ${t0})`);
    await page.evaluate(() => { window.__seeked = []; });
    await word.click();
    await page.waitForFunction(() => window.__seeked.length > 0, null, { timeout: 10000 });
    const wat = await page.evaluate(() => window.__seeked[0]);
    assert.ok(Math.abs(wat - w0 / 1000) < 0.1, `audio.currentTime ${wat} ~ word t0 ${w0 / 1000}`);
    await page.$eval("#player", (a) => a.pause());
    await page.$eval("#player", (a, ms) => { a.currentTime = ms / 1000 + 0.05; }, w0);
    await page.locator("#segments .w.playing", { hasText: "forward" }).waitFor({ timeout: 10000 });
    assert.match(await page.locator("#rec-status").textContent(), /^done$/);
    assert.equal(await page.locator("#transcribe").isDisabled(), false);
    await shot(page, "transcript");
  });

  await test("search finds a recording and jumps to its segment", async () => {
    await page.goto(base + "/#/search");
    await page.fill("#search-q", "forward");
    await page.press("#search-q", "Enter");
    const hit = page.locator('#hits li[data-source="call_recording"]').first();
    await hit.waitFor();
    assert.equal(await hit.locator("mark").first().textContent(), "forward");
    await shot(page, "search-recording");
    await hit.locator("a.title").click();
    await page.waitForURL(/#\/recordings\/[0-9a-f]{64}\?t=\d+$/);
    await page.locator("#segments button.target").waitFor();
  });

  await test("search gives one card per conversation: three hits in one call are one card", async () => {
    const api3 = (await api("/search?q=meters&limit=50&per_group=3")).body;
    const ids = api3.hits.filter((h) => h.source === "call_recording").map((h) => h.id);
    assert.equal(new Set(ids).size, ids.length, "one API hit per recording: " + ids);
    await page.goto(base + "/#/search?q=meters");
    await page.locator("#search-count", { hasText: 'for "meters"' }).waitFor();
    const cards = page.locator('#hits li[data-source="call_recording"]');
    assert.deepEqual(await cards.evaluateAll((l) => l.map((x) => x.dataset.id)), ids);
    const card = page.locator(`#hits li[data-id="${samsung.id}"]`);
    assert.equal(await card.count(), 1, "Sarah's call is one card");
    assert.equal(await card.locator("a.title").textContent(), samsung.title);
    assert.match(await card.locator(".meta").textContent(), /3 matches/);
    // Its three hits are its three segments, each linked to its own moment.
    const segs = (await api(`/recordings/${samsung.id}`)).body.transcript.segments;
    assert.equal(segs.length, 3, "three segments: " + JSON.stringify(segs));
    const links = await card.locator("li.hit a.at").evaluateAll((l) => l.map((a) => a.getAttribute("href")));
    assert.deepEqual(links.sort(), segs.map((g) => `#/recordings/${samsung.id}?t=${g.t0_ms}`).sort());
    await shot(page, "search-grouped");
  });

  await test("search finds a message; its markup-like text stays text", async () => {
    await page.goto(base + "/#/search?q=invoice");
    const hits = page.locator('#hits li[data-source="whatsapp"]');
    await hits.first().waitFor();
    // Alex's two "invoice" messages are on two UTC days (2025-11-30 and the
    // harness's explicit 2025-11-27): two conversations, two cards.
    await page.locator("#search-count", { hasText: 'for "invoice"' }).waitFor();
    assert.equal(await hits.count(), 2, "one card per day of Alex's messages");
    // The harness posted a message whose text looks like HTML: it must show
    // as text, with only <mark> as markup.
    assert.equal(await page.locator("#hits img, #hits script, #hits b").count(), 0);
    const texts = await page.locator("#hits .snippet").allTextContents();
    assert.ok(texts.some((t) => t.includes("<img src=x onerror=alert(1)>")), texts.join(" | "));
    assert.equal(await page.evaluate(() => window.__xss === undefined), true);
    await shot(page, "search-message");
    const plain = hits.filter({ hasText: "call me back" }).first();
    await plain.locator("a.title").click();
    await page.waitForURL(/#\/messages\/\d+\?m=/);
    await page.locator("#messages li.target").waitFor();
    assert.match(await page.locator("#messages li.target").textContent(), /invoice for March/);
  });

  await test("messages by contact, alias edited in place", async () => {
    const id = decodeURIComponent(/#\/messages\/([^?]+)/.exec(page.url())[1]);
    await page.fill("#alias-input", "Alex from accounting");
    await page.click("#alias-save");
    await page.locator("#alias-status", { hasText: "Saved." }).waitFor();
    assert.equal(await page.locator("#contact-h").textContent(), "Alex from accounting");
    assert.equal(await page.locator(`#contacts li[data-id="${id}"] a.title`).textContent(), "Alex from accounting");
    const c = (await api("/contacts/" + encodeURIComponent(id))).body;
    assert.equal(c.alias, "Alex from accounting");
    assert.equal(c.alias_source, "user");
    await shot(page, "messages");
  });

  // ---- people (docs/people.md): the harness's WhatsApp senders are persons
  const people = (await api("/people?limit=500")).body.people;
  const personBy = (wa) => people.find((p) => p.identifiers.some((i) => i.kind === "wa_id" && i.value === wa));
  const alex = personBy("15550002222"), robin = personBy("15550004444"), sam = personBy("15550003333");
  assert.ok(alex && robin && sam && people.length >= 3, "the senders are persons: " + JSON.stringify(people));
  const shownIdentifiers = async () =>
    (await page.locator('#identifiers [data-role="identifier"]').allTextContents()).sort();
  // Opens a person's page and waits for it (the old view is removed first,
  // so nothing of it can answer for the new one).
  const personPage = async (p, q = "") => {
    await page.evaluate(() => document.getElementById("view") && document.getElementById("view").replaceChildren());
    await page.goto(base + "/#/people/" + p.id + q);
    await page.locator(`#person-h[data-id="${p.id}"]`).waitFor();
  };
  const loadAll = async (list, more) => {
    while (await page.locator(more).isVisible()) {
      const n = await page.locator(list).count();
      await page.click(more);
      await page.locator(list).nth(n).waitFor();
    }
  };

  await test("the People list renders, filters and pages", async () => {
    // The list's items carry their counts: no request per row (docs/people.md).
    const perRow = [];
    const onRequest = (r) => { if (/^\/people\/\d+$/.test(new URL(r.url()).pathname)) perRow.push(r.url()); };
    page.on("request", onRequest);
    await page.goto(base + "/#/people?limit=2");
    await page.locator("#people li").nth(1).waitFor();
    assert.equal(await page.locator("#people li").count(), 2);
    assert.equal(await page.locator("#people-more").isVisible(), true);
    await loadAll("#people li", "#people-more");
    assert.equal(await page.locator("#people li").count(), people.length);
    const summary = await page.locator("#people-summary").textContent();
    assert.match(summary, new RegExp(`^${people.length} persons shown$`));
    assert.doesNotMatch(summary, /\d+ of \d+/);
    const row = page.locator(`#people li[data-id="${alex.id}"]`);
    assert.equal(await row.locator("a.title").textContent(), "Alex Example");
    assert.match(await row.textContent(), /\+1 555-000-2222 \(phone, whatsapp\)/);
    await row.locator('[data-role="counts"]', { hasText: /3 messages · 0 calls · last contact / }).waitFor();
    // John Doe: his two calls (the BCR sidecar, the number-first name) and
    // his WhatsApp message are one person's.
    const john = people.find((p) => p.identifiers.some((i) => i.value === "+14155550123"));
    assert.ok(john, "+14155550123 is a person");
    assert.match(await page.locator(`#people li[data-id="${john.id}"] [data-role="counts"]`).textContent(),
      /^1 message · 2 calls · last contact /);
    await page.goto(base + "/#/people");
    await page.locator("#people li").first().waitFor();
    await shot(page, "people");
    page.off("request", onRequest);
    assert.deepEqual(perRow, [], "the People list asks nothing per row");
    await page.fill("#people-q", "Robin");
    await page.press("#people-q", "Enter");
    await page.waitForURL(/#\/people\?q=Robin$/);
    await page.locator("#people-summary", { hasText: "1 person shown" }).waitFor();
    assert.deepEqual(await page.locator("#people li").evaluateAll((l) => l.map((x) => x.dataset.id)), [String(robin.id)]);
    await page.fill("#people-q", "nobody-like-this");
    await page.press("#people-q", "Enter");
    await page.locator("#people-summary", { hasText: 'Nobody matches "nobody-like-this".' }).waitFor();
    // The Messages view links a contact to its person.
    await page.goto(base + "/#/messages/15550002222");
    await page.locator("#contact-person").click();
    await page.waitForURL(new RegExp(`#/people/${alex.id}$`));
    await page.locator("#person-h", { hasText: "Alex Example" }).waitFor();
  });

  await test("a person page shows identifiers, names with sources and a paged timeline", async () => {
    const all = (await api(`/people/${alex.id}/timeline`)).body.items;
    assert.ok(all.length >= 3, "Alex has three messages: " + all.length);
    await personPage(alex, "?limit=2");
    assert.deepEqual(await shownIdentifiers(), ["+1 555-000-2222", "+1 555-000-2222"]);
    assert.deepEqual((await page.locator("#identifiers li").evaluateAll((l) => l.map((x) => x.dataset.kind))).sort(),
      ["phone", "wa_id"]);
    const name = page.locator('#names li[data-source="profile_name"]');
    assert.equal(await name.locator('[data-role="name"]').textContent(), "Alex Example");
    assert.match(await name.textContent(), /WhatsApp profile name.*first seen .*last seen /);
    assert.equal(await page.locator("#timeline li").count(), 2);
    assert.equal(await page.locator("#timeline-more").isVisible(), true);
    await loadAll("#timeline li", "#timeline-more");
    // Every item once, newest first, as the API pages them.
    assert.deepEqual(await page.locator("#timeline li").evaluateAll((l) => l.map((x) => x.dataset.wamid)),
      all.map((i) => i.wamid));
    assert.match(await page.locator("#timeline").textContent(), /Can you call me back about the invoice for March\?/);
    assert.match(await page.locator("#timeline-summary").textContent(), /^\d+ items shown, newest first$/);
    await shot(page, "person");
    // The date range (dates are UTC days, as the API reads them): before
    // the first item nothing; the newest item's day shows that day's items.
    const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
    const dayBefore = day(all[all.length - 1].time - 86400);
    await page.fill("#timeline-to", dayBefore);
    await page.click('#timeline-range button[type="submit"]');
    await page.locator(`#timeline[data-to="${dayBefore}"]`).waitFor({ state: "attached" });
    await page.locator("#timeline-summary", { hasText: "No calls or messages in these dates." }).waitFor();
    const newest = day(all[0].time);
    await page.fill("#timeline-from", newest);
    await page.fill("#timeline-to", newest);
    await page.click('#timeline-range button[type="submit"]');
    await page.locator(`#timeline[data-from="${newest}"][data-to="${newest}"] li`).first().waitFor();
    await loadAll("#timeline li", "#timeline-more");
    assert.deepEqual(await page.locator("#timeline li").evaluateAll((l) => l.map((x) => x.dataset.wamid)),
      all.filter((i) => day(i.time) === newest).map((i) => i.wamid));
    // The alias, edited in place.
    await page.fill("#person-alias", "Alex the accountant");
    await page.click("#person-alias-save");
    await page.locator("#person-h", { hasText: "Alex the accountant" }).waitFor();
    await page.locator('#names li[data-source="alias"]', { hasText: "Alex the accountant" }).waitFor();
    assert.equal((await api(`/people/${alex.id}`)).body.name, "Alex the accountant");
  });

  await test("merge two persons from the UI, then undo from History", async () => {
    await personPage(robin);
    const robinIds = await shownIdentifiers();
    await personPage(alex);
    const alexIds = await shownIdentifiers();
    await page.click("#merge-open");
    await page.fill("#merge-q", "Robin");
    await page.press("#merge-q", "Enter");
    const pick = page.locator(`#merge-results[data-q="Robin"] li[data-id="${robin.id}"]`);
    await pick.waitFor();
    assert.equal(await page.locator("#merge-results li").count(), 1);
    await pick.locator('[data-role="merge"]').click();
    await page.locator("#confirm-dialog[open]").waitFor();
    assert.match(await page.locator("#confirm-text").textContent(), /Merge Robin Placeholder .* into Alex the accountant\?/);
    await shot(page, "merge-confirm");
    await page.click("#confirm-ok");
    await page.locator("#person-note", { hasText: "Merged Robin Placeholder" }).waitFor();
    assert.deepEqual(await shownIdentifiers(), [...alexIds, ...robinIds].sort());
    await page.locator('#names li[data-source="profile_name"]', { hasText: "Robin Placeholder" }).waitFor();
    const entries = page.locator("#history li");
    assert.equal(await entries.first().getAttribute("data-op"), "merge");
    await shot(page, "person-merged");
    // Robin is gone until the merge is undone: the page says lucy's message.
    h.expectConsoleErrors([{ status: 404, path: /^\/people\/\d+(\/history)?$/ }, { status: 409, path: /^\/people\/history\/\d+\/undo$/ }]);
    const gone = (await api(`/people/${robin.id}`)).body;
    await page.goto(base + "/#/people/" + robin.id);
    await page.locator("main .note.bad", { hasText: gone.message }).waitFor();
    // Undoing the alias first is refused (the merge changed Alex later): lucy's 409 message shows.
    await personPage(alex);
    const aliasEntry = page.locator('#history li[data-op="alias"]');
    await aliasEntry.locator('[data-role="undo"]').click();
    await aliasEntry.locator('[data-role="undo-error"]', { hasText: /^Not undone: .*undo it first/ }).waitFor();
    await shot(page, "history-refused");
    await page.locator('#history li[data-op="merge"] [data-role="undo"]').click();
    await page.locator("#undo-back").waitFor();
    assert.deepEqual(await shownIdentifiers(), alexIds);
    assert.equal(await page.locator('#history li[data-op="merge"] [data-role="undo"]').isDisabled(), true);
    await page.click("#undo-back");
    await page.waitForURL(new RegExp(`#/people/${robin.id}$`));
    await page.locator("#person-h", { hasText: "Robin Placeholder" }).waitFor();
    assert.deepEqual(await shownIdentifiers(), robinIds);
    // Now the alias undoes too, and Alex is named as before.
    await personPage(alex);
    await page.locator('#history li[data-op="alias"] [data-role="undo"]').click();
    await page.locator("#person-h", { hasText: "Alex Example" }).waitFor();
  });

  await test("split one identifier into a new person, then undo", async () => {
    await personPage(sam);
    const before = await shownIdentifiers();
    assert.equal(before.length, 2);
    await page.locator('#identifiers li[data-kind="phone"] [data-role="split"]').click();
    await page.locator("#confirm-dialog[open]").waitFor();
    await page.click("#confirm-cancel"); // Cancel changes nothing
    await page.locator("#confirm-dialog").waitFor({ state: "detached" });
    assert.deepEqual(await shownIdentifiers(), before);
    await page.locator('#identifiers li[data-kind="phone"] [data-role="split"]').click();
    await page.click("#confirm-ok");
    await page.locator("#split-into").waitFor();
    assert.equal(await page.locator("#identifiers li").count(), 1);
    const fresh = /#\/people\/(\d+)$/.exec(await page.locator("#split-into").getAttribute("href"))[1];
    await page.click("#split-into");
    await page.locator(`#person-h[data-id="${fresh}"]`).waitFor();
    assert.deepEqual(await page.locator("#identifiers li").evaluateAll((l) => l.map((x) => x.dataset.kind)), ["phone"]);
    // Undo from the new person's History: it goes back into Sam.
    await page.locator('#history li[data-op="split"] [data-role="undo"]').click();
    await page.waitForURL(new RegExp(`#/people/${sam.id}$`));
    await page.locator("#person-h", { hasText: "Sam Sample" }).waitFor();
    await page.locator("#identifiers li").nth(1).waitFor();
    assert.deepEqual(await shownIdentifiers(), before);
  });

  await test("a locked recording shows the sync message and the button stays disabled", async () => {
    // A recording the browser has not played yet (a played one may come
    // from the browser's cache: its bytes never change for an id).
    const target = process.env.E2E_LOCK_TARGET;
    const locked = byName[path.basename(target || "")];
    assert.ok(locked && locked.id !== forward.id, "E2E_LOCK_TARGET names another scanned recording");
    setLocks(["open EDEADLK " + target]);
    h.expectConsoleErrors([{ status: 423, path: RECORDING_ID }]);
    try {
      await page.goto(base + "/#/recordings/" + locked.id);
      // The player asks for the file: lucy answers 423 and the page says why.
      await page.locator("#audio-note", { hasText: "being synced by the cloud storage client" }).waitFor();
      const button = page.locator("#transcribe");
      await button.click();
      const why = page.locator("#transcribe-why");
      await why.filter({ hasText: /being synced by the cloud storage client, will retry by itself at .*\d\d:\d\d/ })
        .waitFor({ timeout: 10000 });
      assert.equal(await button.isDisabled(), true);
      // It stays disabled while lucy retries by itself (polling, no storm).
      await page.waitForTimeout(4500);
      assert.equal(await button.isDisabled(), true);
      assert.match(await page.locator("#rec-status").textContent(),
        /^locked: being synced by the cloud storage client, will retry by itself at .*\d\d:\d\d$/);
      const job = (await api("/recordings/" + locked.id)).body.job;
      assert.ok(["queued", "running", "retry_wait"].includes(job.status), job.status);
      assert.ok(job.attempts <= 2, "no retry storm: " + job.attempts + " attempts");
      await shot(page, "locked");
      // Reloading the page keeps the button disabled: the state is lucy's.
      await page.reload();
      await page.locator("#transcribe").waitFor();
      await page.waitForFunction(() => document.getElementById("transcribe").disabled);
    } finally {
      setLocks([]);
      // Leave the page while its 423s are still expected: its player and
      // its 2 s poll must not log one into the next case.
      await page.goto("about:blank");
    }
  });

  await test("the status panel shows readiness, checks, gauges and a disk warning", async () => {
    const mode = process.env.E2E_DISK_MODE || "thresholds";
    const dataDir = process.env.E2E_DATA_DIR;
    await page.goto(base + "/#/status");
    await page.locator("#readiness").waitFor();
    assert.ok(await page.locator('#checks tr[data-check="store:writable"]').count() >= 1);
    const gauge = page.locator(`#disks li[data-path="${dataDir}"]`);
    await gauge.waitFor();
    assert.match(await page.locator("#status-body").textContent(), /Warning below \d+%.* free; critical below \d+%/);
    let filler = null;
    if (mode === "tmpfs") {
      assert.equal(await gauge.getAttribute("data-level"), "0", "the tmpfs starts with room");
      const st = fs.statfsSync(dataDir);
      const leave = Number(process.env.E2E_DISK_LEAVE_BYTES);
      const want = st.bavail * st.bsize - leave;
      filler = path.join(dataDir, "e2e-filler");
      const fd = fs.openSync(filler, "w");
      const chunk = Buffer.alloc(1 << 20);
      for (let done = 0; done < want;) {
        const n = Math.min(chunk.length, want - done);
        fs.writeSync(fd, chunk, 0, n);
        done += n;
      }
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
    try {
      // No reload: the panel refreshes by itself.
      await page.locator(`#disks li[data-path="${dataDir}"][data-level="1"]`).waitFor({ timeout: 20000 });
      assert.match(await gauge.locator('[data-role="disk-level"]').textContent(), /Low on space/);
      await page.locator('#checks tr[data-check="disk:free"][data-status="warn"]').first().waitFor({ timeout: 20000 });
      assert.equal(await page.locator("#readiness").getAttribute("data-status"), "warn");
      assert.ok(await page.locator("#backlog div").count() >= 4);
      assert.match(await page.locator("#scan-summary").textContent(), /files seen/);
      await shot(page, "status");
    } finally {
      if (filler) fs.unlinkSync(filler);
    }
  });

  await test("the Status page lists the ingest ledger with reason and advice", async () => {
    const ledger = (await api("/ledger?limit=50")).body;
    const corrupt = ledger.items.find((r) => path.basename(r.path) === process.env.E2E_CORRUPT);
    const sync = ledger.items.find((r) => r.reason_code === "sync_folder");
    assert.ok(corrupt && sync, "the corrupt file and the sync folder are ledger rows: " + JSON.stringify(ledger.items));
    await page.goto(base + "/#/status");
    await page.locator("#ledger-table").waitFor();
    assert.equal(await page.locator("#ledger-table tbody tr").count(), ledger.items.length);
    for (const r of [corrupt, sync]) {
      const row = page.locator("#ledger-table tr").filter({ has: page.locator("td.path", { hasText: r.path }) });
      assert.equal(await row.count(), 1, r.path);
      assert.equal(await row.getAttribute("data-outcome"), r.outcome);
      assert.equal(await row.locator('[data-role="reason"]').textContent(), r.reason);
      assert.equal(await row.locator('[data-role="advice"]').textContent(), r.advice);
      assert.ok(r.reason && r.advice, "a reason and what to do: " + JSON.stringify(r));
    }
    assert.match(corrupt.reason, /Invalid data/);
    const all = await page.locator("#ledger-outcome option").first().textContent();
    assert.equal(all, `all (${Object.values(ledger.counts).reduce((a, b) => a + b, 0)})`);
    await page.locator("#ledger").scrollIntoViewIfNeeded();
    await shot(page, "status-ledger");
  });

  await test("usable on a phone screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ["recordings", "search?q=invoice", "status", "recordings/" + forward.id,
      "people", "people/" + alex.id]) {
      await page.goto(base + "/#/" + view);
      await page.locator("main h1").waitFor();
      await page.waitForTimeout(300);
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(over <= 1, `#/${view} is ${over}px wider than the phone screen`);
    }
    await page.goto(base + "/#/recordings");
    await page.locator("#recordings li").first().waitFor();
    await shot(page, "recordings-phone");
    await personPage(alex);
    await shot(page, "person-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
  });
}

async function tokenCases(page) {
  await test("with LUCY_API_TOKEN the UI asks once and keeps the token for the session", async () => {
    h.expectConsoleErrors([{ status: 401, path: /^\/(recordings|config|contacts)/ }]);
    await page.goto(base + "/#/recordings");
    const dialog = page.locator("#token-dialog[open]");
    await dialog.waitFor();
    await shot(page, "token");
    await page.fill("#token-input", "not-the-token");
    await page.click("#token-submit");
    await page.locator("#token-error", { hasText: "not accepted" }).waitFor();
    await page.fill("#token-input", token);
    await page.click("#token-submit");
    await page.locator("#recordings li").first().waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("lucy.token")), token);
    h.expectConsoleErrors([]); // from now on no 401 is expected
    await page.reload();
    await page.locator("#recordings li").first().waitFor();
    assert.equal(await page.locator("#token-dialog[open]").count(), 0, "asked only once");
  });

  await test("with a token the player gets the audio with the header (Blob URL)", async () => {
    await page.locator("#recordings li a.title").first().click();
    await page.waitForFunction(() => {
      const a = document.getElementById("player");
      return a && a.readyState >= 1 && a.currentSrc.startsWith("blob:");
    }, null, { timeout: 15000 });
    assert.ok(await page.$eval("#player", (a) => a.duration > 0));
  });
}

h.run("ui", (page) => (token ? tokenCases(page) : mainCases(page)));
