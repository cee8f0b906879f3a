"""What a call recording says about itself (DESIGN §12, docs/calls.md): the
real scanner reads each recorder's convention - a BCR sidecar, BCR's file
names, Samsung's, a number-first name, an iOS container tag - and
GET /recordings shows the call with each field's source; sidecars that
arrive late, sync-cache copies, backups and bad input.

Every file is real audio from tests/fixtures/audio/, remuxed by ffmpeg
under a recorder's name with a unique comment tag so that each is its own
recording (a recording is its content). Sidecars are written with json.
"""
import json
import os
import subprocess
import time

import pytest

from conftest import FIXTURES

AUDIO = os.path.join(FIXTURES, "audio")


def make_audio(path, src="goforward.m4a", meta=None, movflags=False):
    """A copy of a fixture at path (real audio, unique content)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    args = ["ffmpeg", "-loglevel", "error", "-y", "-i", os.path.join(AUDIO, src), "-c", "copy",
            "-map_metadata", "-1", "-metadata", "comment=" + os.path.basename(path)]
    for k, v in (meta or {}).items():
        args += ["-metadata", "%s=%s" % (k, v)]
    if movflags:
        args += ["-movflags", "use_metadata_tags"]
    fmt = ["-f", "ogg"] if src.endswith(".ogg") else ["-f", "mp4"]
    subprocess.run(args + fmt + [path], check=True)
    return path


def sidecar(audio_path, doc):
    """Writes the BCR sidecar NAME.json beside NAME.<ext>."""
    path = os.path.splitext(audio_path)[0] + ".json"
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def bcr_doc(**over):
    doc = {
        "timestamp_unix_ms": 1681523821088,
        "timestamp": "2023-04-14T21:57:01.088-04:00",
        "direction": "in",
        "sim_slot": 2,
        "call_log_name": None,
        "calls": [{"phone_number": "+14155550123", "phone_number_formatted": "+1 415-555-0123",
                   "caller_name": None, "contact_name": "John Doe"}],
        "output": {"format": {"type": "OGG_OPUS"}, "recording": {"channel_count": 1}},
    }
    doc.update(over)
    return doc


def start(start_lucy, rec_dir, env=None):
    e = {"LUCY_RECORDINGS_DIRS": rec_dir, "LUCY_SCAN_SETTLE_S": "0",
         "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1"}
    e.update(env or {})
    return start_lucy(env=e)


def scan(lucy):
    r = lucy.post("/recordings/scan")
    assert r.status_code == 200, r.text
    return r.json()


def calls(lucy, **params):
    """{primary file name: recording} of every recording listed."""
    params.setdefault("limit", 500)
    r = lucy.get("/recordings", params=params)
    assert r.status_code == 200, r.text
    return {os.path.basename(rec["paths"][0]["path"]): rec for rec in r.json()["recordings"]}


BCR_NAME = "20230414_215701.088-0400_out_sim1_+14155550199_Someone Else.m4a"


def test_each_recorder_convention(start_lucy, tmp_path):
    d = str(tmp_path / "rec")
    # BCR with a sidecar: the sidecar wins over the name for every field.
    sidecar(make_audio(os.path.join(d, BCR_NAME)), bcr_doc())
    # BCR without a sidecar: everything from the name.
    make_audio(os.path.join(d, "20230415_101500.000+0200_in_sim1_+14155550124_Jane Roe.oga"),
               src="cards-001.ogg")
    # Samsung: a name and a local wall-clock time, no zone, no direction.
    make_audio(os.path.join(d, "Call recording John Smith_240115_093012.m4a"))
    # Number first, then date and direction.
    make_audio(os.path.join(d, "+14155550123_20240301-101500_incoming.m4a"))
    # A national number: unlinked without LUCY_DEFAULT_REGION.
    make_audio(os.path.join(d, "02079460018_20240302-111500_outgoing.m4a"))
    # A name and no number.
    make_audio(os.path.join(d, "20230416_120000.000+0100_in_Mum.m4a"))
    # iOS: only the container's creation date.
    make_audio(os.path.join(d, "voice memo.m4a"),
               meta={"com.apple.quicktime.creationdate": "2024-02-03T04:05:06+0100"},
               movflags=True)

    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: len(calls(lucy)) == 7, what="7 recordings")
    recs = calls(lucy)

    c = recs[BCR_NAME]["call"]
    assert c["started_at"] == "2023-04-14T21:57:01.088-04:00" and c["offset_known"] is True
    assert c["direction"] == "in" and c["sim_slot"] == 2
    assert c["number"] == {"e164": "+14155550123", "raw": "+14155550123"}
    assert {"name": "John Doe", "kind": "contact_name", "source": "sidecar"} in c["names"]
    assert c["sources"]["started_at"] == "sidecar" and c["sources"]["direction"] == "sidecar"
    assert c["sources"]["number"] == "sidecar" and c["sources"]["sim_slot"] == "sidecar"
    assert c["person"]["name"] == "John Doe" and c["warnings"] == []  # linked by the number
    assert recs[BCR_NAME]["title"] == c["title"] == "Call with John Doe · in · 14 Apr 2023 21:57"
    # The sidecar is part of its recording, not a file of its own.
    summary = scan(lucy)
    assert summary["files_seen"] == 7 and summary["unsupported"] == 0
    assert summary["orphan_sidecars"] == 0

    c = recs["20230415_101500.000+0200_in_sim1_+14155550124_Jane Roe.oga"]["call"]
    assert c["started_at"] == "2023-04-15T10:15:00+02:00" and c["direction"] == "in"
    assert c["number"]["e164"] == "+14155550124" and c["sim_slot"] == 1
    assert c["sources"] == {"started_at": "file_name", "direction": "file_name",
                            "number": "file_name", "sim_slot": "file_name",
                            "file_name": "file_name"}
    assert {"name": "Jane Roe", "kind": "file_name", "source": "file_name"} in c["names"]

    c = recs["Call recording John Smith_240115_093012.m4a"]["call"]
    assert c["started_at"] == "2024-01-15T09:30:12" and c["local_time"] is True
    assert c["offset_known"] is False and c["direction"] is None and c["number"] is None
    assert c["names"] == [{"name": "John Smith", "kind": "file_name", "source": "file_name"}]
    assert c["title"] == "Call with John Smith · 15 Jan 2024 09:30"

    c = recs["+14155550123_20240301-101500_incoming.m4a"]["call"]
    assert c["direction"] == "in" and c["number"]["e164"] == "+14155550123"
    assert c["started_at"] == "2024-03-01T10:15:00" and c["sources"]["started_at"] == "file_name"

    c = recs["02079460018_20240302-111500_outgoing.m4a"]["call"]
    assert c["number"] == {"e164": None, "raw": "02079460018"} and c["direction"] == "out"
    assert any("LUCY_DEFAULT_REGION" in w for w in c["warnings"]), c["warnings"]

    c = recs["20230416_120000.000+0100_in_Mum.m4a"]["call"]
    assert c["number"] is None and c["direction"] == "in"
    assert c["names"] == [{"name": "Mum", "kind": "file_name", "source": "file_name"}]
    assert recs["20230416_120000.000+0100_in_Mum.m4a"]["title"].startswith("Call with Mum · in")

    c = recs["voice memo.m4a"]["call"]
    assert c["started_at"] == "2024-02-03T04:05:06+01:00" and c["sources"]["started_at"] == "tags"

    # Sorted by the call's date, newest first; ascending; from/to on it.
    order = [os.path.basename(r["paths"][0]["path"])
             for r in lucy.get("/recordings").json()["recordings"]]
    assert order[0] == "+14155550123_20240301-101500_incoming.m4a" or \
        order[0] == "02079460018_20240302-111500_outgoing.m4a"
    assert order[0] == "02079460018_20240302-111500_outgoing.m4a"
    assert order[-1] == BCR_NAME
    up = [os.path.basename(r["paths"][0]["path"])
          for r in lucy.get("/recordings", params={"sort": "started_at"}).json()["recordings"]]
    assert up == list(reversed(order))
    # Keyset pages in that order.
    seen, cursor = [], None
    while True:
        p = lucy.get("/recordings", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        page = p.json()
        seen += [os.path.basename(r["paths"][0]["path"]) for r in page["recordings"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == order
    in_2024 = calls(lucy, **{"from": "2024-01-01", "to": "2024-02-28"})
    assert set(in_2024) == {"Call recording John Smith_240115_093012.m4a", "voice memo.m4a"}
    for bad in ({"sort": "size"}, {"from": "yesterday"}, {"from": "2024-02-01", "to": "2024-01-01"}):
        r = lucy.get("/recordings", params=bad)
        assert r.status_code == 400 and r.json()["error_type"] == "bad_request", r.text


def test_default_region_links_national_numbers(start_lucy, tmp_path):
    d = str(tmp_path / "rec")
    make_audio(os.path.join(d, "02079460018_20240302-111500_outgoing.m4a"))
    lucy = start(start_lucy, d, env={"LUCY_DEFAULT_REGION": "GB"})
    lucy.wait_for(lambda: len(calls(lucy)) == 1, what="1 recording")
    c = calls(lucy)["02079460018_20240302-111500_outgoing.m4a"]["call"]
    assert c["number"] == {"e164": "+442079460018", "raw": "02079460018"}
    assert c["warnings"] == [] and c["title"].startswith("Call with +44 20 7946 0018 · out")


def test_sidecar_after_its_audio_updates_the_call(start_lucy, tmp_path):
    d = str(tmp_path / "rec")
    audio = make_audio(os.path.join(d, BCR_NAME))
    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: len(calls(lucy)) == 1, what="1 recording")
    c = calls(lucy)[BCR_NAME]["call"]
    assert c["direction"] == "out" and c["sources"]["direction"] == "file_name"
    # Transcribed and indexed at the name's date first.
    def hit_time():
        hits = lucy.get("/search", params={"q": "forward"}).json()["hits"]
        return hits and hits[0]["time"]
    assert lucy.wait_for(hit_time, timeout=60, what="indexed") == 1681523821  # 21:57:01-04:00

    sidecar(audio, bcr_doc(timestamp_unix_ms=1681523000000, timestamp=None))
    summary = scan(lucy)
    assert summary["files_seen"] == 1 and summary["unchanged"] == 1
    c = calls(lucy)[BCR_NAME]["call"]
    assert c["direction"] == "in" and c["sources"]["direction"] == "sidecar"
    assert c["number"]["e164"] == "+14155550123" and c["title"].startswith("Call with John Doe")
    assert c["started_at_ms"] == 1681523000000 and c["sources"]["started_at"] == "sidecar"
    # The segments' documents follow the call's new date.
    lucy.wait_for(lambda: hit_time() == 1681523000, timeout=20, what="re-dated")

    # Changed again, then gone: the call follows.
    time.sleep(0.01)
    sidecar(audio, bcr_doc(direction="conference"))
    scan(lucy)
    assert calls(lucy)[BCR_NAME]["call"]["direction"] == "conference"
    os.unlink(os.path.splitext(audio)[0] + ".json")
    scan(lucy)
    c = calls(lucy)[BCR_NAME]["call"]
    assert c["direction"] == "out" and c["sources"]["direction"] == "file_name"


def test_sync_caches_and_backups_are_never_primary(start_lucy, tmp_path):
    d = str(tmp_path / "rec")
    real = os.path.join(d, "calls", "20230414_215701.088-0400_in_Alice.m4a")
    make_audio(real)
    cache = os.path.join(d, ".dropbox.cache", "old", "20990101_000000.000+0000_out_Zed.m4a")
    os.makedirs(os.path.dirname(cache))
    with open(real, "rb") as a, open(cache, "wb") as b:
        b.write(a.read())
    backup = os.path.join(d, "Backup", "20230414_215701.088-0400_in_Bob.m4a")
    os.makedirs(os.path.dirname(backup))
    os.rename(real, backup)  # the backup copy is seen first

    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: len(calls(lucy)) == 1, what="1 recording")
    rec = list(calls(lucy).values())[0]
    assert [p["path"] for p in rec["paths"]] == [backup]  # the cache folder is not walked
    assert rec["title"].startswith("Call with Bob")  # only copy so far

    with open(backup, "rb") as a, open(real, "wb") as b:
        b.write(a.read())
    summary = scan(lucy)
    assert summary["ignored"] == 1 and summary["files_seen"] == 2  # .dropbox.cache: one folder
    rec = list(calls(lucy).values())[0]
    assert rec["paths"][0] == {"path": real, "presence": "present", "primary": True}
    assert rec["paths"][1]["path"] == backup and rec["paths"][1]["primary"] is False
    assert rec["title"].startswith("Call with Alice · in")
    assert all(".dropbox.cache" not in p["path"] for p in rec["paths"])


def test_bad_input_is_a_warning_on_the_recording(start_lucy, tmp_path):
    """Each bad input keeps its recording (with the call's warnings) and is
    one clear ingest-ledger row (DESIGN §16) naming what was dropped."""
    d = str(tmp_path / "rec")
    names = {
        "unparseable": "20230414_215701.088-0400_in_Ann.m4a",
        "old": "19700101_000000.000+0000_in_+14155550125.m4a",
        "future": "21000101_000000.000+0000_out_Bea.m4a",
        "invalid number": "+10000000000_20240301-101500_incoming.m4a",
        "huge sidecar": "20230414_215702.000-0400_in_Cid.m4a",
        "controls": "20230414_215703.000-0400_in_Dee.m4a",
        "control file name": "20230414_215704.000-0400_in_E\x01va\x1b[2J.m4a",
    }
    paths = {k: make_audio(os.path.join(d, n)) for k, n in names.items()}
    with open(os.path.splitext(paths["unparseable"])[0] + ".json", "w") as f:
        f.write('{"timestamp": "2023-04-14T21:57:01')
    with open(os.path.splitext(paths["huge sidecar"])[0] + ".json", "w") as f:
        f.write('{"pad": "' + "x" * (10 << 20) + '"}')
    sidecar(paths["controls"], bcr_doc(calls=[{"phone_number": "+14155550123",
                                              "contact_name": "Jo\u0001hn\u0007 Doe"}]))
    sidecar(os.path.join(d, "deleted call.m4a"), bcr_doc())  # its audio is gone

    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: len(calls(lucy)) == 7, what="7 recordings")
    recs = calls(lucy)

    def warnings(key):
        return " | ".join(recs[names[key]]["call"]["warnings"])
    assert "sidecar: not a JSON object" in warnings("unparseable")
    assert recs[names["unparseable"]]["call"]["sources"]["started_at"] == "file_name"
    assert "before 1990" in warnings("old")
    assert recs[names["old"]]["call"]["sources"]["started_at"] == "mtime"
    assert recs[names["old"]]["call"]["offset_known"] is False
    assert recs[names["old"]]["call"]["started_at"].endswith("Z")
    assert "in the future" in warnings("future")
    assert "unlinked" in warnings("invalid number")
    assert recs[names["invalid number"]]["call"]["number"]["e164"] is None
    assert "over the 1048576-byte limit" in warnings("huge sidecar")
    assert "control characters removed" in warnings("controls")
    assert {"name": "Jo hn Doe", "kind": "contact_name", "source": "sidecar"} in \
        recs[names["controls"]]["call"]["names"]
    assert "control characters removed" in warnings("control file name")
    assert "\x01" not in recs[names["control file name"]]["title"]
    assert "\x1b" not in recs[names["control file name"]]["title"]
    for rec in recs.values():
        assert rec["scan_status"] == "ok"

    # The ledger: one call_metadata row per recording, naming its warnings,
    # pointing at the recording; the orphan sidecar has its own row.
    r = lucy.get("/ledger", params={"limit": 500})
    assert r.status_code == 200, r.text
    ledger = {os.path.basename(row["path"]): row for row in r.json()["items"]}
    expected_words = {"unparseable": "not a JSON object", "old": "before 1990",
                      "future": "in the future", "invalid number": "unlinked",
                      "huge sidecar": "over the 1048576-byte limit",
                      "controls": "control characters removed",
                      "control file name": "control characters removed"}
    for key, words in expected_words.items():
        row = ledger[names[key]]
        assert row["outcome"] == "call_metadata", (key, row)
        assert words in row["reason"] and row["recording_id"] == recs[names[key]]["id"], (key, row)
        assert "sidecar or the file name" in row["advice"]
    assert ledger["deleted call.json"]["outcome"] == "orphan_sidecar"
    assert "delete it" in ledger["deleted call.json"]["advice"]
    assert len(ledger) == len(names) + 1, sorted(ledger)

    summary = scan(lucy)
    assert summary["orphan_sidecars"] == 1 and summary["files_seen"] == 7
    assert summary["unsupported"] == 0
    assert any(l.get("msg") == "call sidecar without its recording" for l in lucy.log_lines())


def test_list_shows_first_words_and_filters_by_person_and_date(start_lucy, tmp_path):
    """GET /recordings: each row's `preview` is the start of its transcript
    (read with the page, null before one exists); ?person= keeps the calls
    of that person's numbers; ?from=/?to= the calls of those dates."""
    d = str(tmp_path / "rec")
    john = make_audio(os.path.join(d, "20230414_215701.088-0400_in_+14155550123_John.m4a"))
    make_audio(os.path.join(d, "20240301_101500.000+0100_out_+442071838750_Ada.m4a"),
               src="cards-001.ogg")
    lucy = start(start_lucy, d)
    lucy.wait_for(lambda: all(r["transcript_status"] in ("done", "no_speech")
                              for r in calls(lucy).values()) and len(calls(lucy)) == 2,
                  timeout=300, what="both transcribed")
    recs = calls(lucy)
    for name, rec in recs.items():
        full = lucy.get("/recordings/" + rec["id"]).json()
        words = " ".join(s["text"] for s in full["transcript"]["segments"][:3]).strip()
        if not words:
            assert rec["preview"] is None
            continue
        preview = rec["preview"].rstrip("\u2026")
        assert words.startswith(preview) and len(rec["preview"].encode()) <= 163, (name, rec)
        assert len(preview) >= min(len(words), 80)
    john_rec = recs[os.path.basename(john)]
    assert john_rec["preview"], "goforward.m4a has speech"
    person = john_rec["call"]["person"]
    assert person and person["id"] > 0
    only = lucy.get("/recordings", params={"person": person["id"]}).json()["recordings"]
    assert [r["id"] for r in only] == [john_rec["id"]]
    assert lucy.get("/recordings", params={"person": 999999}).json()["recordings"] == []
    in_2024 = lucy.get("/recordings", params={"from": "2024-01-01", "to": "2024-12-31"}).json()
    assert [os.path.basename(r["paths"][0]["path"])[:8] for r in in_2024["recordings"]] == \
        ["20240301"]
    for bad in ("0", "x", "-3"):
        r = lucy.get("/recordings", params={"person": bad})
        assert r.status_code == 400 and "person id" in r.json()["message"], r.text
