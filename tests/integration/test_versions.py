"""Transcript versions (DESIGN §13 Versions): a re-transcription adds a
version and never overwrites one; switching the active version re-indexes
the recording; a bulk re-transcription is one job group with progress and
cancel; a re-transcription may name another engine or model, which its
job loads (and the version records); bad requests get 400/404/409 with an
error_type, before anything is queued.

Real parts only: the lucy binary, FFmpeg, pocketsphinx in-process, and for
the job group the `http` engine against asr_server.py (an OpenAI-compatible
server that validates each request and runs pocketsphinx_continuous).
Recordings are built in the test from tests/fixtures/audio/ with the
ffmpeg CLI. What differs between two versions is real recogniser output:
the same audio chunked at LUCY_ASR_CHUNK_S=30 and at 5 (pocketsphinx
hears the cut), and the words compared are read from the API, never
written into the test.

No fixed sleeps: every wait polls an endpoint with a generous deadline.
"""
import os
import signal
import subprocess
import sys

import pytest

from audio_build import channel_wav, ffmpeg
from test_webhook import db_query

HERE = os.path.dirname(os.path.abspath(__file__))
DONE = ("done", "no_speech")
TWO_CLIPS = [("librivox-0870.m4a", None), ("librivox-0890.m4a", None)]


def env_for(rec_dir, **more):
    e = {
        "LUCY_RECORDINGS_DIRS": rec_dir,
        "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx",
        "LUCY_ASR_THREADS": "1",
        "LUCY_ASR_WORKERS": "1",
        "LUCY_JOB_RETRY_BASE_S": "1",
    }
    e.update(more)
    return e


def recordings(lucy):
    r = lucy.get("/recordings", params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["recordings"]


def wait_transcribed(lucy, n, timeout=300):
    def ready():
        recs = recordings(lucy)
        return len(recs) >= n and all(r["transcript_status"] in DONE for r in recs) and recs
    return lucy.wait_for(ready, timeout=timeout, interval=0.2, what="%d recordings transcribed" % n)


def versions(lucy, rid):
    r = lucy.get("/recordings/%s/transcripts" % rid)
    assert r.status_code == 200, r.text
    return r.json()


def version(lucy, rid, n):
    r = lucy.get("/recordings/%s/transcripts/%d" % (rid, n))
    assert r.status_code == 200, r.text
    return r.json()


def retranscribe(lucy, rid):
    """POST /recordings/{id}/transcribe?wait=1 until the job has ended."""
    r = lucy.post("/recordings/%s/transcribe" % rid, params={"wait": 1}, timeout=200)
    assert r.status_code in (200, 202), r.text
    job = r.json()["job_id"]
    return lucy.wait_for(lambda: lucy.get("/jobs/%d" % job).json()["status"] in DONE and job,
                         timeout=300, interval=0.2, what="job %d ended" % job)


def search_ids(lucy, word):
    r = lucy.get("/search", params={"q": word, "limit": 50})
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["hits"]}


def vocabulary(text):
    """Plain words of 4+ letters: safe as FTS queries."""
    return {w for w in text.lower().split() if w.isalpha() and len(w) >= 4}


@pytest.fixture
def two_versions(start_lucy, tmp_path):
    """One recording transcribed twice: version 1 at LUCY_ASR_CHUNK_S=30,
    version 2 (after a restart) at 5 s chunks. Returns (lucy, rid)."""
    rec = tmp_path / "rec"
    rec.mkdir()
    channel_wav(TWO_CLIPS, str(rec / "call.wav"))
    data = str(tmp_path / "data")
    lucy = start_lucy(env=env_for(str(rec)), data_dir=data)
    rid = wait_transcribed(lucy, 1)[0]["id"]
    assert lucy.stop() == 0
    lucy = start_lucy(env=env_for(str(rec), LUCY_ASR_CHUNK_S="5"), data_dir=data)
    retranscribe(lucy, rid)
    return lucy, rid


def test_retranscription_adds_version_2_and_keeps_version_1(two_versions):
    lucy, rid = two_versions
    listed = versions(lucy, rid)
    assert listed["active_version"] == 2
    assert [v["version"] for v in listed["versions"]] == [2, 1]  # newest first
    assert [v["active"] for v in listed["versions"]] == [True, False]
    for v in listed["versions"]:
        assert v["status"] == "done" and v["engine"] == "pocketsphinx" and v["model"]
        assert v["word_count"] > 0 and v["rtf"] > 0 and v["created_at"].endswith("Z")
    v1, v2 = version(lucy, rid, 1), version(lucy, rid, 2)
    assert v1["text"] != v2["text"], "chunking at 5 s should change pocketsphinx's words"
    # Version 1 is intact: its segments and word timings, as the first run made them.
    assert v1["segments"] and all(s["words"] for s in v1["segments"])
    assert " ".join(s["text"] for s in v1["segments"]) == v1["text"]
    assert v1["word_count"] == len(v1["text"].split())
    for s in v1["segments"]:
        assert [w["t0_ms"] for w in s["words"]] == sorted(w["t0_ms"] for w in s["words"])
        assert s["t0_ms"] <= s["words"][0]["t0_ms"] and s["words"][-1]["t1_ms"] <= s["t1_ms"]
    # GET /recordings/{id} shows the active one, with its number.
    t = lucy.get("/recordings/" + rid).json()["transcript"]
    assert t["version"] == 2 and t["text"] == v2["text"]
    assert t["segments"] == v2["segments"]


def test_switching_the_active_version_reindexes(two_versions):
    lucy, rid = two_versions
    v1 = vocabulary(version(lucy, rid, 1)["text"])
    v2 = vocabulary(version(lucy, rid, 2)["text"])
    only1, only2 = sorted(v1 - v2), sorted(v2 - v1)
    assert only1 and only2, "the two versions should each have words of their own"

    n_segments = {n: len(version(lucy, rid, n)["segments"]) for n in (1, 2)}
    assert n_segments[1] != n_segments[2], "versions with different segment counts test stale documents"

    def documents_are(n):
        # The recording's live search documents are exactly version n's
        # segments: none left over from a version with more segments.
        want = [(i, s["text"]) for i, s in enumerate(version(lucy, rid, n)["segments"]) if s["text"]]
        return db_query(lucy.data_dir, "SELECT segment, text FROM documents WHERE source ="
                        " 'call_recording' AND id = ? AND deleted = 0 ORDER BY segment",
                        (rid,)) == want

    def finds(active_words, other_words):
        n = lucy.get("/recordings/" + rid).json()["transcript"]["version"]
        return (documents_are(n) and all(rid in search_ids(lucy, w) for w in active_words)
                and not any(rid in search_ids(lucy, w) for w in other_words))

    lucy.wait_for(lambda: finds(only2, only1), timeout=60, what="search finds version 2 only")
    r = lucy.put("/recordings/%s/transcripts/active" % rid, json={"version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["active_version"] == 1
    lucy.wait_for(lambda: finds(only1, only2), timeout=60, what="search finds version 1 only")
    t = lucy.get("/recordings/" + rid).json()["transcript"]
    assert t["version"] == 1 and t["text"] == version(lucy, rid, 1)["text"]
    assert t["segments"] == version(lucy, rid, 1)["segments"]
    # And back: the switch is repeatable and loses nothing.
    assert lucy.put("/recordings/%s/transcripts/active" % rid, json={"version": 2}).status_code == 200
    lucy.wait_for(lambda: finds(only2, only1), timeout=60, what="search finds version 2 again")
    assert len(versions(lucy, rid)["versions"]) == 2


def start_server():
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "asr_server.py")],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening "), line
    return proc, "http://127.0.0.1:%d/v1/audio/transcriptions" % int(line.split()[1])


def group(lucy, gid):
    r = lucy.get("/job-groups/%d" % gid)
    assert r.status_code == 200, r.text
    return r.json()


def test_bulk_retranscription_progress_and_cancel(start_lucy, tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    for i, clip in enumerate(["librivox-0880.m4a", "librivox-0890.m4a", "goforward.m4a"]):
        ffmpeg("-i", os.path.join(HERE, "..", "fixtures", "audio", clip), "-ar", "16000",
               "-ac", "1", str(rec / ("call-%d.wav" % i)))
    server, url = start_server()
    try:
        lucy = start_lucy(env=env_for(str(rec), LUCY_ASR_ENGINE="http", LUCY_ASR_URL=url))
        recs = wait_transcribed(lucy, 3)
        rids = [r["id"] for r in recs]

        # The recogniser stops answering: the group's first job stays
        # running and the two others stay queued behind it (one worker).
        server.send_signal(signal.SIGSTOP)
        try:
            r = lucy.post("/recordings/retranscribe", json={"engine": "http"})
            assert r.status_code == 202, r.text
            g = r.json()
            gid = g["group_id"]
            assert g["total"] == 3 and g["skipped"] == 0 and g["kind"] == "retranscribe"
            lucy.wait_for(lambda: group(lucy, gid)["running"] == 1, timeout=60,
                          what="one job of the group running")
            assert group(lucy, gid)["queued"] == 2
            r = lucy.post("/job-groups/%d/cancel" % gid)
            assert r.status_code == 200, r.text
            c = r.json()
            assert c["state"] == "cancelling" and c["queued"] == 0 and c["cancelled"] == 2
            assert c["running"] == 1
        finally:
            server.send_signal(signal.SIGCONT)
        # The running one finishes; the dropped ones never run.
        g = lucy.wait_for(lambda: (lambda g: g["state"] == "cancelled" and g)(group(lucy, gid)),
                          timeout=300, what="the cancelled group settled")
        assert g["done"] == 1 and g["cancelled"] == 2 and g["progress"] == 1
        active = sorted(versions(lucy, rid)["active_version"] for rid in rids)
        assert active == [1, 1, 2]

        # A second group over everything runs to the end.
        r = lucy.post("/recordings/retranscribe", json={})
        assert r.status_code == 202, r.text
        gid = r.json()["group_id"]
        seen = []

        def finished():
            g = group(lucy, gid)
            seen.append(g["progress"])
            return g["state"] == "done" and g
        g = lucy.wait_for(finished, timeout=300, interval=0.2, what="the group done")
        assert g["total"] == 3 and g["done"] == 3 and g["failed"] == 0 and g["progress"] == 1
        assert seen == sorted(seen), "progress never goes back"
        for rid in rids:
            listed = versions(lucy, rid)
            assert listed["active_version"] == listed["versions"][0]["version"] >= 2
            assert all(v["status"] == "done" for v in listed["versions"])
            assert version(lucy, rid, 1)["segments"], "version 1 stays intact"
    finally:
        server.terminate()
        server.wait(10)


def stored(v):
    """A version as stored: without `active`, which a newer version changes."""
    return {k: x for k, x in v.items() if k != "active"}


def post_and_wait(lucy, rid, body):
    """POST /recordings/{id}/transcribe with body; the ended job's JSON."""
    r = lucy.post("/recordings/%s/transcribe" % rid, params={"wait": 1}, json=body, timeout=200)
    assert r.status_code in (200, 202), r.text
    job = r.json()["job_id"]
    return lucy.wait_for(lambda: (lambda j: j["status"] in DONE and j)(
        lucy.get("/jobs/%d" % job).json()), timeout=300, interval=0.2, what="job %d ended" % job)


def test_retranscription_with_another_engine(start_lucy, tmp_path):
    """pocketsphinx is the configured engine; a job may ask for http (and
    back): each version records the engine that really ran."""
    rec = tmp_path / "rec"
    rec.mkdir()
    for i, clip in enumerate(["librivox-0880.m4a", "goforward.m4a"]):
        ffmpeg("-i", os.path.join(HERE, "..", "fixtures", "audio", clip), "-ar", "16000",
               "-ac", "1", str(rec / ("call-%d.wav" % i)))
    server, url = start_server()
    try:
        lucy = start_lucy(env=env_for(str(rec), LUCY_ASR_URL=url))  # engine stays pocketsphinx
        rids = sorted(r["id"] for r in wait_transcribed(lucy, 2))
        first = {rid: stored(version(lucy, rid, 1)) for rid in rids}
        assert all(v["engine"] == "pocketsphinx" and v["text"] for v in first.values())

        # One recording, with the http engine.
        rid = rids[0]
        job = post_and_wait(lucy, rid, {"engine": "http"})
        assert job["status"] == "done" and job["engine"] == "http" and job["model"] is None
        listed = versions(lucy, rid)
        assert listed["active_version"] == 2
        v2 = version(lucy, rid, 2)
        assert v2["engine"] == "http" and v2["model"] == "whisper-1" and v2["text"]
        assert stored(version(lucy, rid, 1)) == first[rid], "version 1 stays intact"
        words = sorted(vocabulary(v2["text"]))
        assert words
        lucy.wait_for(lambda: all(rid in search_ids(lucy, w) for w in words), timeout=60,
                      what="the http version's words searchable")

        # Both recordings in one group, with http.
        r = lucy.post("/recordings/retranscribe", json={"engine": "http"})
        assert r.status_code == 202, r.text
        gid = r.json()["group_id"]
        assert r.json()["total"] == 2 and r.json()["filter"]["engine"] == "http"
        g = lucy.wait_for(lambda: (lambda g: g["state"] == "done" and g)(group(lucy, gid)),
                          timeout=300, interval=0.2, what="the http group done")
        assert g["done"] == 2 and g["failed"] == 0
        for rid in rids:
            listed = versions(lucy, rid)
            newest = listed["versions"][0]
            assert listed["active_version"] == newest["version"] >= 2
            assert newest["engine"] == "http" and newest["status"] == "done"
            assert stored(version(lucy, rid, 1)) == first[rid]

        # A job without an engine runs the configured one again.
        job = post_and_wait(lucy, rids[1], {})
        assert job["engine"] is None
        newest = versions(lucy, rids[1])["versions"][0]
        assert newest["engine"] == "pocketsphinx" and newest["version"] == 3
    finally:
        server.terminate()
        server.wait(10)


def test_engine_and_model_checked_before_anything_is_queued(start_lucy, tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    ffmpeg("-f", "lavfi", "-t", "3", "-i", "anullsrc=r=16000:cl=mono", str(rec / "silence.wav"))
    lucy = start_lucy(env=env_for(str(rec)))  # pocketsphinx, no LUCY_ASR_URL
    rid = wait_transcribed(lucy, 1)[0]["id"]
    count = "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_groups)"
    before = db_query(lucy.data_dir, count)
    missing = str(tmp_path / "no-such-acoustic-model")

    def err(r, status, *advice):
        assert r.status_code == status, r.text
        body = r.json()
        assert body["error_type"] == {400: "bad_request", 409: "conflict"}[status], body
        assert all(a in body["message"] for a in advice), body
        assert "nothing was queued" in body["message"], body

    for path in ("/recordings/%s/transcribe" % rid, "/recordings/retranscribe"):
        err(lucy.post(path, json={"engine": "sphinx9"}), 400, "sphinx9", "pocketsphinx")
        err(lucy.post(path, json={"engine": "http"}), 409, "LUCY_ASR_URL")
        err(lucy.post(path, json={"engine": "pocketsphinx", "model": missing}), 400, missing)
        err(lucy.post(path, json={"model": missing}), 400, missing)  # the configured engine's
    for body in ({"engine": 7}, {"engine": ""}, {"model": ["x"]}, {"model": "m" * 300}):
        r = lucy.post("/recordings/retranscribe", json=body)
        assert r.status_code == 400 and r.json()["error_type"] == "bad_request", r.text
    assert db_query(lucy.data_dir, count) == before, "a refused request queued nothing"


def test_bad_requests(start_lucy, tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    ffmpeg("-f", "lavfi", "-t", "3", "-i", "anullsrc=r=16000:cl=mono", str(rec / "silence.wav"))
    lucy = start_lucy(env=env_for(str(rec)))
    rid = wait_transcribed(lucy, 1)[0]["id"]
    listed = versions(lucy, rid)
    assert listed["versions"][0]["status"] == "no_speech"

    def err(r, status, error_type):
        assert r.status_code == status, r.text
        body = r.json()
        assert body["error_type"] == error_type and body["message"], body
        return body["message"]

    path = "/recordings/%s/transcripts" % rid
    # A version that found no speech cannot be the active one.
    assert "no speech" in err(lucy.put(path + "/active", json={"version": 1}), 409, "conflict")
    # Unknown versions and recordings.
    assert "GET /recordings/{id}/transcripts" in err(
        lucy.put(path + "/active", json={"version": 7}), 404, "not_found")
    err(lucy.get(path + "/7"), 404, "not_found")
    err(lucy.get(path + "/x"), 404, "not_found")
    err(lucy.get("/recordings/%s/transcripts" % ("0" * 64)), 404, "not_found")
    err(lucy.put("/recordings/%s/transcripts/active" % ("0" * 64), json={"version": 1}), 404,
        "not_found")
    # Bad bodies: nothing changes.
    for body in ("{", "[]", '{"version": "2"}', '{"version": 0}', ""):
        err(lucy.put(path + "/active", data=body), 400, "bad_request")
    assert versions(lucy, rid) == listed
    tr = "/recordings/%s/transcribe" % rid
    err(lucy.post(tr, data="{"), 400, "bad_request")
    err(lucy.post(tr, json={"engine": "sphinx9"}), 400, "bad_request")
    assert "LUCY_ASR_URL" in err(lucy.post(tr, json={"engine": "http"}), 409, "conflict")
    err(lucy.post(tr, json={"model": "large-v3"}), 400, "bad_request")  # not a model directory
    err(lucy.post("/recordings/retranscribe", data="{"), 400, "bad_request")
    err(lucy.post("/recordings/retranscribe", json={"from": "2024-05-02", "to": "2024-05-01"}),
        400, "bad_request")
    err(lucy.post("/recordings/retranscribe", json={"person": "bob"}), 400, "bad_request")
    # A person lucy does not know is not "a person without calls": 404, nothing queued.
    assert "GET /people" in err(lucy.post("/recordings/retranscribe", json={"person": 999}), 404,
                                "not_found")
    err(lucy.post("/recordings/retranscribe", json={"from": "yesterday-ish"}), 400, "bad_request")
    err(lucy.get("/job-groups/999"), 404, "not_found")
    err(lucy.post("/job-groups/999/cancel"), 404, "not_found")
    err(lucy.get("/job-groups/abc"), 404, "not_found")
    # An accepted empty group: nothing matched, progress 1 at once.
    r = lucy.post("/recordings/retranscribe", json={"from": "1990-01-01", "to": "1990-01-02"})
    assert r.status_code == 202, r.text
    assert r.json()["total"] == 0 and r.json()["progress"] == 1 and r.json()["state"] == "done"


def test_a_job_whose_own_model_does_not_load_fails_with_advice(start_lucy, tmp_path):
    """A model directory passes the check when queued but holds no acoustic
    model (or is removed before the job runs): the job fails with
    asr_failed and what to do, instead of waiting and retrying forever;
    the recording keeps its version."""
    rec = tmp_path / "rec"
    rec.mkdir()
    channel_wav([("goforward.m4a", None)], str(rec / "call.wav"))
    lucy = start_lucy(env=env_for(str(rec)))
    rid = wait_transcribed(lucy, 1)[0]["id"]
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    r = lucy.post("/recordings/%s/transcribe" % rid, json={"model": str(empty)})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = lucy.wait_for(lambda: (lambda j: j["status"] == "failed" and j)(
        lucy.get("/jobs/%d" % job_id).json()), timeout=120, interval=0.2,
        what="job %d failed" % job_id)
    assert job["error_type"] == "asr_failed" and job["model"] == str(empty), job
    assert str(empty) in job["message"] and 'without "model"' in job["message"], job
    assert job["attempts"] == 1, job
    assert [v["version"] for v in versions(lucy, rid)["versions"]] == [1]
