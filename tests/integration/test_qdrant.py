"""The Qdrant search backend end to end, against the strict Qdrant test
double (tests/qdrant/double.py: validates every request against Qdrant's
OpenAPI spec, ranks sparse queries with idf, injects faults) or, with
QDRANT_URL set (`make test-qdrant`, docs/qdrant.md), against a real Qdrant.

1. Conformance: the same documents (test_search.DOCS, fed through the
   producer API by tests/tools/outbox_put) and the same queries give the
   same top results on both backends, sqlite and qdrant (parametrized), and
   the two backends are compared with each other directly.
2. Faults (double only, they need its fault commands): index creation
   answered with Qdrant's WAL 500, upserts answered with it for a while,
   Qdrant stopped and restarted, a hung Qdrant, a collection that makes
   Qdrant reject documents (4xx).
Every test ends with the double's check that it recorded no request a real
Qdrant would refuse (the qdrant_double fixture fails the test otherwise).
"""
import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from conftest import BUILD_DIR, LUCY_BIN, SAN_ENV
from qdrant_fixture import qdrant_double  # noqa: F401  (pytest fixture)
from test_search import DOCS, T_MSG, T_OLD, T_REC, feed

REAL_QDRANT = os.environ.get("QDRANT_URL")
REAL_KEY = os.environ.get("QDRANT_API_KEY")
needs_double = pytest.mark.skipif(bool(REAL_QDRANT),
                                  reason="fault injection needs the Qdrant test double")

# docs/qdrant.md: point id = uuid5(this, "<source>/<id>/<segment>")
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lucy.invalid/search-index/v1")
WAL_MSG = "No space left on device: WAL buffer size exceeds available disk space"
INDEXES = ["contact", "recording_id", "source", "text", "time"]


class RealQdrant:
    """A real server named by QDRANT_URL; each test gets its own collection."""

    def __init__(self):
        self.url = REAL_QDRANT.rstrip("/")
        self.api_key = REAL_KEY
        self.collection = "lucy_test_%s" % uuid.uuid4().hex[:12]

    def headers(self):
        h = {"Content-Type": "application/json"}
        if self.api_key:
            h["api-key"] = self.api_key
        return h

    def close(self):
        requests.delete("%s/collections/%s" % (self.url, self.collection), headers=self.headers(),
                        timeout=10)


@pytest.fixture
def qdrant(request):
    """Factory: a Qdrant to point lucy at (the double, or the real one)."""
    made = []

    def make(api_key=None, allow_violations=False):
        if REAL_QDRANT:
            q = RealQdrant()
        else:
            q = request.getfixturevalue("qdrant_double")(api_key=api_key,
                                                         allow_violations=allow_violations)
            q.collection = "lucy_data"
        made.append(q)
        return q

    yield make
    for q in made:
        if isinstance(q, RealQdrant):
            q.close()


def qdrant_env(q, **extra):
    env = {"QDRANT_URL": q.url, "QDRANT_COLLECTION": q.collection,
           "LUCY_QDRANT_TIMEOUT_MS": "1000", "LUCY_LOG_LEVEL": "info"}
    if q.api_key:
        env["QDRANT_API_KEY"] = q.api_key
    env.update(extra)
    return env


def start_backend(start_lucy, qdrant, backend, **extra):
    if backend == "sqlite":
        return start_lucy(env=dict({"LUCY_LOG_LEVEL": "info"}, **extra)), None
    q = qdrant()
    return start_lucy(env=qdrant_env(q, **extra)), q


def stats(lucy):
    r = lucy.get("/rag/stats")
    assert r.status_code == 200, r.text
    return r.json()


def search(lucy, **params):
    r = lucy.get("/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def ids(result):
    return [(h["id"], h["segment"]) for h in result["hits"]]


def top(result):
    return ids(result)[0] if result["hits"] else None


def drained(lucy, timeout=30):
    return lucy.wait_for(lambda: stats(lucy)["pending_count"] == 0 or None, timeout=timeout,
                         what="outbox drained")


def checks(lucy):
    return lucy.get("/health").json()["checks"]


def log_msgs(lucy, msg, level=None):
    return [l for l in lucy.log_lines()
            if l.get("msg") == msg and (level is None or l.get("level") == level)]


def point_id(source, id_, segment):
    return str(uuid.uuid5(POINT_NAMESPACE, "%s/%s/%d" % (source, id_, segment)))


def ops(q, op, status=None):
    return [r for r in q.requests() if r["op"] == op and (status is None or r["status"] == status)]


def lucy_cmd(lucy, *args, env=None):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_"))}
    e.update(SAN_ENV)
    e["LUCY_DATA_DIR"] = lucy.data_dir
    e["LUCY_LOG_LEVEL"] = "warning"
    e.update(env or {})
    return subprocess.run([LUCY_BIN] + list(args), env=e, capture_output=True, timeout=60)


# ---- 1. conformance: the same tests on both backends --------------------------


@pytest.fixture(params=["sqlite", "qdrant"])
def indexed(request, start_lucy, qdrant):
    lucy, q = start_backend(start_lucy, qdrant, request.param)
    lucy.backend = request.param
    lucy.qdrant = q
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    return lucy


def test_ranked_hits_with_marked_snippets(indexed):
    body = search(indexed, q="zqxforward")
    assert body["backend"] == indexed.backend
    assert body["degraded"] is False
    assert ids(body) == [("rec-zqx1", 1), ("wamid.zqx1", 0)]
    first, second = body["hits"]
    assert first["score"] > second["score"]
    assert (first["source"], first["t0_ms"], first["t1_ms"], first["time"]) == \
        ("call_recording", 4200, 9800, T_REC)
    assert first["title"] == "call-zqx.m4a"
    assert "<mark>zqxforward</mark>" in first["snippet"]
    assert "&amp; &lt;b&gt;plan&lt;/b&gt;" in first["snippet"]  # text escaped, only marks are markup
    assert second["contact"] == "4915550001" and second["time"] == T_MSG
    assert "<mark>Zqxforward</mark>" in second["snippet"]
    assert "t0_ms" not in second


def test_filters(indexed):
    assert ids(search(indexed, q="zqxforward", source="whatsapp")) == [("wamid.zqx1", 0)]
    assert ids(search(indexed, q="zqxforward", source="call_recording")) == [("rec-zqx1", 1)]
    assert ids(search(indexed, q="zqxinvoice", contact="4915550002")) == [("wamid.zqx2", 0)]
    assert ids(search(indexed, q="zqxinvoice", **{"from": str(T_MSG)})) == [("wamid.zqx1", 0)]
    assert ids(search(indexed, q="zqxinvoice", to="2023-12-31")) == [("wamid.zqx2", 0)]
    assert ids(search(indexed, q="zqxforward", **{"from": "2024-05-31T18:00:00+02:00",
                                                   "to": "2024-05-31T16:00:00Z"})) == \
        [("rec-zqx1", 1)]
    assert ids(search(indexed, q="zqxinvoice", **{"from": str(T_OLD), "to": str(T_OLD)})) == \
        [("wamid.zqx2", 0)]


def test_case_accents_and_several_words(indexed):
    assert top(search(indexed, q="CAFE ZQXMULLER")) == ("wamid.zqx2", 0)
    assert "<mark>Café</mark>" in search(indexed, q="cafe")["hits"][0]["snippet"]
    # the document holding every word comes first on both backends
    assert top(search(indexed, q="zqxforward zqxinvoice")) == ("wamid.zqx1", 0)
    assert search(indexed, q="zqxnothing")["hits"] == []


def test_limit_and_query_syntax(indexed):
    assert len(search(indexed, q="zqxinvoice")["hits"]) == 2
    assert len(search(indexed, q="zqxinvoice", limit="1")["hits"]) == 1
    for q in ['"', "AND", "NEAR(", "*", "a:b", "-zqx", "\\", "...", "%00"]:
        r = indexed.get("/search", params={"q": q})
        assert r.status_code == 200, (q, r.text)


def test_delete_and_update(indexed):
    feed(indexed.data_dir, [{"op": "delete", "source": "whatsapp", "id": "wamid.zqx1"}])
    assert ids(search(indexed, q="zqxforward")) == [("rec-zqx1", 1)]  # hidden at once
    drained(indexed)
    assert ids(search(indexed, q="zqxforward")) == [("rec-zqx1", 1)]
    feed(indexed.data_dir, [dict(DOCS[3], text="a zqxreceipt now")])
    drained(indexed)
    assert ids(search(indexed, q="zqxreceipt")) == [("wamid.zqx2", 0)]
    assert search(indexed, q="zqxmüller")["hits"] == []
    if indexed.backend == "qdrant" and not REAL_QDRANT:
        pts = ops(indexed.qdrant, "delete_points", 200)
        assert any(point_id("whatsapp", "wamid.zqx1", 0) in (r["body"] or {}).get("points", [])
                   for r in pts)


def test_rag_stats(indexed):
    s = stats(indexed)
    assert s["backend"] == indexed.backend
    assert s["storage"]["collection"]
    assert s["storage"]["points_count"] >= len(DOCS)
    assert s["storage"]["indexed_count"] >= len(DOCS)
    assert s["storage"]["segments_count"] >= 1
    assert s["pending_count"] == 0 and s["failed_count"] == 0
    assert s["status"] == "green", s
    assert s["storage"]["payload_indexes"]["pending"] == []
    assert s["sources"] == {"call_recording": 2, "whatsapp": 2}
    if indexed.backend == "qdrant":
        assert sorted(s["storage"]["payload_indexes"]["ensured"]) == INDEXES
        assert s["storage"]["collection"] == indexed.qdrant.collection
        assert s["storage"]["local_count"] == len(DOCS)
        assert set(s["storage"]["payload_schema"]) == set(INDEXES)
        assert "disk_bytes" in s["storage"]  # null: GET /collections/{c} does not report sizes
    # deprecated, kept for one release: the storage fields at the top level too
    assert {k: s[k] for k in s["storage"]} == s["storage"]


def test_backends_agree(start_lucy, qdrant):
    """One daemon per backend, the same documents, the same queries: the
    same ranked hits for one-word queries; for several words the documents
    holding all of them, in the same order, lead Qdrant's answer."""
    extra = [{"source": "whatsapp", "id": "wamid.agree%d" % i, "contact": "49155500%02d" % (i % 3),
              "title": "Contact %d" % i, "time": T_MSG + i,
              "text": "zqxalpha " * (1 + i % 4) + ("zqxbeta" if i % 2 else "zqxgamma") + " end"}
             for i in range(12)]
    docs = DOCS + extra
    lucys = {}
    for backend in ("sqlite", "qdrant"):
        lucy, _ = start_backend(start_lucy, qdrant, backend)
        feed(lucy.data_dir, docs)
        lucys[backend] = lucy
    for lucy in lucys.values():
        drained(lucy)
    one_word = ["zqxforward", "zqxinvoice", "zqxbeta", "zqxgamma", "cafe", "ZQXMÜLLER", "anna"]
    several = ["zqxalpha zqxbeta", "zqxforward zqxinvoice", "zqxinvoice zqxmuller"]
    for q in one_word + several:
        for params in ({}, {"source": "whatsapp"}, {"contact": "4915550001"}):
            a = search(lucys["sqlite"], q=q, **params)
            b = search(lucys["qdrant"], q=q, **params)
            assert b["backend"] == "qdrant" and not b["degraded"]
            if q in one_word:
                assert ids(a) == ids(b), (q, params, ids(a), ids(b))
            else:
                # sqlite wants every word, Qdrant ranks any word (docs/qdrant.md):
                # the documents holding every word come first on Qdrant too
                assert ids(b)[:len(ids(a))] == ids(a), (q, params, ids(a), ids(b))


def test_commands_use_qdrant(start_lucy, qdrant):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    env = qdrant_env(q)
    r = lucy_cmd(lucy, "search", "zqxforward", "--json", env=env)
    assert r.returncode == 0, r.stderr.decode()
    body = json.loads(r.stdout)
    assert body["backend"] == "qdrant" and top(body) == ("rec-zqx1", 1)
    r = lucy_cmd(lucy, "stats", "--json", env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["storage"]["points_count"] == len(DOCS)

    # reindex: the collection is dropped, created again and refilled
    r = lucy_cmd(lucy, "reindex", "--json", env=env)
    assert r.returncode == 0, r.stderr.decode()
    rep = json.loads(r.stdout)
    assert rep["ok"] is True and rep["backend"] == "qdrant" and rep["queued"] == len(DOCS)
    drained(lucy)
    s = stats(lucy)
    st = s["storage"]
    assert st["points_count"] == len(DOCS) and st["payload_indexes"]["pending"] == []
    assert top(search(lucy, q="zqxforward")) == ("rec-zqx1", 1)
    if not REAL_QDRANT:
        assert len(ops(q, "delete_collection", 200)) == 1


# ---- 2. the collection, the points, the api key (double) --------------------


@needs_double
def test_collection_points_and_api_key(start_lucy, qdrant):
    q = qdrant(api_key="k-9f2e-secret")
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    h = dict(q.headers())
    info = requests.get(q.url + "/collections/lucy_data", headers=h, timeout=5).json()["result"]
    assert info["config"]["params"]["sparse_vectors"] == {"text": {"modifier": "idf"}}
    schema = info["payload_schema"]
    assert {k: v["data_type"] for k, v in schema.items()} == {
        "source": "keyword", "contact": "keyword", "recording_id": "keyword",
        "time": "integer", "text": "text"}
    assert schema["text"]["params"] == {"type": "text", "tokenizer": "word", "lowercase": True}
    got = requests.post(q.url + "/collections/lucy_data/points",
                        json={"ids": [point_id("call_recording", "rec-zqx1", 1)],
                              "with_payload": True, "with_vector": True},
                        headers=h, timeout=5).json()["result"]
    assert len(got) == 1
    p = got[0]["payload"]
    assert p == {"source": "call_recording", "id": "rec-zqx1", "segment": 1,
                 "recording_id": "rec-zqx1", "title": "call-zqx.m4a", "text": DOCS[1]["text"],
                 "time": T_REC, "t0_ms": 4200, "t1_ms": 9800}
    vec = got[0]["vector"]["text"]
    assert len(set(vec["indices"])) == len(vec["indices"]) == 11  # 8 + 3 distinct terms
    # BM25's tf part (docs/qdrant.md): "zqxforward" twice, 10 words in the
    # text + 3 in the title, k1 1.2, b 0.75, avgdl 32
    f, dl = 2.0, 13
    want = f * 2.2 / (f + 1.2 * (1 - 0.75 + 0.75 * dl / 32.0))
    assert abs(max(vec["values"]) - want) < 1e-5
    # the key was sent on every call and never shows
    assert not [r for r in q.requests() if r["status"] == 401]
    for text in (lucy.log_text(), json.dumps(stats(lucy)), lucy.get("/health").text):
        assert "k-9f2e-secret" not in text


@needs_double
def test_wrong_api_key_keeps_documents_queued(start_lucy, qdrant):
    q = qdrant(api_key="right-key")
    lucy = start_lucy(env=qdrant_env(q, QDRANT_API_KEY="wrong-key"))
    feed(lucy.data_dir, DOCS[:2])
    lucy.wait_for(lambda: log_msgs(lucy, "search index backend failed; documents stay queued")
                  or None, what="401 logged")
    s = stats(lucy)
    assert s["failed_count"] == 0 and s["pending_count"] == 2  # a key problem fails no document
    assert "401" in s["status_reason"]
    body = search(lucy, q="zqxforward")
    assert body["degraded"] is True and body["backend"] == "sqlite"
    assert "wrong-key" not in lucy.log_text()


# ---- 3. faults (double) ---------------------------------------------------------


@needs_double
def test_index_creation_refused_then_created_without_restart(start_lucy, qdrant):
    q = qdrant()
    q.fault(kind="wal_full", ops=["create_index"])  # until cleared
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)  # the collection exists: points go in while indexes are refused
    # retried in the background: at least three refusals, logged once
    lucy.wait_for(lambda: len(ops(q, "create_index", 500)) >= 3 * 5 or None, timeout=20,
                  what="index creation retried")
    warned = log_msgs(lucy, "search index not ready; retrying", "warning")
    assert len(warned) == 1, warned
    assert WAL_MSG in warned[0]["error"]
    body = search(lucy, q="zqxforward")
    assert body["backend"] == "qdrant" and top(body) == ("rec-zqx1", 1)
    s = stats(lucy)
    assert sorted(s["storage"]["payload_indexes"]["pending"]) == INDEXES
    assert all(WAL_MSG in e for e in s["storage"]["payload_indexes"]["errors"].values())
    assert s["status"] == "yellow"
    c = lucy.wait_for(lambda: checks(lucy)["qdrant:indexes"][0]["status"] == "warn"
                      and checks(lucy), what="qdrant:indexes warns")
    assert WAL_MSG in c["qdrant:indexes"][0]["output"]
    assert lucy.get("/health").status_code == 200

    q.fault(kind="clear")
    lucy.wait_for(lambda: stats(lucy)["storage"]["payload_indexes"]["pending"] == [] or None,
                  timeout=40,
                  what="indexes created after the fault cleared")
    assert sorted(stats(lucy)["storage"]["payload_indexes"]["ensured"]) == INDEXES
    lucy.wait_for(lambda: checks(lucy)["qdrant:indexes"][0]["status"] == "pass" or None,
                  what="qdrant:indexes passes")
    assert stats(lucy)["status"] == "green"
    assert log_msgs(lucy, "qdrant collection and payload indexes created", "info")


@needs_double
def test_upserts_refused_for_a_while_lose_nothing(start_lucy, qdrant):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    q.fault(kind="wal_full", ops=["upsert"])  # until cleared
    first = [{"source": "whatsapp", "id": "wamid.full%d" % i, "text": "zqxqueued number %d" % i,
              "time": T_MSG + i} for i in range(30)]
    feed(lucy.data_dir, first)
    lucy.wait_for(lambda: log_msgs(lucy, "search index backend failed; documents stay queued")
                  or None, what="WAL 500 logged")
    assert stats(lucy)["pending_count"] == 30
    feed(lucy.data_dir, [dict(d, id=d["id"] + "b") for d in first[:20]])
    s = stats(lucy)
    assert s["pending_count"] == 50  # grows while Qdrant refuses
    assert s["status"] == "yellow" and WAL_MSG in s["status_reason"]
    body = search(lucy, q="zqxforward")  # the local copy answers: Qdrant misses documents
    assert body["backend"] == "sqlite" and body["degraded"] and top(body) == ("rec-zqx1", 1)
    lucy.wait_for(lambda: len(ops(q, "upsert", 500)) >= 3 or None, what="upserts retried")

    q.fault(kind="clear")
    drained(lucy, timeout=60)
    s = stats(lucy)
    assert s["pending_count"] == 0 and s["failed_count"] == 0
    assert s["storage"]["points_count"] == len(DOCS) + 50
    assert len(search(lucy, q="zqxqueued", limit="100")["hits"]) == 50
    warned = log_msgs(lucy, "search index backend failed; documents stay queued", "warning")
    assert len(warned) == 1 and WAL_MSG in warned[0]["error"], warned
    assert log_msgs(lucy, "search index backend recovered", "info")


@needs_double
def test_search_while_upserts_refused_is_complete_and_says_degraded(start_lucy, qdrant):
    """Qdrant answers queries but refuses upserts (WAL full): its answer
    would miss the newest documents, so /search answers from the local
    copy, which has them, and says so; once the outbox drains, Qdrant
    answers again and the reply is not degraded."""
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    body = search(lucy, q="zqxforward")
    assert body["backend"] == "qdrant" and body["degraded"] is False
    assert body["degraded_reason"] == ""
    q.fault(kind="wal_full", ops=["upsert"])  # until cleared
    feed(lucy.data_dir, [{"source": "whatsapp", "id": "wamid.walfull", "contact": "4915550001",
                          "text": "zqxwalnote written while Qdrant refuses", "time": T_MSG}])
    lucy.wait_for(lambda: ops(q, "upsert", 500) or None, what="upsert refused")
    body = lucy.wait_for(lambda: (lambda b: b if b["hits"] else None)(
        search(lucy, q="zqxwalnote")), timeout=10, what="the new document found")
    asked = len(ops(q, "query"))
    assert ids(body) == [("wamid.walfull", 0)]
    assert body["degraded"] is True and body["backend"] == "sqlite"
    assert "qdrant" in body["degraded_reason"] and WAL_MSG in body["degraded_reason"]
    # the older documents too: the local copy has everything
    body = search(lucy, q="zqxforward")
    assert body["degraded"] is True and ids(body) == [("rec-zqx1", 1), ("wamid.zqx1", 0)]
    assert len(ops(q, "query")) == asked  # Qdrant is not asked while it lags

    q.fault(kind="clear")
    drained(lucy, timeout=60)
    body = search(lucy, q="zqxwalnote")
    assert body["backend"] == "qdrant" and body["degraded"] is False
    assert body["degraded_reason"] == "" and ids(body) == [("wamid.walfull", 0)]


@needs_double
def test_qdrant_down_degrades_to_sqlite_and_recovers(start_lucy, qdrant):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    lucy.wait_for(lambda: all(checks(lucy)[c][0]["status"] == "pass"
                              for c in ("qdrant:ready", "qdrant:collection", "qdrant:indexes"))
                  or None, what="qdrant checks pass")
    q.stop()
    body = search(lucy, q="zqxforward")
    assert body["backend"] == "sqlite" and body["degraded"] is True
    assert ids(body) == [("rec-zqx1", 1), ("wamid.zqx1", 0)]
    assert "<mark>zqxforward</mark>" in body["hits"][0]["snippet"]
    # written while Qdrant is down: searchable from the local copy at once
    feed(lucy.data_dir, [{"source": "whatsapp", "id": "wamid.down", "text": "zqxoutage note",
                          "time": T_MSG}])
    lucy.wait_for(lambda: search(lucy, q="zqxoutage")["hits"] or None, what="local copy current")
    h = lucy.wait_for(lambda: checks(lucy)["qdrant:ready"][0]["status"] == "warn"
                      and lucy.get("/health"), what="/health warns")
    assert h.status_code == 200 and h.json()["status"] == "warn"
    assert h.json()["dependencies"]["qdrant"] != "ok"
    s = stats(lucy)
    assert s["status"] == "red" and s["pending_count"] == 1 and s["storage"]["reachable"] is False

    q.restart()
    drained(lucy, timeout=60)
    body = lucy.wait_for(lambda: (lambda b: b if not b["degraded"] else None)(
        search(lucy, q="zqxoutage")), timeout=20, what="search back on Qdrant")
    assert body["backend"] == "qdrant" and ids(body) == [("wamid.down", 0)]
    lucy.wait_for(lambda: checks(lucy)["qdrant:ready"][0]["status"] == "pass" or None,
                  what="qdrant:ready passes again")
    assert stats(lucy)["status"] == "green"


@needs_double
def test_ready_requires_qdrant_fails_readiness(start_lucy, qdrant):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q, LUCY_READY_REQUIRES="qdrant"))
    lucy.wait_for(lambda: lucy.get("/health").status_code == 200 or None, what="ready")
    q.fault(kind="readyz", code=503)
    r = lucy.wait_for(lambda: (lambda r: [r] if r.status_code == 503 else None)(
        lucy.get("/health")), what="readiness fails")[0]  # a 503 Response is falsy
    assert r.json()["checks"]["qdrant:ready"][0]["status"] == "fail"
    assert lucy.get("/health/live").status_code == 200


@needs_double
def test_hung_qdrant_costs_one_timeout(start_lucy, qdrant):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q, LUCY_QDRANT_TIMEOUT_MS="300"))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    q.fault(kind="hang", seconds=2, ops=["query"])
    t0 = time.monotonic()
    body = search(lucy, q="zqxforward")
    assert body["degraded"] is True and top(body) == ("rec-zqx1", 1)
    t1 = time.monotonic()
    body = search(lucy, q="zqxinvoice")  # no second timeout: straight to the local copy
    assert body["degraded"] is True
    assert time.monotonic() - t1 < (t1 - t0) + 0.25
    q.fault(kind="clear")


@needs_double
@pytest.mark.parametrize("code,body", [
    (200, None),                                     # JSON cut off mid-way
    (200, '{"result": 5, "status": "ok"}'),          # valid JSON, wrong shape
    (200, '{"result": {"points": [{"id": null, "score": "x"}]}}'),
    (200, ""),
    (502, "<html><body>Bad Gateway</body></html>"),  # a proxy in front of Qdrant
    (503, '{"status": {"error": "Service unavailable"}}'),
])
def test_search_never_500_when_qdrant_answers_garbage(start_lucy, qdrant, code, body):
    q = qdrant()
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    drained(lucy)
    assert not search(lucy, q="zqxforward")["degraded"]
    fault = {"kind": "garbage", "count": 1, "ops": ["query"], "code": code}
    if body is not None:
        fault["body"] = body
    q.fault(**fault)
    asked = len(ops(q, "query"))
    r = lucy.get("/search", params={"q": "zqxforward"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] is True and body["backend"] == "sqlite", body
    assert ids(body) == [("rec-zqx1", 1), ("wamid.zqx1", 0)]
    assert "qdrant failed the search" in body["degraded_reason"]
    assert len(ops(q, "query")) == asked + 1  # lucy got the mangled answer


@needs_double
def test_rejected_documents_are_marked_failed_with_qdrants_message(start_lucy, qdrant):
    q = qdrant(allow_violations=True)
    # a collection made by something else, with `text` as a dense vector:
    # Qdrant rejects lucy's sparse vectors with a 400
    r = requests.put(q.url + "/collections/lucy_data", headers=q.headers(), timeout=5,
                     json={"vectors": {"text": {"size": 4, "distance": "Dot"}}})
    assert r.status_code == 200, r.text
    lucy = start_lucy(env=qdrant_env(q))
    feed(lucy.data_dir, DOCS)
    s = lucy.wait_for(lambda: (lambda s: s if s["failed_count"] == len(DOCS) else None)(
        stats(lucy)), what="documents marked failed")
    assert s["pending_count"] == 0
    assert "Conversion between sparse and regular vectors failed" in s["status_reason"]
    item = lucy.wait_for(lambda: [i for i in checks(lucy)["index:outbox"]
                                  if i["componentId"] == "outbox:failed"], what="outbox:failed")
    assert "Conversion between sparse and regular vectors failed" in item[0]["output"]
    assert "without the sparse vector `text`" in \
        stats(lucy)["storage"]["payload_indexes"]["collection_error"]
    n = len(ops(q, "upsert"))
    time.sleep(2.5)
    assert len(ops(q, "upsert")) == n  # never retried blindly
    body = search(lucy, q="zqxforward")  # the local copy still answers
    assert body["degraded"] is True and top(body) == ("rec-zqx1", 1)
    # the only refusals are Qdrant's own rejections of this collection
    assert {(v["op"], v["kind"]) for v in q.violations()} <= {("upsert", "rejected"),
                                                             ("query", "rejected")}
