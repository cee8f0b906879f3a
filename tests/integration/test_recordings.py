"""Call recordings end to end: the real scanner, the real decoder and
pocketsphinx, the job queue and its routes (DESIGN §5 Recordings, §7, §9).

Locks are injected for real with the LD_PRELOAD shim in tests/faults/
(switched by marker files while lucy runs), disk pressure with a real tmpfs.
The shortest fixtures are used where accuracy is not the point.
"""
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import BUILD_DIR, FIXTURES, fill, needs_root

AUDIO = os.path.join(FIXTURES, "audio")
DONE = ("done", "no_speech")
LOCKSHIM = os.environ.get("LOCKSHIM_SO", os.path.join(BUILD_DIR, "tests", "faults", "liblockshim.so"))
needs_shim = pytest.mark.skipif(not os.path.exists(LOCKSHIM), reason="lockshim not built: " + LOCKSHIM)


def set_locks(control, rules):
    """Replaces the lock shim's rules ("open EDEADLK /abs/path" lines)
    atomically; the shim re-reads the file on its next call."""
    tmp = control + ".new"
    with open(tmp, "w") as f:
        f.write("".join(r + "\n" for r in rules))
    os.rename(tmp, control)


def shim_env(control):
    set_locks(control, [])
    return {"LD_PRELOAD": LOCKSHIM, "LOCKSHIM_FILE": control}


def recordings_dir(tmp_path, names, sub="recordings"):
    d = tmp_path / sub
    d.mkdir()
    for n in names:
        shutil.copy(os.path.join(AUDIO, n), str(d / n))
    # A copy has mtime = now; the settle time is 0 in these tests anyway.
    return str(d)


def start(start_lucy, rec_dir, env=None, **kw):
    e = {
        "LUCY_RECORDINGS_DIRS": rec_dir,
        "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx",
        "LUCY_ASR_THREADS": "1",
        "LUCY_JOB_RETRY_BASE_S": "1",
    }
    e.update(env or {})
    return start_lucy(env=e, **kw)


def recordings(lucy, **params):
    r = lucy.get("/recordings", params=params)
    assert r.status_code == 200, r.text
    return r.json()["recordings"]


def by_name(lucy):
    """{file name: recording} of every recording listed."""
    out = {}
    for rec in recordings(lucy, limit=500):
        for p in rec["paths"]:
            out[os.path.basename(p["path"])] = rec
    return out


def wait_transcribed(lucy, n, timeout=60):
    def ready():
        recs = recordings(lucy, limit=500)
        return len(recs) >= n and all(r["transcript_status"] in DONE for r in recs) and recs
    return lucy.wait_for(ready, timeout=timeout, interval=0.2, what="%d recordings transcribed" % n)


def job(lucy, job_id):
    r = lucy.get("/jobs/%d" % job_id)
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(lucy, job_id, statuses, timeout=60):
    return lucy.wait_for(lambda: (lambda j: j["status"] in statuses and j)(job(lucy, job_id)),
                         timeout=timeout, interval=0.1, what="job %d in %s" % (job_id, statuses))


def test_recordings_scanned_transcribed_and_searchable(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["goforward.m4a", "cards-003-stereo.m4a"])
    lucy = start(start_lucy, d)
    wait_transcribed(lucy, 2)
    recs = by_name(lucy)
    assert set(recs) == {"goforward.m4a", "cards-003-stereo.m4a"}

    rec = lucy.get("/recordings/" + recs["goforward.m4a"]["id"]).json()
    assert len(rec["id"]) == 64
    assert rec["size"] == os.path.getsize(os.path.join(d, "goforward.m4a"))
    assert rec["scan_status"] == "ok" and rec["transcript_status"] == "done"
    assert rec["codec"] == "aac" and rec["sample_rate"] == 16000 and rec["channels"] == 1
    assert 1.0 < rec["duration_s"] < 5.0
    assert rec["paths"][0]["path"].endswith("goforward.m4a")
    t = rec["transcript"]
    assert t["engine"] == "pocketsphinx" and t["language"]
    assert "forward" in t["text"], t
    assert t["segments"], t
    for s in t["segments"]:
        assert 0 <= s["t0_ms"] < s["t1_ms"] <= rec["duration_s"] * 1000 + 500, s
        assert s["text"]
    assert rec["job"]["status"] == "done" and rec["job"]["attempts"] == 1

    # Stable cursor pagination: two pages of one, no overlap, then the end.
    p1 = lucy.get("/recordings", params={"limit": 1}).json()
    assert len(p1["recordings"]) == 1 and p1["next_cursor"]
    p2 = lucy.get("/recordings", params={"limit": 1, "cursor": p1["next_cursor"]}).json()
    assert len(p2["recordings"]) == 1 and p2["next_cursor"] is None
    # Newest call first (the default sort): same started_at, then by id.
    a, b = p1["recordings"][0], p2["recordings"][0]
    assert a["id"] != b["id"]
    assert (a["call"]["started_at_ms"], a["id"]) > (b["call"]["started_at_ms"], b["id"])
    assert len(recordings(lucy, status="done")) == 2
    assert recordings(lucy, status="failed") == []
    assert lucy.get("/recordings", params={"limit": 0}).json()["error_type"] == "bad_request"

    # Searchable, with the segment's time offsets (the index is fed through
    # the outbox by the indexer thread).
    def hit():
        r = lucy.get("/search", params={"q": "forward"})
        hits = r.json().get("hits", r.json().get("results", [])) if r.status_code == 200 else []
        return [h for h in hits if h.get("id") == rec["id"]]
    hits = lucy.wait_for(hit, timeout=20, what="search hit for 'forward'")
    assert hits[0]["source"] == "call_recording"
    assert hits[0]["t1_ms"] > hits[0]["t0_ms"] >= 0
    # Segments carry no title (DESIGN §12: names are not copied into every
    # segment); the hit's title is the recording's (DESIGN §5), read with
    # the result.
    assert hits[0]["title"] == rec["title"]
    assert rec["title"].startswith("Call with unknown caller")
    assert lucy.get("/search", params={"q": "goforward"}).json()["hits"] == []

    m = lucy.get("/metrics").text
    assert 'lucy_jobs{status="done"} 2' in m
    assert 'lucy_scan_files{outcome="new"}' in m
    assert "lucy_asr_real_time_factor" in m
    h = lucy.get("/health").json()
    assert h["checks"]["call_recordings:jobs"][0]["status"] == "pass"
    assert h["checks"]["call_recordings:scan"][0]["status"] == "pass"


def test_transcribe_same_job_wait_and_job_status(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["goforward.m4a"])
    lucy = start(start_lucy, d)
    rec = wait_transcribed(lucy, 1)[0]
    rec = lucy.get("/recordings/" + rec["id"]).json()
    path = "/recordings/%s/transcribe" % rec["id"]

    # Concurrent requests: one job, never a second transcription.
    results = []
    threads = [threading.Thread(target=lambda: results.append(lucy.post(path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 202 for r in results), [r.text for r in results]
    ids = {r.json()["job_id"] for r in results}
    assert len(ids) == 1, results
    job_id = ids.pop()
    assert job_id != rec["job"]["job_id"]

    r = lucy.post(path, params={"wait": "1"}, timeout=130)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["job_id"] == job_id and body["status"] == "done"
    assert "forward" in body["transcript"]["text"]
    assert body["transcript"]["segments"]

    j = job(lucy, job_id)
    assert j["status"] == "done" and j["attempts"] == 1
    assert j["error_type"] is None and j["next_retry_at"] is None
    # The automatic job and this one: two transcriptions in all.
    assert 'lucy_jobs{status="done"} 2' in lucy.get("/metrics").text

    # A finished job and then a new request: a new job.
    r = lucy.post(path)
    assert r.status_code == 202 and r.json()["job_id"] != job_id


def test_unknown_ids_are_404(start_lucy, tmp_path):
    lucy = start(start_lucy, recordings_dir(tmp_path, []))
    for method, path in [("GET", "/recordings/" + "0" * 64), ("GET", "/recordings/nothex"),
                         ("POST", "/recordings/%s/transcribe" % ("0" * 64)),
                         ("GET", "/jobs/999999"), ("GET", "/jobs/abc")]:
        r = lucy.request(method, path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error_type"] == "not_found" and r.json()["message"]


def test_list_query_parameters_checked(start_lucy, tmp_path):
    lucy = start(start_lucy, recordings_dir(tmp_path, []))
    # An unknown status is a 400 that lists what is accepted.
    r = lucy.get("/recordings", params={"status": "bogus"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error_type"] == "bad_request" and "bogus" in body["message"]
    for accepted in ("ok", "missing", "unavailable", "queued", "running", "retry_wait",
                     "blocked", "done", "no_speech", "failed", "none"):
        assert accepted in body["message"], (accepted, body["message"])
        assert lucy.get("/recordings", params={"status": accepted}).status_code == 200, accepted
    # limit: a whole number from 1 to 500.
    for limit in ("0", "501", "abc", "-1", "2.5", "+5", " 5", "99999999999999999999"):
        r = lucy.get("/recordings", params={"limit": limit})
        assert r.status_code == 400, (limit, r.text)
        assert r.json()["error_type"] == "bad_request" and "1 to 500" in r.json()["message"]
    # cursor: a recording id from next_cursor.
    for cursor in ("xyz", "0" * 63, "0" * 65, "A" * 64):
        r = lucy.get("/recordings", params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        assert "next_cursor" in r.json()["message"]
    assert lucy.get("/recordings", params={"cursor": "0" * 64}).status_code == 200
    # An empty parameter is the same as leaving it out.
    r = lucy.get("/recordings?status=&limit=&cursor=")
    assert r.status_code == 200 and r.json() == {"recordings": [], "next_cursor": None}
    # ?wait= of transcribe: 1/true/yes or 0/false/no.
    r = lucy.post("/recordings/%s/transcribe" % ("0" * 64), params={"wait": "maybe"})
    assert r.status_code == 400 and "wait must be 1" in r.json()["message"], r.text
    r = lucy.post("/recordings/%s/transcribe" % ("0" * 64), params={"wait": "0"})
    assert r.status_code == 404, r.text


def test_status_filter_pages(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["goforward.m4a", "cards-003-stereo.m4a", "cards-001.ogg"])
    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: len(recordings(lucy)) == 3, what="3 recordings scanned")
    first = lucy.get("/recordings", params={"status": "ok", "limit": 2}).json()
    assert len(first["recordings"]) == 2 and first["next_cursor"]
    rest = lucy.get("/recordings", params={"status": "ok", "limit": 2,
                                           "cursor": first["next_cursor"]}).json()
    assert len(rest["recordings"]) == 1 and rest["next_cursor"] is None
    assert recordings(lucy, status="none") == [] and recordings(lucy, status="missing") == []


def test_no_recordings_dirs_still_serves(start_lucy):
    lucy = start_lucy(env={"LUCY_ASR_ENGINE": "pocketsphinx"})
    assert lucy.get("/recordings").json() == {"recordings": [], "next_cursor": None}
    r = lucy.post("/recordings/scan")
    assert r.status_code == 503 and r.json()["error_type"] == "not_configured"
    assert "LUCY_RECORDINGS_DIRS" in r.json()["message"]


def test_duplicate_content_one_recording_transcribed_once(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["cards-003-stereo.m4a"])
    os.mkdir(os.path.join(d, "again"))
    shutil.copy(os.path.join(d, "cards-003-stereo.m4a"), os.path.join(d, "again", "copy.m4a"))
    lucy = start(start_lucy, d)
    recs = wait_transcribed(lucy, 1)
    time.sleep(1)  # give a (wrong) second job the chance to show
    recs = recordings(lucy)
    assert len(recs) == 1, recs
    assert sorted(os.path.basename(p["path"]) for p in recs[0]["paths"]) == \
        ["cards-003-stereo.m4a", "copy.m4a"]
    m = lucy.get("/metrics").text
    assert 'lucy_jobs{status="done"} 1' in m and 'lucy_jobs{status="queued"} 0' in m
    assert recs[0]["transcript_status"] == "done"
    # A scan now finds nothing new and queues nothing.
    s = lucy.post("/recordings/scan").json()
    assert s["new"] == 0 and s["files_seen"] == 2
    assert 'lucy_jobs{status="queued"} 0' in lucy.get("/metrics").text


@needs_root
def test_disk_critical_blocks_jobs_until_space_returns(start_lucy, tmp_path, tmpfs):
    d = recordings_dir(tmp_path, ["goforward.m4a", "cards-003-stereo.m4a"])
    data = os.path.join(tmpfs("48m"), "data")
    lucy = start(start_lucy, d, env={"LUCY_DISK_CRITICAL_MB": "16", "LUCY_DISK_WARN_MB": "16",
                                          "LUCY_DISK_INTERVAL_MS": "100"},
                 data_dir=data)
    recs = wait_transcribed(lucy, 2)
    filler = fill(os.path.dirname(data), leave_bytes=8 * 1024 * 1024)
    lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["disk:free"][0]["status"] != "pass",
                  timeout=10, what="disk critical")
    time.sleep(0.5)  # at least one worker loop sees the critical level

    job_ids = []
    for rec in recs:
        r = lucy.post("/recordings/%s/transcribe" % rec["id"])
        assert r.status_code == 202, r.text
        job_ids.append(r.json()["job_id"])
    for j in job_ids:
        blocked = wait_job(lucy, j, ("blocked",), timeout=10)
        assert blocked["error_type"] == "disk_critical"
        assert "space" in blocked["message"]
    r = lucy.post("/recordings/%s/transcribe" % recs[0]["id"], params={"wait": "1"})
    assert r.status_code == 507 and r.json()["error_type"] == "disk_full", r.text
    assert int(r.headers["Retry-After"]) > 0
    check = lucy.wait_for(
        lambda: (lambda c: c["status"] == "warn" and c)(lucy.get("/health").json()["checks"]["call_recordings:jobs"][0]),
        timeout=10, what="jobs check warns")
    assert "blocked" in check["output"]
    assert os.listdir(os.path.join(data, "tmp")) == []
    assert not [l for l in lucy.log_lines() if "temp copy" in l.get("msg", "")]

    os.unlink(filler)
    for j in job_ids:
        assert wait_job(lucy, j, DONE, timeout=60)["attempts"] == 1


@needs_shim
def test_locked_file_423_then_transcribed_by_itself(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["goforward.m4a"])
    target = os.path.join(d, "goforward.m4a")
    control = str(tmp_path / "locks")
    lucy = start(start_lucy, d, env=shim_env(control))
    rec = wait_transcribed(lucy, 1)[0]
    path = "/recordings/%s/transcribe" % rec["id"]

    set_locks(control, ["open EDEADLK " + target])
    r = lucy.post(path)
    assert r.status_code == 423, r.text
    body = r.json()
    assert body["error_type"] == "file_locked"
    assert "synced" in body["message"] and "retr" in body["message"]
    assert int(r.headers["Retry-After"]) >= 1 and body["retry_after_s"] >= 1
    job_id = body["job_id"]

    # The job waits and retries by itself; a second request is the same job.
    j = wait_job(lucy, job_id, ("retry_wait",), timeout=20)
    assert j["error_type"] == "file_locked" and j["next_retry_at"] and j["attempts"] >= 1
    r2 = lucy.post(path)
    assert r2.status_code == 423 and r2.json()["job_id"] == job_id
    lucy.wait_for(lambda: "lock" in (lucy.get("/health").json()["checks"]["call_recordings:jobs"][0].get("output") or ""),
                  timeout=10, what="jobs check names the lock")

    set_locks(control, [])
    done = wait_job(lucy, job_id, DONE, timeout=60)
    assert done["attempts"] >= 2 and done["error_type"] is None
    assert "forward" in lucy.get("/recordings/" + rec["id"]).json()["transcript"]["text"]


@needs_shim
def test_read_lock_everywhere_waits_then_finishes(start_lucy, tmp_path):
    """open() works but every read() fails: the temp copy's read fails too
    (the lock is real), so the job waits as file_locked, no copy is left
    behind, and it finishes once the lock is lifted."""
    d = recordings_dir(tmp_path, ["cards-003-stereo.m4a"])
    target = os.path.join(d, "cards-003-stereo.m4a")
    control = str(tmp_path / "locks")
    lucy = start(start_lucy, d, env=shim_env(control))
    rec = wait_transcribed(lucy, 1)[0]

    set_locks(control, ["read EAGAIN " + target])
    r = lucy.post("/recordings/%s/transcribe" % rec["id"], params={"wait": "1"})
    assert r.status_code == 423, r.text
    job_id = r.json()["job_id"]
    assert r.json()["job"]["error_type"] == "file_locked"
    assert os.listdir(os.path.join(lucy.data_dir, "tmp")) == []

    set_locks(control, [])
    wait_job(lucy, job_id, DONE, timeout=60)


@needs_shim
def test_read_lock_on_first_access_rescued_by_temp_copy(start_lucy, tmp_path):
    """A file provider that fails the first access while it materialises
    the file (lockshim mode `readfirst`: the first read of the path fails,
    and every later read on that descriptor; descriptors opened afterwards
    read normally). The worker's read-first-block check fails on its
    descriptor, which it closes; the temp copy (a fresh open and a plain
    sequential read, DESIGN §7) succeeds and is transcribed at once: one
    attempt, no retry, no copy left behind."""
    d = recordings_dir(tmp_path, ["cards-003-stereo.m4a"])
    target = os.path.join(d, "cards-003-stereo.m4a")
    control = str(tmp_path / "locks")
    lucy = start(start_lucy, d, env=shim_env(control))
    rec = wait_transcribed(lucy, 1)[0]

    set_locks(control, ["readfirst EDEADLK " + target])
    r = lucy.post("/recordings/%s/transcribe" % rec["id"], params={"wait": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done" and r.json()["attempts"] == 1
    assert [l for l in lucy.log_lines() if l.get("msg") == "locked recording read through a temp copy"]
    assert "lucy_asr_temp_copies_total 1" in lucy.get("/metrics").text
    assert os.listdir(os.path.join(lucy.data_dir, "tmp")) == []


IOFAIL = os.path.join(BUILD_DIR, "tests", "crash", "libiofail.so")


@pytest.mark.skipif(not os.path.exists(IOFAIL), reason="iofail shim not built: " + IOFAIL)
def test_scan_on_unwritable_store_fails_then_recovers(start_lucy, tmp_path):
    """POST /recordings/scan while the store's writes fail (EIO, injected by
    tests/crash/iofail.c): an error reply with error_type, not a summary,
    and nothing leaked on that path (the sanitizer build reports leaks at
    exit, which fails the test). Once the store is writable again the file
    is recorded."""
    d = recordings_dir(tmp_path, [])
    data = str(tmp_path / "data")
    marker = str(tmp_path / "iofail-marker")
    lucy = start(start_lucy, d, data_dir=data, env={
        "LD_PRELOAD": IOFAIL, "LUCY_IOFAIL_DIR": data, "LUCY_IOFAIL_MARKER": marker,
        "LUCY_DISK_RESERVE_MB": "0"})
    assert lucy.post("/recordings/scan").status_code == 200

    with open(marker, "w") as f:
        f.write("EIO")
    shutil.copy(os.path.join(AUDIO, "goforward.m4a"), os.path.join(d, "goforward.m4a"))
    r = lucy.post("/recordings/scan")
    assert r.status_code >= 500, r.text
    body = r.json()
    assert body["error_type"] in ("dependency_unavailable", "internal", "disk_full"), body
    assert "scan" in body["message"] and "files_seen" not in body
    assert [l for l in lucy.log_lines() if l.get("msg") == "scan failed"]

    os.unlink(marker)
    lucy.wait_for(lambda: lucy.post("/recordings/scan").status_code == 200 and recordings(lucy),
                  timeout=30, what="the file recorded once the store is writable")


@pytest.fixture
def gated_asr(tmp_path):
    """An OpenAI-compatible ASR server (asr_server.py) whose decoder waits
    while the gate file exists: jobs stay `running` until the test opens
    it. Yields (url, gate path)."""
    gate = str(tmp_path / "asr-gate")
    open(gate, "w").close()
    decoder = str(tmp_path / "gated-decoder")
    with open(decoder, "w") as f:
        f.write("#!/bin/sh\nwhile [ -e '%s' ]; do sleep 0.05; done\nexec pocketsphinx_continuous \"$@\"\n" % gate)
    os.chmod(decoder, 0o755)
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asr_server.py")
    proc = subprocess.Popen([sys.executable, server, "--decoder", decoder], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening "), line
    yield "http://127.0.0.1:%d/v1/audio/transcriptions" % int(line.split()[1]), gate
    proc.terminate()
    proc.wait(10)


def test_result_that_cannot_be_stored_is_retried_without_restart(start_lucy, tmp_path, gated_asr):
    """Two workers finish their jobs while every store write fails with
    ENOSPC (tests/crash/iofail.c): the result and the `blocked` fallback
    both fail. The workers keep the outcome and retry; call_recordings:jobs
    warns meanwhile; once the store is writable both jobs end with no
    restart (the old code left them `running` for good)."""
    url, gate = gated_asr
    d = recordings_dir(tmp_path, ["goforward.m4a", "cards-003-stereo.m4a"])
    data = str(tmp_path / "data")
    marker = str(tmp_path / "iofail-marker")
    lucy = start(start_lucy, d, data_dir=data, env={
        "LUCY_ASR_ENGINE": "http", "LUCY_ASR_URL": url, "LUCY_ASR_WORKERS": "2",
        "LD_PRELOAD": IOFAIL, "LUCY_IOFAIL_DIR": data, "LUCY_IOFAIL_MARKER": marker,
        "LUCY_DISK_RESERVE_MB": "0"})
    recs = lucy.wait_for(lambda: (lambda rs: len(rs) == 2 and all(r["transcript_status"] == "running" for r in rs) and rs)(recordings(lucy)),
                         timeout=30, what="both jobs running")
    job_ids = [lucy.get("/recordings/" + r["id"]).json()["job"]["job_id"] for r in recs]

    with open(marker, "w") as f:
        f.write("ENOSPC")
    os.unlink(gate)
    lucy.wait_for(lambda: len([l for l in lucy.log_lines() if "cannot record a transcription result" in l.get("msg", "")]) >= 2,
                  timeout=60, what="both results refused by the store")
    check = lucy.wait_for(
        lambda: (lambda c: c["status"] == "warn" and c)(lucy.get("/health").json()["checks"]["call_recordings:jobs"][0]),
        timeout=10, what="jobs check warns")
    assert "cannot be stored" in check["output"] and "retries" in check["output"], check
    time.sleep(2)  # a few failed retries

    os.unlink(marker)
    for j in job_ids:
        assert wait_job(lucy, j, DONE, timeout=30)["status"] in DONE
    assert 'lucy_jobs{status="running"} 0' in lucy.get("/metrics").text
    lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["call_recordings:jobs"][0]["status"] == "pass",
                  timeout=10, what="jobs check passes again")
