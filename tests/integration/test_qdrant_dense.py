"""Qdrant's named dense vector beside the sparse one (DESIGN §14, issue 14):
the collection gets a dense vector `dense` (size = the embedding dimension,
Cosine) once lucy knows the dimension; a sparse-only collection made by an
earlier lucy is upgraded without losing a point (a new collection filled
from the local copy, an alias switched, the old one dropped; resumable after
kill -9); the embedder's vectors reach Qdrant through the outbox (nothing
lost while Qdrant is down); lucy_index_similar() asks Qdrant's dense vector
and agrees with the SQLite brute force.

Against the strict Qdrant double (tests/qdrant/double.py: every request is
validated against Qdrant's OpenAPI spec; the fixture fails a test that sent
one a real Qdrant would refuse) and the OpenAI-schema embedding stand-in of
test_embed.py (a hashed bag of words, so related texts are close).
"""
import json
import os
import subprocess

import requests

from conftest import SAN_ENV
from qdrant_fixture import qdrant_double  # noqa: F401  (pytest fixture)
from test_embed import DIM, MODEL, SIMILAR, embedder  # noqa: F401  (fixture)
from test_search import feed

ALIAS = "lucy_data"
TARGET = "%s_dense%d" % (ALIAS, DIM)
T = 1717171200

DOCS = [
    {"source": "call_recording", "id": "rec-a", "segment": 0, "title": "a.m4a",
     "text": "the train to london leaves from platform three", "time": T},
    {"source": "call_recording", "id": "rec-a", "segment": 1, "title": "a.m4a",
     "text": "please send the invoice for march", "time": T},
    {"source": "whatsapp", "id": "wamid.d1", "contact": "4915550001", "title": "Anna",
     "text": "the invoice is paid thank you", "time": T + 10},
    {"source": "whatsapp", "id": "wamid.d2", "contact": "4915550002", "title": "Bob",
     "text": "dinner at eight tonight", "time": T + 20},
    {"source": "call_recording", "id": "rec-b", "segment": 0, "title": "b.m4a",
     "text": "which platform does the london train use", "time": T + 30},
]
MORE = [{"source": "whatsapp", "id": "wamid.d%d" % i, "contact": "4915550003", "title": "Cem",
         "text": "note %d about the garden and the roses" % i, "time": T + 100 + i}
        for i in range(3, 40)]


def env(q, embed_url=None):
    e = {"QDRANT_URL": q.url, "QDRANT_COLLECTION": ALIAS, "LUCY_QDRANT_TIMEOUT_MS": "1000",
         "LUCY_LOG_LEVEL": "info"}
    if embed_url:
        e.update({"LUCY_EMBED_URL": embed_url, "LUCY_EMBED_MODEL": MODEL})
    return e


def qget(q, path):
    r = requests.get(q.url + path, headers=q.headers(), timeout=10)
    return r.status_code, r.json()


def aliases(q):
    return {a["alias_name"]: a["collection_name"] for a in qget(q, "/aliases")[1]["result"]["aliases"]}


def points(q, coll=ALIAS, missing_ok=False):
    """{point id: vector names with their sizes} of every point, by scrolling;
    None when the collection does not exist and missing_ok."""
    out, offset = {}, None
    while True:
        body = {"limit": 100, "with_payload": False, "with_vector": True}
        if offset is not None:
            body["offset"] = offset
        r = requests.post("%s/collections/%s/points/scroll" % (q.url, coll), json=body,
                          headers=q.headers(), timeout=10)
        if r.status_code == 404 and missing_ok:
            return None
        assert r.status_code == 200, r.text
        res = r.json()["result"]
        for p in res["points"]:
            out[p["id"]] = {n: len(v) if isinstance(v, list) else "sparse"
                            for n, v in p["vector"].items()}
        offset = res["next_page_offset"]
        if offset is None:
            return out


def rag(lucy):
    r = lucy.get("/rag/stats")
    assert r.status_code == 200, r.text
    return r.json()


def all_dense(q, n):
    """The n points, each with both vectors, or None."""
    code, _ = qget(q, "/collections/%s" % ALIAS)
    if code != 200:
        return None
    # The upgrade drops the plain collection before its name becomes the
    # alias (qdrant_upgrade.c): it may vanish between the two requests.
    p = points(q, missing_ok=True)
    ok = p is not None and len(p) == n and all(v.get("dense") == DIM and v.get("text") == "sparse" for v in p.values())
    return p if ok else None


def vectors_done(lucy, n):
    e = rag(lucy)["embeddings"]
    return e["pending"] == 0 and e["vectors"] == n


def similar(data_dir, query, limit, qdrant=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "QDRANT_"))}
    e.update(SAN_ENV)
    e.update({"LUCY_DATA_DIR": data_dir, "LUCY_EMBED_URL": embed_url_of[data_dir],
              "LUCY_EMBED_MODEL": MODEL, "LUCY_LOG_LEVEL": "error"})
    if qdrant:
        e.update({"QDRANT_URL": qdrant.url, "QDRANT_COLLECTION": ALIAS})
    p = subprocess.run([SIMILAR, query, str(limit)], capture_output=True, text=True, env=e,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


embed_url_of = {}


def ranking(r):
    """The hits as (score, key), best first; documents tied at the last
    score may differ between two correct rankers, so those are left out."""
    hits = [(round(h["score"], 4), h["id"], h["segment"]) for h in r["hits"]]
    cut = hits[-1][0] if hits else None
    return [round(h[0], 4) for h in hits], sorted((h for h in hits if h[0] != cut),
                                                  key=lambda h: (-h[0], h[1], h[2]))


def test_created_with_both_vectors_when_the_dimension_is_known(start_lucy, qdrant_double, embedder):
    """Qdrant down while the vectors are computed: the collection is then
    created with both vectors and every point carries its dense vector."""
    q = qdrant_double()
    q.stop()
    lucy = start_lucy(env=env(q, embedder.url))
    feed(lucy.data_dir, DOCS)
    lucy.wait_for(lambda: vectors_done(lucy, len(DOCS)), timeout=60, what="vectors computed")
    q.restart()
    got = lucy.wait_for(lambda: all_dense(q, len(DOCS)), timeout=90, interval=0.3,
                        what="every point with both vectors")
    assert len(got) == len(DOCS)
    code, coll = qget(q, "/collections/%s" % ALIAS)
    params = coll["result"]["config"]["params"]
    assert params["vectors"] == {"dense": {"size": DIM, "distance": "Cosine"}}
    assert params["sparse_vectors"] == {"text": {"modifier": "idf"}}
    assert aliases(q) == {}  # created directly: no upgrade was needed
    assert rag(lucy)["storage"]["dense_size"] == DIM
    creates = [r for r in q.requests() if r["op"] == "create_collection"]
    assert len(creates) == 1 and creates[0]["body"]["vectors"]["dense"]["size"] == DIM, creates
    # down again while new documents are embedded: filled in when it is back
    q.stop()
    feed(lucy.data_dir, MORE[:3])
    lucy.wait_for(lambda: vectors_done(lucy, len(DOCS) + 3), timeout=60, what="new vectors")
    q.restart()
    lucy.wait_for(lambda: all_dense(q, len(DOCS) + 3), timeout=90, interval=0.3,
                  what="the new points with their dense vectors")


def test_upgrade_of_a_sparse_only_collection_keeps_every_point(start_lucy, qdrant_double,
                                                               embedder):
    q = qdrant_double()
    # the previous lucy: no LUCY_EMBED_URL, a sparse-only collection
    old = start_lucy(env=env(q))
    feed(old.data_dir, DOCS + MORE)
    old.wait_for(lambda: rag(old)["pending_count"] == 0 and
                 len(points(q, missing_ok=True) or {}) == len(DOCS + MORE) or None, timeout=60, what="indexed")
    before = points(q)
    assert all(set(v) == {"text"} for v in before.values())
    old.stop()
    # kill -9 mid-upgrade: the copy into the new collection hangs past the timeout
    q.fault(kind="hang", count=1000, seconds=1.5, ops=["upsert"])
    lucy = start_lucy(env=env(q, embedder.url), data_dir=old.data_dir)
    embed_url_of[lucy.data_dir] = embedder.url
    lucy.wait_for(lambda: qget(q, "/collections/%s" % TARGET)[0] == 200 or None, timeout=60,
                  what="the upgrade started")
    assert qget(q, "/collections/%s" % ALIAS)[0] == 200 and aliases(q) == {}
    r = lucy.get("/search", params={"q": "invoice"})  # search answers meanwhile
    assert r.status_code == 200 and r.json()["hits"], r.text
    lucy.kill9()
    q.fault(kind="clear")
    lucy = start_lucy(env=env(q, embedder.url), data_dir=old.data_dir)
    lucy.wait_for(lambda: aliases(q) == {ALIAS: TARGET} or None, timeout=90, interval=0.3,
                  what="the alias switched")
    after = lucy.wait_for(lambda: all_dense(q, len(before)), timeout=90, interval=0.3,
                          what="every point with its dense vector")
    assert sorted(after) == sorted(before)  # no point lost, no point added
    names = [c["name"] for c in qget(q, "/collections")[1]["result"]["collections"]]
    assert names == [TARGET]  # the old collection is gone
    code, coll = qget(q, "/collections/%s" % ALIAS)
    assert coll["result"]["config"]["params"]["vectors"]["dense"]["size"] == DIM
    r = lucy.get("/search", params={"q": "invoice"})
    assert r.status_code == 200 and not r.json()["degraded"], r.text
    lucy.stop()
    # killed between dropping the old collection and creating the alias:
    # the next start creates the alias (the new collection is complete)
    requests.post(q.url + "/collections/aliases", headers=q.headers(), timeout=10,
                  json={"actions": [{"delete_alias": {"alias_name": ALIAS}}]})
    assert qget(q, "/collections/%s" % ALIAS)[0] == 404
    q.clear_logs()
    lucy = start_lucy(env=env(q, embedder.url), data_dir=old.data_dir)
    lucy.wait_for(lambda: aliases(q) == {ALIAS: TARGET} or None, timeout=60, what="alias again")
    assert sorted(points(q)) == sorted(before)
    assert not [r for r in q.requests() if r["op"] == "create_collection"
                and r["path"].endswith("/" + ALIAS)]


def test_similar_through_qdrant_agrees_with_the_brute_force(start_lucy, qdrant_double, embedder):
    q = qdrant_double()
    lucy = start_lucy(env=env(q, embedder.url))
    embed_url_of[lucy.data_dir] = embedder.url
    feed(lucy.data_dir, DOCS + MORE)
    lucy.wait_for(lambda: vectors_done(lucy, len(DOCS + MORE)), timeout=90, what="vectors")
    lucy.wait_for(lambda: all_dense(q, len(DOCS + MORE)), timeout=90, interval=0.3,
                  what="dense points")
    lucy.wait_for(lambda: rag(lucy)["pending_count"] == 0 or None, timeout=60, what="drained")
    for query in ("which platform for the london train", "invoice paid", "dinner tonight"):
        q.clear_logs()
        remote = similar(lucy.data_dir, query, 5, qdrant=q)
        local = similar(lucy.data_dir, query, 5)
        assert remote["degraded"] is False, remote
        asked = [r for r in q.requests() if r["op"] == "query"]
        assert asked and all(r["body"]["using"] == "dense" for r in asked), asked
        assert ranking(remote) == ranking(local), (remote, local)
    # Qdrant down: the brute force answers, degraded
    q.stop()
    r = similar(lucy.data_dir, "invoice paid", 3, qdrant=q)
    assert r["degraded"] is True and "local vectors" in r["degraded_reason"], r
    assert ranking(r) == ranking(similar(lucy.data_dir, "invoice paid", 3)) and r["hits"]
    q.restart()
