"""The media module (src/media/media.h): FFmpeg and the recognisers live in
lucy-media.so, next to the binary. Without it lucy still runs and loses
nothing: media work waits, says why, and goes on once the module is there."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, FIXTURES, SAN_ENV, media_processes

AUDIO = os.path.join(FIXTURES, "audio")
MODULE = os.path.join(BUILD_DIR, "lucy-media.so")


# Prometheus's text exposition format: a comment, or name{label="value",...} number.
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})?'
                    r' [-+]?(\d+(\.\d*)?([eE][-+]?\d+)?|NaN|[-+]?Inf)$')


def assert_prometheus_text(text):
    bad = [line for line in text.splitlines()
           if line and not line.startswith("#") and not SAMPLE.match(line)]
    assert not bad, bad


def lone_binary(tmp_path):
    """A copy of the binary in a folder without the module."""
    d = tmp_path / "bin"
    d.mkdir()
    shutil.copy(os.path.join(BUILD_DIR, "lucy"), str(d / "lucy"))
    return str(d / "lucy")


def test_transcribe_without_the_module_says_where_to_install_it(tmp_path):
    env = dict(os.environ, **SAN_ENV)
    run = subprocess.run([lone_binary(tmp_path), "transcribe", os.path.join(AUDIO, "goforward.m4a")],
                         capture_output=True, env=env, timeout=60)
    assert run.returncode != 0
    err = run.stderr.decode()
    assert "lucy-media.so" in err and "install it next to the lucy binary" in err, err


def test_serve_without_the_module_keeps_the_file_and_takes_it_once_installed(start_lucy, tmp_path):
    binary = lone_binary(tmp_path)
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    shutil.copy(os.path.join(AUDIO, "goforward.m4a"), str(rec_dir / "goforward.m4a"))
    lucy = start_lucy(binary=binary, env={
        "LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_SCAN_INTERVAL_S": "86400", "LUCY_ASR_ENGINE": "pocketsphinx"})

    # The file cannot be probed: the ledger says why, nothing is a 500.
    def ledger_row():
        rows = lucy.get("/ledger").json()["items"]
        return next((r for r in rows if r["path"].endswith("goforward.m4a")), None)
    row = lucy.wait_for(ledger_row, timeout=60, what="the file in the ledger")
    assert row["outcome"] != "recording", row
    assert row["outcome"] == "io_error" and row["reason_code"] == "ELIBACC", row
    assert "lucy-media.so" in row["advice"], row
    assert lucy.get("/recordings").json()["recordings"] == []
    def media_check():
        checks = lucy.get("/health").json()["checks"].get("media:module") or []
        return checks and checks[0]["status"] == "warn" and checks[0]
    check = lucy.wait_for(media_check, timeout=30, what="media:module warn in /health")
    assert "lucy-media.so" in check["output"] and "nothing is lost" in check["output"], check
    metrics = lucy.get("/metrics")
    assert metrics.status_code == 200
    assert_prometheus_text(metrics.text)
    assert 'lucy_scan_errors{errno="ELIBACC"} 1' in metrics.text
    # A re-transcription cannot be checked without the module: 503, not "set the engine".
    r = lucy.post("/recordings/retranscribe", json={"engine": "pocketsphinx"})
    assert r.status_code == 503 and r.json()["error_type"] == "dependency_unavailable", r.text
    assert "lucy-media.so" in r.json()["message"] and "nothing was queued" in r.json()["message"]

    # Installed next to the binary: the next scan takes the file.
    shutil.copy(MODULE, os.path.join(os.path.dirname(binary), "lucy-media.so"))
    assert lucy.post("/recordings/scan").status_code == 200

    def transcribed():
        recs = lucy.get("/recordings").json()["recordings"]
        return recs and recs[0]["transcript_status"] == "done" and recs[0]
    rec = lucy.wait_for(transcribed, timeout=180, interval=0.2, what="the recording transcribed")
    assert lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["media:module"][0]["status"]
                         == "pass", timeout=30, what="media:module pass once it loaded")
    assert "forward" in lucy.get("/recordings/%s" % rec["id"]).json()["transcript"]["text"]


def doctor(binary, tmp_path, **env):
    run = subprocess.run([binary, "doctor", "--json"], capture_output=True, timeout=120,
                         env=dict({k: v for k, v in os.environ.items() if not k.startswith("LUCY_")},
                                  LUCY_DATA_DIR=str(tmp_path / "data"), **SAN_ENV, **env))
    checks = {c["name"]: c for c in json.loads(run.stdout)["checks"]}
    return run.returncode, checks["media"]


def test_doctor_says_whether_the_module_and_the_engine_can_run(tmp_path):
    rc, media = doctor(os.path.join(BUILD_DIR, "lucy"), tmp_path, LUCY_ASR_ENGINE="pocketsphinx")
    assert media["status"] == "ok" and media["details"]["engine"] == "pocketsphinx", media

    rc, media = doctor(os.path.join(BUILD_DIR, "lucy"), tmp_path, LUCY_ASR_ENGINE="http")
    assert rc == 1 and media["status"] == "warn", media
    assert "LUCY_ASR_URL" in media["summary"] and "LUCY_ASR_URL" in media["remedy"], media

    rc, media = doctor(lone_binary(tmp_path), tmp_path)
    assert rc == 1 and media["status"] == "critical" and not media["details"]["loaded"], media
    assert "lucy-media.so" in media["summary"] and "meson install" in media["remedy"], media


SANITIZED = "asan" in os.path.basename(os.path.normpath(BUILD_DIR))


def transcribe_with_module(tmp_path, module_bytes):
    binary = lone_binary(tmp_path)
    with open(os.path.join(os.path.dirname(binary), "lucy-media.so"), "wb") as f:
        f.write(module_bytes)
    return subprocess.run([binary, "transcribe", os.path.join(AUDIO, "goforward.m4a")],
                          capture_output=True, env=dict(os.environ, **SAN_ENV), timeout=120)


def test_a_module_that_is_not_one_is_refused_with_why(tmp_path):
    run = transcribe_with_module(tmp_path, b"not an ELF file\n" * 64)
    err = run.stderr.decode()
    assert run.returncode != 0 and "invalid ELF header" in err, err
    path = os.path.join(str(tmp_path), "bin", "lucy-media.so")
    assert err.count(path) == 2, err  # once in the log line, once in lucy's message


@pytest.mark.skipif(SANITIZED, reason="an ASan binary can load an ASan module")
def test_a_module_built_with_asan_is_refused_not_loaded(tmp_path):
    """dlopen() of an ASan module aborts a plain process inside ASan's own
    initialiser; lucy must refuse it before. The real module with ASan's
    library name in it stands in for one (the check reads the file)."""
    with open(MODULE, "rb") as f:
        module = f.read()
    run = transcribe_with_module(tmp_path, module + b"\0libasan.so.8\0")
    err = run.stderr.decode()
    assert run.returncode == 1 and "built with AddressSanitizer" in err, (run.returncode, err)


# ---- media processes: what FFmpeg or a recogniser does stays there -------------

def wait_recognising(lucy):
    """The first recording, once its job has started recognising chunks."""
    def running():
        recs = lucy.get("/recordings").json()["recordings"]
        r = recs and lucy.get("/recordings/" + recs[0]["id"]).json()
        return r if r and r["progress"] and r["chunks_total"] else None
    return lucy.wait_for(running, timeout=120, interval=0.05, what="the job recognising chunks")


def test_a_media_process_killed_mid_job_costs_the_call_not_lucy(start_lucy, tmp_path):
    """`lucy serve` does media work in media processes (src/media/remote.c).
    kill -9 of them while a long call is transcribed (as a crash in FFmpeg
    or pocketsphinx's exit on a failed allocation would end them): lucy
    keeps serving, says what happened, retries the job in new processes
    and finishes it; nothing is lost."""
    import signal
    from audio_build import channel_wav
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    parts = []
    for name in ["librivox-0870.m4a", "librivox-0890.m4a", "goforward.m4a"] * 2:
        parts += [(name, None), (None, 2)]
    channel_wav(parts, str(rec_dir / "long.wav"))
    lucy = start_lucy(env={
        "LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1", "LUCY_ASR_CHUNK_S": "5",
        "LUCY_JOB_RETRY_BASE_S": "1"})
    rec = wait_recognising(lucy)
    kids = media_processes(lucy.proc.pid)
    assert kids, "no media process while a job runs"
    for k in kids:
        os.kill(k, signal.SIGKILL)

    # lucy itself goes on: it answers, and says what happened to the call.
    assert lucy.get("/health/live").status_code == 200
    lucy.wait_for(lambda: [l for l in lucy.log_lines()
                           if l.get("msg") == "media process ended during a call"
                           and "signal 9" in l.get("how", "")],
                  timeout=60, what="the media process's end logged")
    # The job is tried again in new processes and done, every clip heard.
    def done():
        r = lucy.get("/recordings/" + rec["id"]).json()
        return r if r["transcript_status"] == "done" else None
    r = lucy.wait_for(done, timeout=300, interval=0.2, what="the job done after the retry")
    assert "forward" in r["transcript"]["text"] and "leisure" in r["transcript"]["text"]
    job = lucy.get("/jobs/%d" % r["job"]["job_id"]).json() if r.get("job") else None
    assert job is None or job["attempts"] >= 2, job
    assert lucy.proc.poll() is None


def test_a_recogniser_killed_while_idle_is_opened_again_not_charged_to_the_next_job(
        start_lucy, tmp_path):
    """The loaded recogniser's process dies between jobs (kill -9, as the
    OOM killer would): the next job finds it dead before its first chunk,
    opens it again and is done in one attempt, with no asr_crashed."""
    import signal
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    lucy = start_lucy(env={
        "LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
        "LUCY_ASR_IDLE_UNLOAD_S": "600"})

    def transcribed(name):
        shutil.copy(os.path.join(FIXTURES, "audio", name), str(rec_dir / name))
        lucy.post("/recordings/scan")

        def done():
            for r in lucy.get("/recordings").json()["recordings"]:
                if os.path.basename(r["paths"][0]["path"]) == name and \
                        r["transcript_status"] == "done":
                    return lucy.get("/recordings/" + r["id"]).json()
            return None
        return lucy.wait_for(done, timeout=180, interval=0.2, what=name + " transcribed")

    transcribed("librivox-0870.m4a")
    kids = media_processes(lucy.proc.pid)
    assert kids, "no recogniser process kept loaded"
    for k in kids:
        os.kill(k, signal.SIGKILL)
    r = transcribed("librivox-0890.m4a")
    job = lucy.get("/jobs/%d" % r["job"]["job_id"]).json()
    assert job["attempts"] == 1, job
    assert [l for l in lucy.log_lines()
            if l.get("msg", "").startswith("recogniser's media process ended while idle")
            and "signal 9" in l.get("how", "")], lucy.log_text()[-3000:]


def test_a_recogniser_that_cannot_be_opened_again_at_once_is_not_charged_as_crashed(
        start_lucy, tmp_path):
    """The loaded recogniser's process dies while idle, and opening it again
    fails at first (its model's files are away a moment): that attempt says
    why (asr_unavailable), and once the files are back the next attempt
    opens it again and is done - no asr_crashed, nothing crashed."""
    import signal
    model = str(tmp_path / "model")
    shutil.copytree("/usr/share/pocketsphinx/model/en-us/en-us", model)
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    shutil.copy(os.path.join(FIXTURES, "audio", "goforward.m4a"), str(rec_dir / "a.m4a"))
    lucy = start_lucy(env={
        "LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
        "LUCY_ASR_IDLE_UNLOAD_S": "600", "LUCY_JOB_RETRY_BASE_S": "1"})

    def rec():
        recs = lucy.get("/recordings").json()["recordings"]
        return recs and lucy.get("/recordings/" + recs[0]["id"]).json()

    def job_ended(n):
        r = rec()
        return r and r.get("job") and r["job"]["job_id"] >= n and \
            r["job"]["status"] in ("done", "failed") and r["job"]

    def retranscribe():
        r = lucy.post("/recordings/retranscribe", json={"engine": "pocketsphinx", "model": model})
        assert r.status_code == 202, r.text

    lucy.wait_for(lambda: job_ended(1), timeout=120, interval=0.2, what="the first transcript")
    retranscribe()  # the lane now holds a recogniser of this model
    assert lucy.wait_for(lambda: job_ended(2), timeout=120, interval=0.2,
                         what="the re-transcription")["status"] == "done"
    kids = media_processes(lucy.proc.pid)
    assert kids, "no recogniser process kept loaded"
    for k in kids:
        os.kill(k, signal.SIGKILL)

    def gone():
        return all(not os.path.exists("/proc/%d" % k) or
                   open("/proc/%d/stat" % k).read().split()[2] == "Z" for k in kids)
    lucy.wait_for(gone, timeout=30, interval=0.05, what="the media processes ended")
    os.rename(os.path.join(model, "mdef"), os.path.join(model, "mdef.away"))
    retranscribe()

    def unavailable():
        j = rec()["job"]
        return j["job_id"] == 3 and j["error_type"] == "asr_unavailable" and j
    lucy.wait_for(unavailable, timeout=120, interval=0.05, what="the reopen failing")
    os.rename(os.path.join(model, "mdef.away"), os.path.join(model, "mdef"))
    job = lucy.wait_for(lambda: job_ended(3), timeout=120, interval=0.2, what="the job done")
    assert job["status"] == "done", job
    charged = [l for l in lucy.log_lines() if l.get("msg") == "transcription not done"
               and l.get("error_type") == "asr_crashed"]
    assert not charged, charged


CRASHONCE = os.path.join(BUILD_DIR, "tests", "faults", "libcrashonce.so")


@pytest.mark.skipif(not os.path.exists(CRASHONCE), reason="crashonce shim not built")
def test_a_pool_process_that_dies_as_it_takes_a_call_costs_nothing(start_lucy, tmp_path):
    """A media process from the pool dies the moment it gets a call (killed
    while idle, its end not yet seen: tests/faults/crashonce.c kills the
    first one to read a recording). The call goes to a new process, once:
    the file is probed and transcribed at this scan, no io_error ECHILD in
    the ledger waiting for the next one."""
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    mark = tmp_path / "died"
    lucy = start_lucy(env={
        "LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_SCAN_INTERVAL_S": "86400", "LUCY_ASR_ENGINE": "pocketsphinx",
        "LD_PRELOAD": CRASHONCE, "LUCY_CRASHONCE_MARK": str(mark)})
    lucy.wait_for(lambda: lucy.get("/metrics").text.count("lucy_media_loaded 1"), timeout=60,
                  what="a media process in the pool")
    shutil.copy(os.path.join(FIXTURES, "audio", "goforward.m4a"), str(rec_dir / "goforward.m4a"))
    lucy.post("/recordings/scan")
    r = lucy.wait_for(lambda: [x for x in lucy.get("/recordings").json()["recordings"]
                               if x["transcript_status"] == "done"] or
                      [l for l in lucy.get("/ledger").json()["items"]], timeout=120, interval=0.2,
                      what="the file transcribed, or a ledger row")
    assert mark.exists(), "the shim killed no media process"
    assert r and r[0].get("transcript_status") == "done", (r, lucy.get("/ledger").json())
    assert lucy.get("/ledger").json()["items"] == []


def test_a_hung_media_process_does_not_hold_up_the_stop(start_lucy, tmp_path):
    """A media process that stops answering (SIGSTOP here; a decoder in a
    loop would do the same) must not hold lucy's SIGTERM up: the call gives
    up within a second of the stop, the process is ended (no orphan), lucy
    exits 0, and the job resumes at the next start."""
    import signal
    import time
    from audio_build import channel_wav
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    parts = []
    for name in ["librivox-0870.m4a", "librivox-0890.m4a"] * 3:
        parts += [(name, None), (None, 2)]
    channel_wav(parts, str(rec_dir / "long.wav"))
    env = {"LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1", "LUCY_ASR_CHUNK_S": "5"}
    lucy = start_lucy(env=env)
    rec = wait_recognising(lucy)
    kids = media_processes(lucy.proc.pid)
    assert kids
    for k in kids:
        os.kill(k, signal.SIGSTOP)
    t0 = time.monotonic()
    assert lucy.stop(timeout=30) == 0, lucy.log_text()[-3000:]
    assert time.monotonic() - t0 < 15, "the stop waited for the hung process"
    for k in kids:  # ended, not left stopped under init
        assert not os.path.exists("/proc/%d" % k) or \
            open("/proc/%d/stat" % k).read().split()[2] == "Z", k
    again = start_lucy(env=env, data_dir=lucy.data_dir)
    again.wait_for(lambda: again.get("/recordings/" + rec["id"]).json()["transcript_status"]
                   == "done", timeout=300, interval=0.2, what="the job done after the restart")
