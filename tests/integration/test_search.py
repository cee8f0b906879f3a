"""Search index end to end: documents enter through the producer API
(lucy_outbox_put, via the test tool tests/tools/outbox_put, exactly as a
producer plugin calls it), the real daemon's indexer drains the outbox into
SQLite FTS5, and GET /search, GET /rag/stats, /health, /metrics and the
`lucy search|stats|reindex` commands are checked over loopback HTTP and
the real binary.

The words searched for are made up (zqx...), so the tests stay valid when
real producers add their own documents to the same store.
"""
import json
import os
import subprocess

import pytest

from conftest import BUILD_DIR, LUCY_BIN, SAN_ENV
from qdrant_fixture import qdrant_double  # noqa: F401 (fixture)

OUTBOX_PUT = os.path.join(BUILD_DIR, "tests", "tools", "outbox_put")

T_REC = 1717171200      # 2024-05-31T16:00:00Z
T_MSG = 1717200000      # 2024-06-01T00:00:00Z
T_OLD = 1672531200      # 2023-01-01T00:00:00Z

DOCS = [
    {"source": "call_recording", "id": "rec-zqx1", "segment": 0, "title": "call-zqx.m4a",
     "text": "hello there, how are you", "time": T_REC, "t0_ms": 0, "t1_ms": 4200},
    {"source": "call_recording", "id": "rec-zqx1", "segment": 1, "title": "call-zqx.m4a",
     "text": "we go zqxforward zqxforward with the zqxbudget & <b>plan</b>", "time": T_REC,
     "t0_ms": 4200, "t1_ms": 9800},
    {"source": "whatsapp", "id": "wamid.zqx1", "contact": "4915550001", "title": "Anna",
     "text": "Zqxforward me the zqxinvoice please", "time": T_MSG},
    {"source": "whatsapp", "id": "wamid.zqx2", "contact": "4915550002", "title": "Bob",
     "text": "old zqxinvoice from the Café zqxmüller", "time": T_OLD},
]


def env_for(data_dir, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_"))}
    env.update(SAN_ENV)
    env["LUCY_DATA_DIR"] = data_dir
    env["LUCY_LOG_LEVEL"] = "warning"
    env.update(extra or {})
    return env


def feed(data_dir, docs):
    """Applies docs (dicts; {"op":"delete",...} removes) in one store write."""
    os.makedirs(data_dir, exist_ok=True)
    lines = "".join(json.dumps(d) + "\n" for d in docs)
    r = subprocess.run([OUTBOX_PUT, data_dir], input=lines.encode(), env=env_for(data_dir),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def lucy_cmd(data_dir, *args):
    return subprocess.run([LUCY_BIN] + list(args), env=env_for(data_dir), capture_output=True,
                          timeout=60)


def stats(lucy, **kw):
    r = lucy.get("/rag/stats", **kw)
    assert r.status_code == 200, r.text
    return r.json()


def drained(lucy):
    return lucy.wait_for(lambda: stats(lucy)["pending_count"] == 0 or None, timeout=30,
                         what="outbox drained")


def search(lucy, **params):
    r = lucy.get("/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(result):
    return [(h["id"], h["segment"]) for h in result["hits"]]


@pytest.fixture
def indexed(start_lucy):
    lucy = start_lucy()
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    return lucy


def test_new_documents_become_searchable_with_marked_snippets(indexed):
    res = indexed.wait_for(lambda: search(indexed, q="zqxforward")["hits"] or None,
                           what="document searchable")
    body = search(indexed, q="zqxforward")
    assert body["query"] == "zqxforward"
    assert body["backend"] == "sqlite"
    assert body["degraded"] is False and body["degraded_reason"] == ""
    assert len(res) == 2
    # two mentions in the recording segment beat one in the message
    top = body["hits"][0]
    assert (top["source"], top["id"], top["segment"]) == ("call_recording", "rec-zqx1", 1)
    assert (top["t0_ms"], top["t1_ms"]) == (4200, 9800)
    assert top["time"] == T_REC
    assert top["title"] == "call-zqx.m4a"
    assert "<mark>zqxforward</mark>" in top["snippet"]
    # document text is escaped; only lucy's marks are markup
    assert "&amp; &lt;b&gt;plan&lt;/b&gt;" in top["snippet"]
    assert body["hits"][0]["score"] > body["hits"][1]["score"]
    msg = body["hits"][1]
    assert msg["source"] == "whatsapp" and msg["contact"] == "4915550001"
    assert "<mark>Zqxforward</mark>" in msg["snippet"]
    assert "t0_ms" not in msg


def test_filters(indexed):
    assert ids(search(indexed, q="zqxforward", source="whatsapp")) == [("wamid.zqx1", 0)]
    assert ids(search(indexed, q="zqxforward", source="call_recording")) == [("rec-zqx1", 1)]
    assert ids(search(indexed, q="zqxinvoice", contact="4915550002")) == [("wamid.zqx2", 0)]
    # time bounds: Unix seconds and ISO 8601, inclusive
    assert ids(search(indexed, q="zqxinvoice", **{"from": str(T_MSG)})) == [("wamid.zqx1", 0)]
    assert ids(search(indexed, q="zqxinvoice", to="2023-12-31")) == [("wamid.zqx2", 0)]
    assert ids(search(indexed, q="zqxforward", **{"from": "2024-06-01T00:00:00Z"})) == \
        [("wamid.zqx1", 0)]
    assert ids(search(indexed, q="zqxforward", to="2024-05-31")) == [("rec-zqx1", 1)]
    assert ids(search(indexed, q="zqxforward", **{"from": "2024-05-31T18:00:00+02:00",
                                                   "to": "2024-05-31T16:00:00Z"})) == \
        [("rec-zqx1", 1)]
    # accents and case do not matter
    assert ids(search(indexed, q="CAFE ZQXMULLER")) == [("wamid.zqx2", 0)]
    # every word must match
    assert ids(search(indexed, q="zqxforward zqxinvoice")) == [("wamid.zqx1", 0)]


def test_limit(indexed):
    assert len(search(indexed, q="zqxinvoice")["hits"]) == 2
    assert len(search(indexed, q="zqxinvoice", limit="1")["hits"]) == 1
    assert len(search(indexed, q="zqxinvoice", limit="100")["hits"]) == 2


@pytest.mark.parametrize("params,word", [
    ({}, "q"),
    ({"q": ""}, "q"),
    ({"q": "   "}, "q"),
    ({"q": "x", "limit": "0"}, "limit"),
    ({"q": "x", "limit": "101"}, "limit"),
    ({"q": "x", "limit": "ten"}, "limit"),
    ({"q": "x", "source": "email"}, "source"),
    ({"q": "x", "from": "yesterday"}, "from"),
    ({"q": "x", "to": "2024-02-30"}, "to"),
    ({"q": "x", "from": "2024-06-02", "to": "2024-06-01"}, "from"),
    ({"q": "x" * 1001}, "q"),
])
def test_bad_requests_say_what_to_send(start_lucy, params, word):
    lucy = start_lucy()
    r = lucy.get("/search", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["error_type"] == "bad_request"
    assert word in body["message"]


@pytest.mark.parametrize("q", ['"', "AND", "zqxforward OR", "NEAR(", "(", "*", "a:b", "-zqx",
                               "^", "{x}", "''", "zqxforward\"", "\\", "%00"])
def test_query_syntax_is_never_an_error(indexed, q):
    r = indexed.get("/search", params={"q": q})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["hits"], list)


USER_KEYS = ["recordings", "audio_hours", "transcript_segments", "messages", "people"]
STORAGE_KEYS = ["collection", "points_count", "indexed_count", "segments_count", "disk_bytes",
                "payload_indexes"]


def test_rag_stats(indexed):
    s = stats(indexed)
    assert s["backend"] == "sqlite"
    # what the user has comes first; documents fed straight to the outbox
    # are no recordings or messages
    assert list(s)[:8] == ["backend", "status", "status_reason"] + USER_KEYS
    assert [s[k] for k in USER_KEYS] == [0, 0, 0, 0, 0]
    st = s["storage"]  # the index's internals
    assert st["collection"]
    for key in ("points_count", "indexed_count", "segments_count", "disk_bytes"):
        assert isinstance(st[key], int), key
    assert st["points_count"] >= len(DOCS)
    assert st["indexed_count"] >= len(DOCS)
    assert st["segments_count"] >= 1
    db = os.path.join(indexed.data_dir, "lucy.db")
    assert st["disk_bytes"] >= os.path.getsize(db) > 0
    assert s["pending_count"] == 0
    assert s["status"] == "green", s
    assert st["payload_indexes"]["pending"] == []
    assert st["payload_indexes"]["ensured"]
    assert s["sources"]["call_recording"] >= 2
    assert s["sources"]["whatsapp"] >= 2
    # deprecated, kept for one release: the storage fields at the top level too
    assert {k: s[k] for k in STORAGE_KEYS} == {k: st[k] for k in STORAGE_KEYS}


def test_stats_count_what_the_user_has(start_lucy, tmp_path):
    """recordings, audio_hours, transcript_segments, messages and people
    count the user's data (not the index's storage segments), on
    /rag/stats and in `lucy stats` alike."""
    from test_recordings import recordings, recordings_dir, start, wait_transcribed
    from test_webhook import BASE_ENV, message_body, post
    d = recordings_dir(tmp_path, ["goforward.m4a", "cards-001.ogg"])
    lucy = start(start_lucy, d, env=BASE_ENV)
    for i, sender in enumerate(["15550001001", "15550001002", "15550001002"]):
        r = post(lucy, message_body("wamid.stats%d" % i, sender=sender, text="zqxstats %d" % i))
        assert r.status_code == 200, r.text
    wait_transcribed(lucy, 2)
    recs = [lucy.get("/recordings/" + r["id"]).json() for r in recordings(lucy)]
    segments = sum(len((r.get("transcript") or {}).get("segments") or []) for r in recs)
    assert segments > 0
    hours = round(sum(r["duration_s"] for r in recs) / 3600.0, 2)
    want = {"recordings": 2, "audio_hours": hours, "transcript_segments": segments,
            "messages": 3, "people": 2}
    s = lucy.wait_for(lambda: (lambda s: s if s["messages"] == 3 else None)(stats(lucy)),
                      what="messages counted")
    assert {k: s[k] for k in USER_KEYS} == want
    assert isinstance(s["audio_hours"], float)
    # one document per transcript segment once indexed; storage segments are another thing
    drained(lucy)
    assert stats(lucy)["sources"]["call_recording"] == segments

    r = lucy_cmd(lucy.data_dir, "stats", "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert {k: json.loads(r.stdout)[k] for k in USER_KEYS} == want
    r = lucy_cmd(lucy.data_dir, "stats")
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert lines[3:8] == ["%s: %s" % (k, json.dumps(want[k])) for k in USER_KEYS]
    assert "storage.segments_count" in "\n".join(lines)
    assert not [l for l in lines if l.startswith("segments_count:")]  # deprecated: JSON only


def test_delete_and_update(indexed):
    before = stats(indexed)["sources"]["whatsapp"]
    feed(indexed.data_dir, [{"op": "delete", "source": "whatsapp", "id": "wamid.zqx1"}])
    assert ids(search(indexed, q="zqxforward")) == [("rec-zqx1", 1)]
    drained(indexed)
    assert stats(indexed)["sources"]["whatsapp"] == before - 1
    changed = dict(DOCS[3], text="a zqxreceipt now")
    feed(indexed.data_dir, [changed])
    indexed.wait_for(lambda: search(indexed, q="zqxreceipt")["hits"] or None,
                     what="updated text searchable")
    assert search(indexed, q="zqxmüller")["hits"] == []


def test_outbox_survives_restart(start_lucy, tmp_path):
    data = str(tmp_path / "data")
    feed(data, DOCS)  # written while no daemon runs
    lucy = start_lucy(data_dir=data)
    drained(lucy)
    assert len(search(lucy, q="zqxinvoice")["hits"]) == 2


def test_auth_required_when_token_set(start_lucy):
    lucy = start_lucy(env={"LUCY_API_TOKEN": "s3cret-token"})
    for path in ("/search?q=zqx", "/rag/stats"):
        r = lucy.get(path)
        assert r.status_code == 401
        assert r.json()["error_type"] == "unauthorized"
        r = lucy.get(path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = lucy.get(path, headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200, r.text


def test_health_and_metrics(indexed):
    h = indexed.get("/health").json()
    check = h["checks"]["index:outbox"]
    assert check[0]["status"] == "pass"
    assert check[0]["observedUnit"] == "items"
    search(indexed, q="zqxforward")
    m = indexed.get("/metrics").text
    values = {}
    for line in m.splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            values[name] = float(v)
    assert values["lucy_index_outbox_pending"] == 0
    assert values["lucy_index_outbox_failed"] == 0
    assert values["lucy_index_indexed_total"] >= len(DOCS)
    assert values["lucy_search_requests_total"] >= 1


def test_commands(indexed):
    data = indexed.data_dir
    r = lucy_cmd(data, "search", "zqxforward", "--source", "call_recording")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "[zqxforward]" in out and "rec-zqx1" in out and "wamid.zqx1" not in out

    r = lucy_cmd(data, "search", "zqxinvoice", "--limit", "1", "--json")
    assert r.returncode == 0, r.stderr.decode()
    body = json.loads(r.stdout)
    assert body["backend"] == "sqlite" and len(body["hits"]) == 1
    assert "<mark>" in body["hits"][0]["snippet"]

    r = lucy_cmd(data, "search", "nothingzqx")
    assert r.returncode == 0 and b"no matches" in r.stdout

    for bad in (["search"], ["search", "x", "--limit", "0"], ["search", "x", "--source", "fax"],
                ["stats", "extra"]):
        r = lucy_cmd(data, *bad)
        assert r.returncode == 2, bad
        assert r.stderr.startswith(b"lucy: ")

    r = lucy_cmd(data, "stats", "--json")
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout)
    assert s["backend"] == "sqlite" and s["storage"]["points_count"] >= len(DOCS)
    assert s["sources"]["whatsapp"] >= 2
    r = lucy_cmd(data, "stats")
    assert r.returncode == 0 and b"pending_count: 0" in r.stdout
    assert b"\nsources.whatsapp: " in r.stdout and b"\nstorage.points_count: " in r.stdout

    r = lucy_cmd(data, "reindex", "--json")
    assert r.returncode == 0, r.stderr.decode()
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and rep["backend"] == "sqlite"
    assert rep["queued"] >= len(DOCS)
    # the daemon may drain part of the queue itself; together nothing is left
    drained(indexed)
    assert len(search(indexed, q="zqxinvoice")["hits"]) == 2
    r = lucy_cmd(data, "reindex")
    assert r.returncode == 0 and b"reindexed sqlite" in r.stdout

    r = lucy_cmd(os.path.join(data, "missing"), "search", "x")
    assert r.returncode == 1 and b"no data directory" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs (CI runs as root)")
def test_disk_full_keeps_documents_queued_then_drains(start_lucy, tmpfs):
    """The FTS write fails with a full disk: rows stay queued (nothing lost),
    one WARNING (repeats are summarised), and they drain once space is back,
    without a restart."""
    from conftest import fill
    data = tmpfs("24m")
    lucy = start_lucy(data_dir=data, env={"LUCY_DISK_RESERVE_MB": "0"})
    lucy.proc.send_signal(19)  # SIGSTOP: the rows must wait for the full disk
    try:
        words = " ".join("zqxfill%05d" % i for i in range(40000))  # ~480 KB per document
        feed(data, [{"source": "whatsapp", "id": "wamid.big%d" % i, "text": words, "time": T_MSG}
                    for i in range(6)])
        fill(data, leave_bytes=0)
    finally:
        lucy.proc.send_signal(18)  # SIGCONT
    lucy.wait_for(lambda: any(l.get("msg") == "search index backend failed; documents stay queued"
                              for l in lucy.log_lines()) or None, what="backend failure logged")
    assert stats(lucy)["pending_count"] == 6
    assert stats(lucy)["status"] == "yellow"
    os.unlink(os.path.join(data, "filler"))
    drained(lucy)
    assert len(search(lucy, q="zqxfill00042", limit="10")["hits"]) == 6
    warnings = [l for l in lucy.log_lines()
                if l.get("msg") == "search index backend failed; documents stay queued"]
    assert len(warnings) == 1, warnings
    assert any(l.get("msg") == "search index backend recovered" for l in lucy.log_lines())


# ---- grouped hits: one per conversation (DESIGN §12) -------------------------

DAY1 = 1717236000       # 2024-06-01T10:00:00Z
DAY2 = DAY1 + 86400     # the next day


def seg(rec, i, text, title="call.m4a", time=T_REC):
    return {"source": "call_recording", "id": rec, "segment": i, "title": title, "text": text,
            "time": time, "t0_ms": i * 1000, "t1_ms": i * 1000 + 900}


def msg(wamid, contact, text, time):
    return {"source": "whatsapp", "id": wamid, "contact": contact, "title": contact,
            "text": text, "time": time}


def test_a_recording_is_one_group_with_its_best_segments_first(start_lucy):
    lucy = start_lucy()
    # 30 segments of one recording match; segment i says the word (i % 4) + 1 times
    many = [seg("rec-zqg-many", i, " ".join(["zqgword"] * (i % 4 + 1)) + " filler text here")
            for i in range(30)]
    feed(lucy.data_dir, many + [seg("rec-zqg-one", 0, "a single zqgword", time=T_REC + 1)])
    drained(lucy)
    body = search(lucy, q="zqgword")
    assert body["grouped"] is True and body["count"] == 2
    top, other = body["hits"]
    assert (top["source"], top["id"], top["key"]) == \
        ("call_recording", "rec-zqg-many", "call_recording:rec-zqg-many")
    assert [h["segment"] % 4 for h in top["hits"]] == [3, 3, 3]  # four mentions rank first
    scores = [h["score"] for h in top["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert top["more"] == 27 and top["score"] == scores[0]
    # the group's own fields are its best hit's: a client of the flat list reads one hit
    best = top["hits"][0]
    assert (top["segment"], top["t0_ms"], top["t1_ms"]) == \
        (best["segment"], best["t0_ms"], best["t1_ms"])
    # fed as bare documents, no transcript: who spoke is not known (null,
    # not left out; test_search_speakers.py has a transcribed call's)
    assert all(h["speaker"] is None and "<mark>zqgword</mark>" in h["snippet"]
               for h in top["hits"])
    assert (other["id"], other["more"], len(other["hits"])) == ("rec-zqg-one", 0, 1)
    assert top["score"] > other["score"]
    assert len(search(lucy, q="zqgword", per_group="10")["hits"][0]["hits"]) == 10
    # group=0: the documents one by one, as before
    flat = search(lucy, q="zqgword", group="0")
    assert flat["grouped"] is False and flat["count"] == 20 and len(flat["hits"]) == 20
    assert all("hits" not in h for h in flat["hits"])


def test_a_name_in_the_title_does_not_flood_search(start_lucy):
    """Segments carry their recording's title (the file name), which FTS
    matches: without grouping, q=Sarah gave one hit per segment."""
    lucy = start_lucy()
    feed(lucy.data_dir, [seg("rec-zqsarah", i, "words number %d" % i,
                             title="2024-05-31 call with Zqsarah.m4a") for i in range(25)])
    drained(lucy)
    body = search(lucy, q="zqsarah")
    assert body["count"] == 1 and len(body["hits"]) == 1
    assert body["hits"][0]["id"] == "rec-zqsarah" and body["hits"][0]["more"] == 22
    assert len(search(lucy, q="zqsarah", group="0")["hits"]) == 20


def test_messages_group_per_sender_and_day(start_lucy):
    lucy = start_lucy()
    feed(lucy.data_dir, [
        msg("wamid.zqd1", "4915550011", "zqdday one", DAY1),
        msg("wamid.zqd2", "4915550011", "zqdday zqdday two", DAY1 + 3600),
        msg("wamid.zqd3", "4915550011", "zqdday next day", DAY2),
        msg("wamid.zqd4", "4915550022", "zqdday someone else", DAY1),
    ])
    drained(lucy)
    body = search(lucy, q="zqdday")
    keys = sorted(g["key"] for g in body["hits"])
    assert keys == ["whatsapp:contact:4915550011:2024-06-01",
                    "whatsapp:contact:4915550011:2024-06-02",
                    "whatsapp:contact:4915550022:2024-06-01"]
    day1 = [g for g in body["hits"] if g["key"].endswith("4915550011:2024-06-01")][0]
    assert [h["id"] for h in day1["hits"]] == ["wamid.zqd2", "wamid.zqd1"]  # best first
    assert day1["id"] == "wamid.zqd2" and day1["person"] is None and day1["more"] == 0
    assert all("t0_ms" not in h for h in day1["hits"])


def test_limit_counts_groups(start_lucy):
    lucy = start_lucy()
    # one recording says the word in 40 segments, more often than the others:
    # the first window of raw hits (limit x 10) holds only it
    docs = [seg("rec-zql-big", i, "zqlword zqlword zqlword", time=T_REC) for i in range(40)]
    for r in range(4):
        docs += [seg("rec-zql-%d" % r, i, "zqlword and more words", time=T_REC + r)
                 for i in range(5)]
    feed(lucy.data_dir, docs)
    drained(lucy)
    body = search(lucy, q="zqlword", limit="3")
    assert body["count"] == 3 and len(body["hits"]) == 3
    assert [g["id"] for g in body["hits"]] == ["rec-zql-big", "rec-zql-3", "rec-zql-2"]  # ties: newer
    assert [len(g["hits"]) + g["more"] for g in body["hits"]] == [40, 5, 5]
    assert search(lucy, q="zqlword", limit="100")["count"] == 5
    assert len(search(lucy, q="zqlword", limit="3", group="0")["hits"]) == 3


@pytest.mark.parametrize("params,word", [
    ({"group": "2"}, "group"), ({"group": "yes"}, "group"),
    ({"per_group": "0"}, "per_group"), ({"per_group": "51"}, "per_group"),
    ({"person": "abc"}, "person"), ({"person": "0"}, "person"), ({"person": "-3"}, "person"),
    ({"person": "1x"}, "person"),
])
def test_bad_grouping_and_person_values(start_lucy, params, word):
    lucy = start_lucy()
    r = lucy.get("/search", params=dict(params, q="x"))
    assert r.status_code == 400, r.text
    assert r.json()["error_type"] == "bad_request" and word in r.json()["message"]


@pytest.mark.parametrize("backend", ["sqlite", "qdrant"])
def test_person_filter_on_messages_and_recordings(start_lucy, qdrant_double, backend):
    """On both backends: grouping happens in index.c after retrieval, the
    person filter becomes lists each backend matches (json_each, match.any)."""
    from test_people import ALEX, add_call, person_of, post_fixture
    env = {}
    if backend == "qdrant":
        env = {"QDRANT_URL": qdrant_double().url, "QDRANT_COLLECTION": "lucy_data"}
    lucy = start_lucy(env=env)
    post_fixture(lucy, "text.json")  # "Can you call me back about the invoice for March?"
    p = person_of(lucy, ALEX, messages=1)
    feed(lucy.data_dir, [
        msg("wamid.zqp1", ALEX, "zqpword from alex", DAY1),
        msg("wamid.zqp2", "4915550099", "zqpword from someone else", DAY1),
        seg("rec-zqp-other", 0, "zqpword in another call"),
        seg("rec-zqp-nonumber", 0, "zqpword in a call without number"),
    ] + [seg("rec-zqp-alex", i, "zqpword in a call with alex, part %d" % i) for i in range(6)])
    drained(lucy)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    add_call(data_dir, "rec-zqp-alex", "+" + ALEX, 1717171200000)
    add_call(data_dir, "rec-zqp-other", "+15550009999", 1717171200000)
    lucy = start_lucy(env=env, data_dir=data_dir)
    everything = search(lucy, q="zqpword")
    assert everything["backend"] == backend and everything["count"] == 5
    body = search(lucy, q="zqpword", person=str(p["id"]))
    assert body["backend"] == backend and not body["degraded"], body
    assert sorted(g["id"] for g in body["hits"]) == ["rec-zqp-alex", "wamid.zqp1"]
    rec = [g for g in body["hits"] if g["source"] == "call_recording"][0]
    assert (len(rec["hits"]), rec["more"]) == (3, 3)  # six segments, one conversation
    m = [g for g in body["hits"] if g["source"] == "whatsapp"][0]
    assert m["person"] == p["id"] and m["key"] == "whatsapp:person:%d:2024-06-01" % p["id"]
    assert [h["id"] for h in search(lucy, q="zqpword", person=str(p["id"]),
                                    source="call_recording")["hits"]] == ["rec-zqp-alex"]
    # the webhook's own message document: its contact is the sender's wa_id
    lucy.wait_for(lambda: search(lucy, q="invoice march", person=str(p["id"]))["count"] == 1
                  or None, what="the webhook message found through its person")
    # contact= keeps working, and combines with person=
    assert [g["id"] for g in search(lucy, q="zqpword", contact="4915550099")["hits"]] == \
        ["wamid.zqp2"]
    assert search(lucy, q="zqpword", contact="4915550099", person=str(p["id"]))["count"] == 0
    r = lucy.get("/search", params={"q": "zqpword", "person": "424242"})
    assert r.status_code == 404 and r.json()["error_type"] == "not_found", r.text
    assert "person" in r.json()["message"]

    assert lucy.stop() == 0
    r = lucy_cmd(data_dir, "search", "zqpword", "--person", str(p["id"]), "--json")
    assert r.returncode == 0, r.stderr.decode()
    assert sorted(g["id"] for g in json.loads(r.stdout)["hits"]) == ["rec-zqp-alex", "wamid.zqp1"]
    r = lucy_cmd(data_dir, "search", "zqpword", "--person", "424242")
    assert r.returncode == 1 and b"no person 424242" in r.stderr
    r = lucy_cmd(data_dir, "search", "zqpword", "--person", "x")
    assert r.returncode == 2 and b"--person" in r.stderr


def test_command_prints_conversations(start_lucy):
    lucy = start_lucy()
    feed(lucy.data_dir, [seg("rec-zqc", i, "zqcword %d" % i) for i in range(5)])
    drained(lucy)
    r = lucy_cmd(lucy.data_dir, "search", "zqcword")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert out.startswith("1. call_recording  call.m4a  (5 hits)\n"), out
    assert out.count("[zqcword]") == 3 and "... 2 more" in out and "\n2. " not in out
    r = lucy_cmd(lucy.data_dir, "search", "zqcword", "--flat", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["hits"]) == 5
