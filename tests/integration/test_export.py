"""Export (DESIGN §15, issue 15): a recording's transcript as a file
(GET /recordings/{id}/transcript.{txt,srt,vtt,json}) read back by FFmpeg,
and `lucy export DIR` while `lucy serve` runs.

Real parts: the lucy binary, FFmpeg (ffprobe reads the subtitle files),
pocketsphinx (makes the transcript)."""
import json
import os
import re
import shutil
import subprocess

from conftest import FIXTURES, LUCY_BIN, SAN_ENV, fill, needs_root

AUDIO = os.path.join(FIXTURES, "audio")
DONE = ("done", "no_speech")


def start(start_lucy, rec_dir, env=None):
    e = {"LUCY_RECORDINGS_DIRS": rec_dir, "LUCY_SCAN_SETTLE_S": "0",
         "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1"}
    e.update(env or {})
    return start_lucy(env=e)


def recordings_dir(tmp_path, names):
    d = tmp_path / "recordings"
    d.mkdir()
    for n in names:
        shutil.copy(os.path.join(AUDIO, n), str(d / n))
    return str(d)


def wait_transcribed(lucy, n, timeout=120):
    def ready():
        recs = lucy.get("/recordings", params={"limit": 500}).json()["recordings"]
        return len(recs) >= n and all(r["transcript_status"] in DONE for r in recs) and recs
    return lucy.wait_for(ready, timeout=timeout, interval=0.2, what="%d recordings transcribed" % n)


def ffprobe_cues(path):
    """The number of subtitle packets (cues) ffprobe reads from path."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_packets", "-of", "json", path],
                         check=True, capture_output=True, text=True).stdout
    return len(json.loads(out).get("packets", []))


def test_transcript_files_read_back_by_ffmpeg(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["librivox-0870.m4a"])
    lucy = start(start_lucy, d)
    rec_id = wait_transcribed(lucy, 1)[0]["id"]
    api = lucy.get("/recordings/" + rec_id).json()["transcript"]
    segments = api["segments"]
    assert segments, api

    for ext in ("srt", "vtt"):
        r = lucy.get("/recordings/%s/transcript.%s" % (rec_id, ext))
        assert r.status_code == 200, r.text
        cd = r.headers["Content-Disposition"]
        m = re.match(r'attachment; filename="([A-Za-z0-9_.-]+)"$', cd)
        assert m and m.group(1).endswith(rec_id[:12] + "." + ext), cd
        path = str(tmp_path / m.group(1))
        with open(path, "wb") as f:
            f.write(r.content)
        assert ffprobe_cues(path) == len(segments), r.text
    vtt = lucy.get("/recordings/%s/transcript.vtt" % rec_id).text
    assert vtt.startswith("WEBVTT\n")
    first = segments[0]
    stamp = "%02d:%02d:%02d.%03d" % (first["t0_ms"] // 3600000, first["t0_ms"] // 60000 % 60,
                                      first["t0_ms"] // 1000 % 60, first["t0_ms"] % 1000)
    assert stamp + " --> " in vtt, vtt

    r = lucy.get("/recordings/%s/transcript.json" % rec_id)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == api
    # seconds as ms, printed as written (7.1, not jansson's 7.0999999999999996), as the API does
    api_text = lucy.get("/recordings/" + rec_id).text
    for text in (r.text, api_text):
        reals = re.findall(r'"(duration_s|source_duration_s|rtf)": ?(-?[0-9.eE+-]+)', text)
        assert len(reals) >= 2, text[:400]
        for key, value in reals:
            assert re.fullmatch(r"-?[0-9]+(\.[0-9]{1,3})?", value), (key, value)
    assert not re.search(r"[0-9]\.[0-9]{15,}", r.text + api_text), "a real printed with 17 digits"

    txt = lucy.get("/recordings/%s/transcript.txt" % rec_id)
    assert txt.headers["Content-Type"].startswith("text/plain")
    assert [l.split("] ", 1)[1] for l in txt.text.splitlines()] == [s["text"] for s in segments]


def test_transcript_file_errors(start_lucy, tmp_path):
    d = recordings_dir(tmp_path, ["goforward.m4a"])
    # no ASR worker can finish: a recording without a transcript
    lucy = start(start_lucy, d, env={"LUCY_ASR_ENGINE": "http",
                                     "LUCY_ASR_URL": "http://127.0.0.1:9/v1/audio/transcriptions"})
    recs = lucy.wait_for(lambda: lucy.get("/recordings").json()["recordings"], what="scanned")
    r = lucy.get("/recordings/%s/transcript.srt" % recs[0]["id"])
    assert r.status_code == 409, r.text
    assert r.json()["error_type"] == "conflict" and "transcribe" in r.json()["message"]
    r = lucy.get("/recordings/%s/transcript.vtt" % ("0" * 64))
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"
    r = lucy.get("/recordings/%s/transcript.doc" % recs[0]["id"])
    assert r.status_code == 404


def run_export(lucy, out_dir, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    env.update(SAN_ENV)
    env["LUCY_DATA_DIR"] = lucy.data_dir
    return subprocess.run([LUCY_BIN, "export", out_dir, "--json", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_lucy_export_while_serving(start_lucy, tmp_path):
    from test_webhook import BASE_ENV, message_body, post, wait_drained
    d = recordings_dir(tmp_path, ["goforward.m4a"])
    env = dict(BASE_ENV)
    lucy = start(start_lucy, d, env=env)
    rec = wait_transcribed(lucy, 1)[0]
    day1, day2 = 1714557600, 1714557600 + 86400  # 2024-05-01 10:00 UTC, the next day
    for wamid, sender, ts, text in [("wamid.E1", "15550001234", day1, "first on day one"),
                                    ("wamid.E2", "15550001234", day1 + 60, "second on day one"),
                                    ("wamid.E3", "15550001234", day2, "on day two"),
                                    ("wamid.E4", "15550009999", day1, "someone else")]:
        r = post(lucy, message_body(wamid, sender=sender, text=text, ts=ts, name="Ann Example"
                                    if sender.endswith("1234") else "Bob"))
        assert r.status_code == 200, r.text
    wait_drained(lucy)

    out = str(tmp_path / "export")
    p = run_export(lucy, out)  # lucy serve keeps running
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["calls"] == 1 and summary["message_conversations"] == 3, summary
    calls = sorted(os.listdir(os.path.join(out, "calls")))
    assert len(calls) == 2 and calls[0].endswith(".json") and calls[1].endswith(".md"), calls
    with open(os.path.join(out, "calls", calls[0])) as f:
        api = lucy.get("/recordings/" + rec["id"]).json()
        # progress/eta_s are the running job's live state (DESIGN §13), which
        # only the serving process knows: the export holds the stored data
        for live in ("progress", "eta_s"):
            assert api.pop(live, None) is None
        assert json.load(f) == api
    with open(os.path.join(out, "calls", calls[1])) as f:
        md = f.read()
    assert md.startswith("# ") and "## Transcript" in md and rec["id"] in md
    msgs = sorted(os.listdir(os.path.join(out, "messages")))
    assert len(msgs) == 6, msgs
    ann_day1 = [m for m in msgs if m.startswith("2024-05-01-Ann_Example-15550001234") and m.endswith(".json")]
    assert len(ann_day1) == 1, msgs
    with open(os.path.join(out, "messages", ann_day1[0])) as f:
        doc = json.load(f)
    assert [m["wamid"] for m in doc["messages"]] == ["wamid.E1", "wamid.E2"]
    assert doc["person"]["name"] == "Ann Example" and doc["day"] == "2024-05-01"
    with open(os.path.join(out, "messages", ann_day1[0][:-5] + ".md")) as f:
        md = f.read()
    assert "# Messages with Ann Example, 2024-05-01" in md and "second on day one" in md

    # --person and --from/--to narrow it; the person is Ann's
    person = doc["person"]["id"]
    out2 = str(tmp_path / "export2")
    p = run_export(lucy, out2, "--person", str(person), "--from", "2024-05-02", "--to", "2024-05-02")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"dir": out2, "calls": 0, "message_conversations": 1}
    assert sorted(os.listdir(os.path.join(out2, "messages"))) == [
        "2024-05-02-Ann_Example-15550001234.json", "2024-05-02-Ann_Example-15550001234.md"]

    p = run_export(lucy, out2, "--from", "yesterday")
    assert p.returncode == 2 and "--from" in p.stderr


def test_export_keeps_apart_conversations_whose_names_reduce_alike(start_lucy, tmp_path):
    """Names in other scripts reduce to no ASCII at all: two senders writing
    on one day each get their own file, and the count is of files written."""
    from test_webhook import BASE_ENV, message_body, post, wait_drained
    lucy = start_lucy(env=dict(BASE_ENV))
    day = 1714557600  # 2024-05-01 10:00 UTC
    for wamid, sender, name, text in [("wamid.U1", "15550002001", "Маша", "from masha"),
                                      ("wamid.U2", "15550002002", "李雷", "from li lei"),
                                      ("wamid.U3", "15550002001", "Маша", "masha again")]:
        r = post(lucy, message_body(wamid, sender=sender, text=text, ts=day, name=name))
        assert r.status_code == 200, r.text
    wait_drained(lucy)
    out = str(tmp_path / "export")
    p = run_export(lucy, out)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["message_conversations"] == 2, p.stdout
    names = sorted(os.listdir(os.path.join(out, "messages")))
    assert len(names) == 4, names
    by_sender = {}
    for n in names:
        if n.endswith(".json"):
            with open(os.path.join(out, "messages", n)) as f:
                doc = json.load(f)
            by_sender[doc["sender"]] = [m["text"] for m in doc["messages"]]
            with open(os.path.join(out, "messages", n[:-5] + ".md")) as f:
                assert doc["messages"][0]["text"] in f.read()
    assert by_sender == {"15550002001": ["from masha", "masha again"],
                         "15550002002": ["from li lei"]}, by_sender


def serve_messages(start_lucy, n=3):
    """lucy with n messages of one sender, one a day (n conversations), no recordings."""
    from test_webhook import BASE_ENV, message_body, post, wait_drained
    lucy = start_lucy(env=dict(BASE_ENV))
    for i in range(n):
        r = post(lucy, message_body("wamid.F%d" % i, sender="15550001234", ts=1714557600 + 86400 * i,
                                    text="message %d " % i + "x" * 3000, name="Ann Example"))
        assert r.status_code == 200, r.text
    wait_drained(lucy)
    return lucy


def json_error(p):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    err = json.loads(p.stdout)
    assert err["message"] and err["advice"], err
    assert err["advice"] in p.stderr  # the person at a terminal reads it too
    return err


def test_export_of_a_person_lucy_does_not_know_fails(start_lucy, tmp_path):
    lucy = serve_messages(start_lucy, 1)
    out = str(tmp_path / "export")
    for person in (("--person", "99"), ("--person=99",)):
        err = json_error(run_export(lucy, out, *person))
        assert err["error_type"] == "not_found" and "99" in err["message"]
        assert "GET /people" in err["advice"]
    assert not os.path.exists(out)  # refused before anything was made


@needs_root
def test_export_onto_a_full_disk_fails_clearly_and_leaves_no_cut_file(start_lucy, tmpfs):
    lucy = serve_messages(start_lucy)
    mnt = tmpfs("1m")
    out = os.path.join(mnt, "export")
    fill(mnt)
    err = json_error(run_export(lucy, out))
    assert err["error_type"] == "disk_full", err
    assert "df -h" in err["advice"] and "No space left" in err["message"]
    left = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert not [f for f in left if os.path.getsize(f) == 0 or ".tmp" in f], left
    # with room again, the same export completes
    os.unlink(os.path.join(mnt, "filler"))
    p = run_export(lucy, out)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["message_conversations"] == 3
    assert sorted(os.listdir(os.path.join(out, "messages"))) == sorted(
        "2024-05-0%d-Ann_Example-15550001234.%s" % (d, e) for d in (1, 2, 3) for e in ("json", "md"))


def test_export_to_a_file_says_it_is_a_file(start_lucy, tmp_path):
    lucy = serve_messages(start_lucy, 1)
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    for out in (str(path), str(path / "export")):  # DIR itself, or a folder on its path
        err = json_error(run_export(lucy, out))
        assert err["error_type"] == "bad_request", err
        assert "is a file, not a folder" in err["advice"], err
    assert path.read_text() == "mine"


@needs_root
def test_export_to_a_read_only_disk_says_so(start_lucy, tmpfs):
    lucy = serve_messages(start_lucy, 1)
    mnt = tmpfs("1m")
    subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
    for out in (mnt, os.path.join(mnt, "export")):  # DIR there, or to be made
        err = json_error(run_export(lucy, out))
        assert err["error_type"] == "forbidden", err
        assert "read-only" in err["advice"] and "Read-only file system" in err["message"], err
