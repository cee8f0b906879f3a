"""Forget (DESIGN §15, issue 15): DELETE /recordings/{id}, DELETE
/messages/{wamid}, DELETE /people/{id}, and LUCY_RETENTION_DAYS.

The rule (docs/decisions.md): a DELETE answers 204 when the item is
forgotten and 204 again when it already was (the tombstone knows it); 404
only for an id lucy never had; never 500.

Real parts: the lucy binary over loopback HTTP, FFmpeg and pocketsphinx
(the recordings are scanned and transcribed for real), signed webhooks.
Qdrant is the test double (tests/qdrant/double.py), stopped and restarted
like a crashed server; it checks every request against Qdrant's spec.
"""
import hashlib
import os
import shutil
import time
import urllib.parse

from conftest import FIXTURES
from qdrant_fixture import qdrant_double  # noqa: F401  (pytest fixture)
from test_qdrant import drained, point_id, qdrant_env
from test_webhook import BASE_ENV, db_query, message_body, post, wait_drained

AUDIO = os.path.join(FIXTURES, "audio")
DONE = ("done", "no_speech")


def copy_audio(d, src, name):
    shutil.copyfile(os.path.join(AUDIO, src), os.path.join(d, name))
    return os.path.join(d, name)


def rec_env(d, **extra):
    e = dict(BASE_ENV)
    e.update({"LUCY_RECORDINGS_DIRS": d, "LUCY_SCAN_SETTLE_S": "0",
              "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1", "LUCY_LOG_LEVEL": "info"})
    e.update(extra)
    return e


def recordings(lucy):
    r = lucy.get("/recordings", params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["recordings"]


def wait_transcribed(lucy, n, timeout=120):
    return lucy.wait_for(lambda: (lambda rs: rs if len(rs) >= n and all(
        r["transcript_status"] in DONE for r in rs) else None)(recordings(lucy)),
        timeout=timeout, interval=0.2, what="%d recordings transcribed" % n)


def search_ids(lucy, q):
    r = lucy.get("/search?" + urllib.parse.urlencode({"q": q, "group": 0, "limit": 100}))
    assert r.status_code == 200, r.text
    return {h["id"] for h in r.json()["hits"]}


def qdrant_point(q, pid):
    import requests
    r = requests.post(q.url + "/collections/lucy_data/points", json={"ids": [pid]},
                      headers=q.headers(), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_delete_recording_while_qdrant_is_down(start_lucy, tmp_path, qdrant_double):
    q = qdrant_double()
    q.collection = "lucy_data"
    d = tmp_path / "recordings"
    d.mkdir()
    gone_path = copy_audio(str(d), "goforward.m4a", "goforward.m4a")
    copy_audio(str(d), "cards-003-stereo.m4a", "cards.m4a")
    before = sha256(gone_path)
    lucy = start_lucy(env=rec_env(str(d), **qdrant_env(q)))
    recs = wait_transcribed(lucy, 2)
    drained(lucy, timeout=60)
    rec_id = next(r["id"] for r in recs if r["paths"][0]["path"].endswith("goforward.m4a"))
    keep_id = next(r["id"] for r in recs if r["id"] != rec_id)
    assert rec_id in search_ids(lucy, "forward")
    assert qdrant_point(q, point_id("call_recording", rec_id, 0))

    q.stop()  # Qdrant crashed
    r = lucy.request("DELETE", "/recordings/" + rec_id)
    assert r.status_code == 204, r.text
    # gone from the API and from search at once (the local copy answers)
    assert lucy.get("/recordings/" + rec_id).status_code == 404
    assert lucy.get("/recordings/%s/transcript.txt" % rec_id).status_code == 404
    assert rec_id not in search_ids(lucy, "forward")
    assert [r["id"] for r in recordings(lucy)] == [keep_id]
    assert lucy.wait_for(lambda: [l for l in lucy.log_lines()
                                  if l.get("msg") == "forgot recording " + rec_id],
                         what="the forget logged")
    # deleting twice: 204 again (it is known: forgotten), never 500
    assert lucy.request("DELETE", "/recordings/" + rec_id).status_code == 204
    r = lucy.request("DELETE", "/recordings/" + "0" * 64)
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"

    q.restart()  # the outbox delivers the delete
    drained(lucy, timeout=60)
    assert qdrant_point(q, point_id("call_recording", rec_id, 0)) == []
    assert qdrant_point(q, point_id("call_recording", keep_id, 0))

    # a rescan and a restart do not bring it back; the user's file is untouched
    assert lucy.post("/recordings/scan").status_code == 200
    assert [r["id"] for r in recordings(lucy)] == [keep_id]
    shutil.copyfile(gone_path, str(d / "copy-of-goforward.m4a"))  # same content, new name
    assert lucy.post("/recordings/scan").status_code == 200
    assert [r["id"] for r in recordings(lucy)] == [keep_id]
    assert lucy.stop() == 0
    lucy2 = start_lucy(env=rec_env(str(d), **qdrant_env(q)), data_dir=lucy.data_dir)
    scan = lucy2.post("/recordings/scan")
    assert scan.status_code == 200
    # every path is known: the forgotten files are not read again each scan
    assert scan.json()["bytes_hashed"] == 0, scan.json()
    assert [r["id"] for r in recordings(lucy2)] == [keep_id]
    assert lucy2.get("/recordings/" + rec_id).status_code == 404
    assert sha256(gone_path) == before
    rows = db_query(lucy2.data_dir, "SELECT (SELECT count(*) FROM jobs WHERE recording_id = ?1),"
                    " (SELECT count(*) FROM segments WHERE recording_id = ?1),"
                    " (SELECT count(*) FROM transcripts WHERE recording_id = ?1),"
                    " (SELECT count(*) FROM recording_calls WHERE recording_id = ?1),"
                    " (SELECT count(*) FROM documents WHERE id = ?1 AND deleted = 0)", (rec_id,))
    assert rows == [(0, 0, 0, 0, 0)]


def test_deleted_message_stays_gone_after_a_signed_retry(start_lucy):
    lucy = start_lucy(env=BASE_ENV)
    body = message_body("wamid.FORGET1", text="zqxforgetme please")
    other = message_body("wamid.KEEP1", text="zqxforgetme not this one", ts=1764460100)
    assert post(lucy, body).status_code == 200
    assert post(lucy, other).status_code == 200
    wait_drained(lucy)
    lucy.wait_for(lambda: search_ids(lucy, "zqxforgetme") == {"wamid.FORGET1", "wamid.KEEP1"},
                  what="both messages searchable")

    r = lucy.request("DELETE", "/messages/wamid.FORGET1")
    assert r.status_code == 204, r.text
    assert search_ids(lucy, "zqxforgetme") == {"wamid.KEEP1"}
    # Meta retries the acknowledged delivery, signed, byte for byte
    r = post(lucy, body)
    assert r.status_code == 200 and r.json()["duplicates"] == 1, r.text
    wait_drained(lucy)
    assert search_ids(lucy, "zqxforgetme") == {"wamid.KEEP1"}
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_messages WHERE wamid = 'wamid.FORGET1'"
                    ) == [(0,)]
    # no bytes of it kept either: its raw body went with it
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_inbox_bodies") == [(1,)]
    # and it stays gone across a restart
    assert lucy.stop() == 0
    lucy = start_lucy(env=BASE_ENV, data_dir=lucy.data_dir)
    assert post(lucy, body).status_code == 200
    wait_drained(lucy)
    assert search_ids(lucy, "zqxforgetme") == {"wamid.KEEP1"}
    assert lucy.request("DELETE", "/messages/wamid.FORGET1").status_code == 204
    r = lucy.request("DELETE", "/messages/wamid.NEVER")
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"


def test_delete_person_takes_their_calls_and_messages(start_lucy, tmp_path):
    d = tmp_path / "recordings"
    d.mkdir()
    copy_audio(str(d), "goforward.m4a", "+14155550123_20240301-101500_incoming.m4a")
    copy_audio(str(d), "cards-003-stereo.m4a", "+14155559999_20240302-101500_incoming.m4a")
    lucy = start_lucy(env=rec_env(str(d)))
    wait_transcribed(lucy, 2)
    for wamid, sender, text in [("wamid.P1", "14155550123", "zqxperson one"),
                                ("wamid.P2", "14155550123", "zqxperson two"),
                                ("wamid.O1", "14155559999", "zqxperson other")]:
        assert post(lucy, message_body(wamid, sender=sender, text=text)).status_code == 200
    wait_drained(lucy)
    people = lucy.get("/people", params={"q": "+14155550123"}).json()["people"]
    assert len(people) == 1, people
    pid = people[0]["id"]
    lucy.wait_for(lambda: lucy.get("/people/%d" % pid).json()["calls"] == 1, what="call linked")
    call_id = lucy.get("/people/%d/timeline" % pid).json()["items"]
    call_id = [i["recording_id"] for i in call_id if i["kind"] == "call"][0]

    r = lucy.request("DELETE", "/people/%d" % pid)
    assert r.status_code == 204, r.text
    assert lucy.get("/people/%d" % pid).status_code == 404
    assert lucy.get("/recordings/" + call_id).status_code == 404
    assert search_ids(lucy, "zqxperson") == {"wamid.O1"}
    assert len(recordings(lucy)) == 1  # the other person's call stays
    assert lucy.request("DELETE", "/people/%d" % pid).status_code == 204
    assert lucy.request("DELETE", "/people/999999").status_code == 404
    assert lucy.request("DELETE", "/people/abc").status_code == 404
    # a rescan does not bring the call back, nor the person with it
    assert lucy.post("/recordings/scan").status_code == 200
    assert len(recordings(lucy)) == 1
    assert lucy.get("/people", params={"q": "+14155550123"}).json()["people"] == []


def test_retention_forgets_exactly_the_older_items(start_lucy, tmp_path):
    now = int(time.time())
    old_day = time.strftime("%Y%m%d", time.gmtime(now - 40 * 86400))
    new_day = time.strftime("%Y%m%d", time.gmtime(now - 2 * 86400))
    d = tmp_path / "recordings"
    d.mkdir()
    copy_audio(str(d), "goforward.m4a", "+14155550123_%s-101500_incoming.m4a" % old_day)
    copy_audio(str(d), "cards-003-stereo.m4a", "+14155550123_%s-101500_incoming.m4a" % new_day)
    lucy = start_lucy(env=rec_env(str(d)))
    recs = wait_transcribed(lucy, 2)
    old_rec = next(r["id"] for r in recs if old_day in r["paths"][0]["path"])
    new_rec = next(r["id"] for r in recs if new_day in r["paths"][0]["path"])
    msgs = [("wamid.OLD1", now - 31 * 86400), ("wamid.OLD2", now - 400 * 86400),
            ("wamid.NEW1", now - 29 * 86400), ("wamid.NEW2", now - 60)]
    for wamid, ts in msgs:
        assert post(lucy, message_body(wamid, text="zqxretain " + wamid, ts=ts)).status_code == 200
    wait_drained(lucy)
    assert lucy.stop() == 0

    lucy = start_lucy(env=rec_env(str(d), LUCY_RETENTION_DAYS="30"), data_dir=lucy.data_dir)
    done = lucy.wait_for(lambda: [l for l in lucy.log_lines() if l.get("msg") == "retention pass done"],
                         timeout=60, what="a retention pass")
    assert done[0]["forgotten"] == 3, done
    forgot = {l.get("id") for l in lucy.log_lines() if str(l.get("msg", "")).startswith("forgot ")}
    assert forgot == {old_rec, "wamid.OLD1", "wamid.OLD2"}
    assert [r["id"] for r in recordings(lucy)] == [new_rec]
    assert search_ids(lucy, "zqxretain") == {"wamid.NEW1", "wamid.NEW2"}
    # the forgotten call's file is scanned again and stays forgotten
    assert lucy.post("/recordings/scan").status_code == 200
    assert [r["id"] for r in recordings(lucy)] == [new_rec]
