"""Tests of the Qdrant test double itself (tests/qdrant/double.py).

lucy's Qdrant backend is tested against the double, so the double has to be
right: valid requests (the spec's own examples, the bodies a search-index
client sends) are accepted and answered in the documented shapes, invalid ones
are refused the way Qdrant refuses them and recorded as violations, sparse
ranking follows Qdrant's idf, filters select before ranking, and every fault
command behaves.  The fixture (qdrant_fixture.py) also validates every answer
of the double against the spec and fails a test on any unexpected violation.
"""
import http.client
import json
import math
import os
import sys
import uuid

import pytest
import requests

from qdrant_fixture import ROOT, qdrant_double  # noqa: F401  (fixture)

sys.path.insert(0, os.path.join(ROOT, "tests", "qdrant"))
import double as qd  # noqa: E402

WAL_BODY = {"status": {"error": "Service internal error: No space left on device: WAL buffer size "
                                "exceeds available disk space"}, "time": 0.0}
COLL = "lucy_data"
IDF_COLLECTION = {"sparse_vectors": {"text": {"modifier": "idf"}}}


class Api:
    """Minimal JSON client of the double."""

    def __init__(self, q):
        self.q = q
        self.s = requests.Session()
        self.s.headers.update(q.headers())

    def call(self, method, path, body=None, expect=200, **kw):
        r = self.s.request(method, self.q.url + path, json=body, timeout=kw.pop("timeout", 10), **kw)
        if expect is not None:
            assert r.status_code == expect, "%s %s -> %s %s" % (method, path, r.status_code, r.text)
        return r

    def result(self, method, path, body=None, **kw):
        r = self.call(method, path, body, **kw)
        j = r.json()
        assert j["status"] == "ok" and isinstance(j["time"], float), j
        return j["result"]


def sparse(weights):
    """{"indices", "values"} from {index: weight}."""
    items = sorted(weights.items())
    return {"indices": [i for i, _ in items], "values": [float(w) for _, w in items]}


def lucy_like_setup(api, name=COLL, modifier="idf"):
    body = {"sparse_vectors": {"text": {"modifier": modifier}}}
    assert api.result("PUT", "/collections/" + name, body) is True
    for field, schema in (("source", "keyword"), ("contact", "keyword"), ("recording_id", "keyword"),
                          ("time", "integer"),
                          ("text", {"type": "text", "tokenizer": "word", "lowercase": True})):
        r = api.result("PUT", "/collections/%s/index?wait=true" % name,
                       {"field_name": field, "field_schema": schema})
        assert r["status"] == "completed" and isinstance(r["operation_id"], int)


# ---------------------------------------------------------------------------
# the spec and its translation
# ---------------------------------------------------------------------------


def _examples(node, ptr):
    if isinstance(node, dict):
        if "example" in node:
            yield ptr, node["example"]
        for k, v in node.items():
            yield from _examples(v, ptr + [k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _examples(v, ptr + [i])


def test_spec_examples_validate_with_strict_oneof():
    """Every example in components/schemas validates against its own schema (both modes).

    This is the evidence that oneOf can stay strict: the spec's own examples
    pass, including those under oneOf/anyOf branches."""
    spec = qd.Spec()
    checked = 0
    for ptr, example in _examples(spec.raw["components"]["schemas"], ["components", "schemas"]):
        if ptr[-1] == "properties":
            continue  # FeedbackItem abuses `example` as a property name
        for strict in (False, True):
            schema = spec.schema(ptr, strict)
            errors = spec.errors(example, schema, strict)
            assert not errors, (ptr, example, [e.message for e in errors])
        checked += 1
    assert checked >= 20


def test_nullable_translation():
    t = qd.to_json_schema({"anyOf": [{"$ref": "#/x"}, {"nullable": True}]}, False)
    assert t == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}
    assert qd.to_json_schema({"type": "integer", "nullable": True}, False)["type"] == ["integer", "null"]
    spec = qd.Spec()
    query = spec.schema(["components", "schemas", "QueryRequest"], False)
    assert not spec.errors({"limit": None, "filter": None, "using": None}, query, False)
    # read literally, {"nullable": true} would accept anything here
    assert spec.errors({"filter": 5}, query, False)
    assert spec.errors({"limit": 1.0}, query, False)  # serde refuses a float for usize
    assert spec.errors({"limit": 2**64}, query, False)  # format uint
    assert not spec.errors({"query": {"indices": [1], "values": [1]}}, query, False)


# ---------------------------------------------------------------------------
# service endpoints, collections, indexes
# ---------------------------------------------------------------------------


def test_health_endpoints_and_readyz_fault(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    for path, text in (("/healthz", "healthz check passed"), ("/livez", "healthz check passed"),
                       ("/readyz", "all shards are ready")):
        r = api.call("GET", path)
        assert r.text == text and r.headers["Content-Type"].startswith("text/plain")
    q.fault(kind="readyz", code=503)
    assert api.call("GET", "/readyz", expect=503).text == "some shards are not ready"
    assert api.call("GET", "/healthz").status_code == 200
    q.fault(kind="clear")
    api.call("GET", "/readyz")
    assert api.call("GET", "/").json()["version"] == qd.QDRANT_VERSION  # not wrapped in "result"


def test_collection_lifecycle(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    assert api.result("GET", "/collections") == {"collections": []}
    assert api.result("PUT", "/collections/" + COLL, IDF_COLLECTION) is True
    r = api.call("PUT", "/collections/" + COLL, IDF_COLLECTION, expect=409)
    assert r.json()["status"]["error"] == "Wrong input: Collection `lucy_data` already exists!"
    info = api.result("GET", "/collections/" + COLL)
    assert info["status"] == "green" and info["optimizer_status"] == "ok"
    assert info["points_count"] == 0 and info["indexed_vectors_count"] == 0
    assert info["segments_count"] >= 1 and info["payload_schema"] == {}
    assert info["config"]["params"]["sparse_vectors"] == {"text": {"modifier": "idf"}}
    assert info["config"]["wal_config"]["wal_capacity_mb"] == 32
    assert api.result("GET", "/collections") == {"collections": [{"name": COLL}]}
    assert api.result("GET", "/collections/%s/exists" % COLL) == {"exists": True}
    assert api.result("DELETE", "/collections/" + COLL) is True
    assert api.result("DELETE", "/collections/" + COLL) is False
    r = api.call("GET", "/collections/" + COLL, expect=404)
    assert r.json() == {"status": {"error": "Not found: Collection `lucy_data` doesn't exist!"}, "time": 0.0}
    assert q.violations() == []  # 404 and 409 are answers, not client errors


def test_payload_indexes_in_collection_info(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    lucy_like_setup(api)
    api.result("PUT", "/collections/%s/points?wait=true" % COLL, {"points": [
        {"id": 1, "vector": {"text": sparse({1: 1})}, "payload": {"source": "whatsapp", "time": 10, "text": "hi"}},
        {"id": 2, "vector": {"text": sparse({2: 1})}, "payload": {"source": "call", "time": "late"}},
    ]})
    schema = api.result("GET", "/collections/" + COLL)["payload_schema"]
    assert schema["source"] == {"data_type": "keyword", "points": 2}
    assert schema["time"] == {"data_type": "integer", "points": 1}  # "late" is not an integer
    assert schema["contact"]["points"] == 0
    assert schema["text"] == {"data_type": "text", "points": 1,
                              "params": {"type": "text", "tokenizer": "word", "lowercase": True}}
    r = api.result("DELETE", "/collections/%s/index/contact?wait=true" % COLL)
    assert r["status"] == "completed"
    assert "contact" not in api.result("GET", "/collections/" + COLL)["payload_schema"]
    # the parameterised forms of the other field_schema variants are accepted too
    api.result("PUT", "/collections/%s/index" % COLL,
               {"field_name": "n", "field_schema": {"type": "integer", "lookup": True, "range": True}})
    r = api.result("PUT", "/collections/%s/index" % COLL,
                   {"field_name": "k", "field_schema": {"type": "keyword", "is_tenant": False}})
    assert r["status"] == "acknowledged"  # without ?wait=true


# ---------------------------------------------------------------------------
# points
# ---------------------------------------------------------------------------


def test_upsert_forms_get_scroll_count(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    lucy_like_setup(api)
    u1 = str(uuid.uuid5(uuid.NAMESPACE_URL, "lucy:doc:1"))
    r = api.result("PUT", "/collections/%s/points?wait=true" % COLL, {"points": [
        {"id": u1, "vector": {"text": sparse({7: 1.0, 3: 2.0})}, "payload": {"source": "call", "text": "a b"}},
        {"id": 5, "vector": {"text": sparse({3: 1.0})}, "payload": {"source": "whatsapp"}},
    ]})
    assert r["status"] == "completed"
    r = api.result("PUT", "/collections/%s/points?wait=true" % COLL, {"batch": {
        "ids": [6, u1.upper()],  # the same UUID in upper case is the same point
        "vectors": {"text": [sparse({1: 1.0}), sparse({9: 1.0})]},
        "payloads": [{"source": "call"}, {"source": "whatsapp", "text": "new"}],
    }})
    assert r["status"] == "completed"
    assert api.result("POST", "/collections/%s/points/count" % COLL, {"exact": True}) == {"count": 3}
    p = api.result("GET", "/collections/%s/points/%s" % (COLL, u1))
    assert p["id"] == u1 and p["payload"] == {"source": "whatsapp", "text": "new"}
    assert p["vector"] == {"text": {"indices": [9], "values": [1.0]}}
    assert api.result("GET", "/collections/%s/points/5" % COLL)["payload"] == {"source": "whatsapp"}
    api.call("GET", "/collections/%s/points/77" % COLL, expect=404)
    page = api.result("POST", "/collections/%s/points/scroll" % COLL, {"limit": 2, "with_payload": ["source"]})
    assert [x["id"] for x in page["points"]] == [5, 6]  # integer ids first, in order
    assert page["next_page_offset"] == u1
    page = api.result("POST", "/collections/%s/points/scroll" % COLL,
                      {"limit": 2, "offset": page["next_page_offset"], "with_payload": False})
    assert page == {"points": [{"id": u1}], "next_page_offset": None}
    got = api.result("POST", "/collections/%s/points" % COLL, {"ids": [5, 404], "with_payload": True})
    assert [x["id"] for x in got] == [5]
    info = api.result("GET", "/collections/" + COLL)
    assert info["points_count"] == 3 and info["indexed_vectors_count"] == 3


def test_delete_points_by_ids_and_by_filter(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    lucy_like_setup(api)
    api.result("PUT", "/collections/%s/points?wait=true" % COLL, {"points": [
        {"id": i, "vector": {"text": sparse({i: 1})}, "payload": {"recording_id": "r%d" % (i % 2)}}
        for i in range(1, 7)]})
    r = api.result("POST", "/collections/%s/points/delete?wait=true" % COLL, {"points": [1, 2, 99]})
    assert r["status"] == "completed"
    r = api.result("POST", "/collections/%s/points/delete?wait=true" % COLL,
                   {"filter": {"must": [{"key": "recording_id", "match": {"value": "r1"}}]}})
    left = api.result("POST", "/collections/%s/points/scroll" % COLL, {})
    assert [p["id"] for p in left["points"]] == [4, 6]


# ---------------------------------------------------------------------------
# ranking and filters
# ---------------------------------------------------------------------------

WORDS = {"the": 1, "meeting": 2, "budget": 3, "is": 4, "on": 5, "friday": 6, "call": 7, "mom": 8,
         "dentist": 9, "tuesday": 10, "about": 11}
# "meeting" is in 5 of the 6 documents, "dentist" and "mom" in one each.
CORPUS = [
    "the meeting is on friday the meeting",
    "the budget meeting is on tuesday",
    "call mom about the meeting on friday",
    "the dentist is on tuesday",
    "the meeting the meeting the meeting",
    "the call meeting is on friday",
]


def tf_vector(text):
    counts = {}
    for w in text.split():
        counts[WORDS[w]] = counts.get(WORDS[w], 0) + 1
    return sparse(counts)


def load_corpus(api, name, modifier):
    lucy_like_setup(api, name, modifier)
    api.result("PUT", "/collections/%s/points?wait=true" % name, {"points": [
        {"id": i, "vector": {"text": tf_vector(t)},
         "payload": {"text": t, "source": "call" if i % 2 else "whatsapp", "time": 100 + i}}
        for i, t in enumerate(CORPUS)]})


def query(api, name, body):
    return api.result("POST", "/collections/%s/points/query" % name, body)["points"]


def test_idf_ranking_puts_the_rare_term_first(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    load_corpus(api, "idf", "idf")
    load_corpus(api, "plain", "none")
    body = {"query": sparse({WORDS["meeting"]: 1, WORDS["dentist"]: 1}), "using": "text",
            "limit": 3, "with_payload": True}
    plain = query(api, "plain", body)
    with_idf = query(api, "idf", body)
    # raw dot product: the document saying "meeting" three times wins
    assert plain[0]["id"] == 4 and plain[0]["score"] == pytest.approx(3.0)
    # idf: "dentist" is in 1 of 6 documents, "meeting" in 5 -> the dentist document wins
    n_total = len(CORPUS)

    def idf(n):
        return math.log(1 + (n_total - n + 0.5) / (n + 0.5))

    assert 3 * idf(5) < idf(1)  # the corpus is built for this
    assert with_idf[0]["id"] == 3
    assert with_idf[0]["score"] == pytest.approx(idf(1), rel=1e-6)
    assert with_idf[1]["id"] == 4 and with_idf[1]["score"] == pytest.approx(3 * idf(5), rel=1e-6)
    assert set(with_idf[0]) == {"id", "version", "score", "payload"}
    assert with_idf[0]["payload"]["text"] == CORPUS[3]
    # only documents sharing a term are returned; no payload unless asked
    hits = query(api, "idf", {"query": sparse({WORDS["mom"]: 1}), "using": "text"})
    assert [(h["id"], set(h)) for h in hits] == [(2, {"id", "version", "score"})]
    # the NearestQuery form is the same query
    again = query(api, "idf", {**body, "query": {"nearest": body["query"]}})
    assert [h["id"] for h in again] == [h["id"] for h in with_idf]


def test_filters_apply_before_ranking(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    load_corpus(api, COLL, "idf")
    terms = sparse({WORDS["meeting"]: 1, WORDS["friday"]: 1, WORDS["the"]: 1})

    def ids(flt, **extra):
        return [h["id"] for h in query(api, COLL, {"query": terms, "using": "text", "filter": flt,
                                                   "limit": 10, **extra})]

    everything = ids(None)
    assert sorted(everything) == list(range(len(CORPUS)))  # every document has "the"
    whatsapp = ids({"must": [{"key": "source", "match": {"value": "whatsapp"}}]})
    assert whatsapp == [i for i in everything if i % 2 == 0]
    assert ids({"must_not": [{"key": "source", "match": {"value": "whatsapp"}}]}) == \
        [i for i in everything if i % 2 == 1]
    assert ids({"should": [{"key": "time", "match": {"any": [101, 105]}}]}) == \
        [i for i in everything if i in (1, 5)]
    assert ids({"must": [{"key": "time", "range": {"gte": 102, "lt": 105}}]}) == \
        [i for i in everything if 2 <= i < 5]
    assert ids({"must": [{"key": "time", "range": {"gt": 102, "lte": 105}}]}) == \
        [i for i in everything if 2 < i <= 5]
    # full-text index (word tokenizer, lowercase): all words, any order, any case
    assert ids({"must": [{"key": "text", "match": {"text": "FRIDAY call"}}]}) == \
        [i for i in everything if i in (2, 5)]
    # a filter in a single-condition form and nested filters
    assert ids({"must": {"key": "source", "match": {"value": "whatsapp"}}}) == whatsapp
    assert ids({"must": [{"should": [{"key": "time", "match": {"value": 100}},
                                      {"key": "time", "match": {"value": 103}}]}]}) == \
        [i for i in everything if i in (0, 3)]
    # keyword values never match integers and vice versa
    assert ids({"must": [{"key": "time", "match": {"value": "100"}}]}) == []
    # limit and offset page through the ranking
    assert ids(None, limit=2, offset=1) == everything[1:3]
    count = api.result("POST", "/collections/%s/points/count" % COLL,
                       {"filter": {"must": [{"key": "source", "match": {"value": "call"}}]}})
    assert count == {"count": 3}


def test_text_match_without_index_is_substring(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    api.result("PUT", "/collections/c", IDF_COLLECTION)
    api.result("PUT", "/collections/c/points?wait=true", {"points": [
        {"id": 1, "vector": {"text": sparse({1: 1})}, "payload": {"note": "Friday meeting"}},
        {"id": 2, "vector": {"text": sparse({1: 1})}, "payload": {"note": "friday"}}]})
    got = api.result("POST", "/collections/c/points/scroll",
                     {"filter": {"must": [{"key": "note", "match": {"text": "Friday m"}}]}})
    assert [p["id"] for p in got["points"]] == [1]


# ---------------------------------------------------------------------------
# the spec's own walkthrough (info.description) is accepted
# ---------------------------------------------------------------------------


def test_spec_walkthrough_dense_example(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    assert api.result("PUT", "/collections/test_collection", {"vectors": {"size": 4, "distance": "Dot"}})
    api.result("PUT", "/collections/test_collection/points?wait=true", {"points": [
        {"id": 1, "vector": [0.05, 0.61, 0.76, 0.74], "payload": {"city": "Berlin"}},
        {"id": 2, "vector": [0.19, 0.81, 0.75, 0.11], "payload": {"city": ["Berlin", "London"]}},
        {"id": 3, "vector": [0.36, 0.55, 0.47, 0.94], "payload": {"city": ["Berlin", "Moscow"]}},
        {"id": 4, "vector": [0.18, 0.01, 0.85, 0.80], "payload": {"city": ["London", "Moscow"]}},
        {"id": 5, "vector": [0.24, 0.18, 0.22, 0.44], "payload": {"count": [0]}},
        {"id": 6, "vector": [0.35, 0.08, 0.11, 0.44]}]})
    hits = query(api, "test_collection", {"query": [0.2, 0.1, 0.9, 0.7], "limit": 3})
    assert [h["id"] for h in hits] == [4, 1, 3]  # the spec's expected answer
    assert [round(h["score"], 3) for h in hits] == [1.362, 1.273, 1.208]
    hits = query(api, "test_collection", {"query": [0.2, 0.1, 0.9, 0.7], "limit": 3,
                                          "filter": {"should": [{"key": "city", "match": {"value": "London"}}]}})
    assert [(h["id"], round(h["score"], 3)) for h in hits] == [(4, 1.362), (2, 0.871)]


# ---------------------------------------------------------------------------
# invalid requests are refused and recorded
# ---------------------------------------------------------------------------

P = "/collections/%s/points" % COLL
GOOD_POINT = {"id": 1, "vector": {"text": {"indices": [1], "values": [1.0]}}}
INVALID = [
    # (name, method, path, body, status, kind)
    ("unknown sparse modifier", "PUT", "/collections/x", {"sparse_vectors": {"text": {"modifier": "bm25"}}},
     400, "schema"),
    ("unknown index type", "PUT", "/collections/%s/index" % COLL, {"field_name": "a", "field_schema": "string"},
     400, "schema"),
    ("unknown tokenizer", "PUT", "/collections/%s/index" % COLL,
     {"field_name": "a", "field_schema": {"type": "text", "tokenizer": "words"}}, 400, "schema"),
    ("lowercase as string", "PUT", "/collections/%s/index" % COLL,
     {"field_name": "a", "field_schema": {"type": "text", "lowercase": "yes"}}, 400, "schema"),
    ("index without field_name", "PUT", "/collections/%s/index" % COLL, {"field_schema": "keyword"},
     400, "schema"),
    ("negative point id", "PUT", P, {"points": [{**GOOD_POINT, "id": -1}]}, 400, "schema"),
    ("point id not a uuid", "PUT", P, {"points": [{**GOOD_POINT, "id": "doc-1"}]}, 400, "schema"),
    ("point id as float", "PUT", P, {"points": [{**GOOD_POINT, "id": 1.0}]}, 400, "schema"),
    ("point without vector", "PUT", P, {"points": [{"id": 1, "payload": {}}]}, 400, "schema"),
    ("sparse indices as strings", "PUT", P,
     {"points": [{"id": 1, "vector": {"text": {"indices": ["1"], "values": [1.0]}}}]}, 400, "schema"),
    ("sparse index > u32", "PUT", P,
     {"points": [{"id": 1, "vector": {"text": {"indices": [2**32], "values": [1.0]}}}]}, 400, "schema"),
    ("sparse lengths differ", "PUT", P,
     {"points": [{"id": 1, "vector": {"text": {"indices": [1, 2], "values": [1.0]}}}]}, 422, "validation"),
    ("sparse duplicate indices", "PUT", P,
     {"points": [{"id": 1, "vector": {"text": {"indices": [1, 1], "values": [1.0, 2.0]}}}]}, 422, "validation"),
    ("batch without ids", "PUT", P, {"batch": {"vectors": {"text": []}}}, 400, "schema"),
    ("unknown vector name", "PUT", P,
     {"points": [{"id": 1, "vector": {"txt": {"indices": [1], "values": [1.0]}}}]}, 400, "rejected"),
    ("query limit 0", "POST", P + "/query", {"query": {"indices": [1], "values": [1.0]}, "using": "text",
                                             "limit": 0}, 422, "validation"),
    ("query limit as string", "POST", P + "/query", {"using": "text", "limit": "10"}, 400, "schema"),
    ("query sparse lengths differ", "POST", P + "/query",
     {"query": {"indices": [1, 2], "values": [1.0]}, "using": "text"}, 422, "validation"),
    ("query without using", "POST", P + "/query", {"query": {"indices": [1], "values": [1.0]}},
     400, "rejected"),
    ("filter with unknown clause", "POST", P + "/query", {"filter": {"must_have": []}}, 400, "schema"),
    ("match on a float", "POST", P + "/query",
     {"filter": {"must": [{"key": "time", "match": {"value": 1.5}}]}}, 400, "schema"),
    ("range on a non-date string", "POST", P + "/count",
     {"filter": {"must": [{"key": "time", "range": {"gt": "yesterday"}}]}}, 400, "schema"),
    ("field condition without condition", "POST", P + "/count", {"filter": {"must": [{"key": "time"}]}},
     422, "validation"),
    ("misspelt optional field", "POST", P + "/query", {"using": "text", "with_paylod": True},
     400, "unknown_field"),
    ("misspelt index option", "PUT", "/collections/%s/index" % COLL,
     {"field_name": "a", "field_schema": {"type": "text", "lower_case": True}}, 400, "unknown_field"),
    ("scroll offset not an id", "POST", P + "/scroll", {"offset": "abc"}, 400, "schema"),
    ("upsert with POST hits 'get points'", "POST", P, {"points": [GOOD_POINT]}, 400, "schema"),
    ("delete by neither ids nor filter", "POST", P + "/delete", {"ids": [1]}, 400, "schema"),
    ("unknown route", "GET", "/collections/%s/bogus" % COLL, None, 404, "unknown_route"),
    ("wrong method", "PATCH", P, {"points": []}, 405, "wrong_method"),
    ("unsupported query kind", "POST", P + "/query", {"prefetch": [{"limit": 1}]}, 400, "unsupported"),
    ("unsupported operation", "POST", "/collections/%s/points/payload" % COLL,
     {"payload": {"a": 1}, "points": [1]}, 400, "unsupported"),
]


def test_invalid_requests_are_refused_and_recorded(qdrant_double):
    q = qdrant_double(allow_violations=True)
    api = Api(q)
    lucy_like_setup(api)
    for name, method, path, body, status, kind in INVALID:
        q.clear_logs()
        r = api.call(method, path, body, expect=None)
        assert r.status_code == status, (name, r.status_code, r.text)
        if status != 404 or kind:
            err = r.json()["status"]["error"]
            assert isinstance(err, str) and err and r.json()["time"] == 0.0, name
        v = q.violations()
        assert [x["kind"] for x in v] == [kind], (name, v)
        assert v[0]["method"] == method and v[0]["status"] == status
    # nothing of it reached the store
    assert api.result("POST", P + "/count", {}) == {"count": 0}
    assert "a" not in api.result("GET", "/collections/" + COLL)["payload_schema"]


def test_messages_follow_qdrant(qdrant_double):
    q = qdrant_double(allow_violations=True)
    api = Api(q)
    lucy_like_setup(api)
    r = api.call("PUT", P, {"points": [{"id": 1, "vector": {"text": {"indices": [1, 2], "values": [1.0]}}}]},
                 expect=422)
    assert r.json()["status"]["error"] == ("Validation error in JSON body: [points[0].vector.?.values: "
                                           "Validation error: must be the same length as indices [{}]]")
    r = api.call("POST", P + "/query", {"query": {"indices": [1], "values": [1.0]}, "using": "text", "limit": 0},
                 expect=422)
    assert r.json()["status"]["error"] == "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]"
    r = api.call("PUT", P, {"points": [{"id": "doc-1", "vector": {"text": {"indices": [1], "values": [1]}}}]},
                 expect=400)
    assert r.json()["status"]["error"].startswith("Format error in JSON body: points[0].id")


def test_transport_level_violations(qdrant_double):
    q = qdrant_double(allow_violations=True)
    api = Api(q)
    api.result("PUT", "/collections/c", IDF_COLLECTION)
    url = q.url + "/collections/c/points/count"
    cases = [
        ("no content type", {"data": b"{}", "headers": {"Content-Type": ""}}, "content_type"),
        ("form content type", {"data": b"{}", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
         "content_type"),
        ("empty body", {"data": b"", "headers": {"Content-Type": "application/json"}}, "json"),
        ("broken json", {"data": b"{\"exact\": tru", "headers": {"Content-Type": "application/json"}}, "json"),
        ("NaN", {"data": b"{\"filter\": {\"must\": [{\"key\": \"a\", \"range\": {\"gt\": NaN}}]}}",
                 "headers": {"Content-Type": "application/json"}}, "json"),
        ("duplicate key", {"data": b"{\"exact\": true, \"exact\": false}",
                           "headers": {"Content-Type": "application/json"}}, "json"),
    ]
    for name, kw, kind in cases:
        q.clear_logs()
        r = requests.post(url, timeout=10, **kw)
        assert r.status_code == 400, (name, r.text)
        assert [v["kind"] for v in q.violations()] == [kind], name
    for qs, kind in (("wait=yes", "query_param"), ("wait=1", "query_param"), ("wiat=true", "unknown_query_param"),
                     ("timeout=0", "query_param")):
        q.clear_logs()
        r = api.call("PUT", "/collections/c/index?" + qs, {"field_name": "a", "field_schema": "keyword"},
                     expect=400)
        assert [v["kind"] for v in q.violations()] == [kind], qs
    q.clear_logs()
    api.call("GET", "/collections/c/points/not-an-id", expect=400)
    assert [v["kind"] for v in q.violations()] == ["path_param"]


def test_chunked_body_and_keep_alive(qdrant_double):
    """libcurl may send a chunked body and reuses connections (HTTP/1.1)."""
    q = qdrant_double()
    conn = http.client.HTTPConnection("127.0.0.1", q.port, timeout=10)
    body = json.dumps(IDF_COLLECTION).encode()
    conn.putrequest("PUT", "/collections/chunked")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for part in (body[:5], body[5:]):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["result"] is True
    conn.request("GET", "/collections/chunked")  # same connection
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["result"]["status"] == "green"
    conn.close()


def test_lenient_fields_accepts_what_qdrant_ignores(qdrant_double):
    q = qdrant_double(lenient_fields=True)
    api = Api(q)
    api.result("PUT", "/collections/c", {**IDF_COLLECTION, "comment": "ignored by Qdrant"})
    api.result("POST", "/collections/c/points/query?wiat=true", {"using": "text", "with_paylod": True})


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------


def test_wal_full_fails_updates_not_reads(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    api.result("PUT", "/collections/" + COLL, IDF_COLLECTION)
    q.fault(kind="wal_full", count=2, ops=["create_index"])
    idx = {"field_name": "source", "field_schema": "keyword"}
    for _ in range(2):
        r = api.call("PUT", "/collections/%s/index?wait=true" % COLL, idx, expect=500)
        assert r.json() == WAL_BODY
        # reads and other updates keep working meanwhile
        assert api.result("GET", "/collections/" + COLL)["payload_schema"] == {}
        api.result("PUT", P + "?wait=true", {"points": [GOOD_POINT]})
    api.result("PUT", "/collections/%s/index?wait=true" % COLL, idx)
    assert "source" in api.result("GET", "/collections/" + COLL)["payload_schema"]
    # without count: until cleared; the default ops are all point/index updates
    q.fault(kind="wal_full")
    for method, path, body in (("PUT", P, {"points": [GOOD_POINT]}), ("POST", P + "/delete", {"points": [1]}),
                               ("PUT", "/collections/%s/index" % COLL, idx),
                               ("DELETE", "/collections/%s/index/source" % COLL, None)):
        for _ in range(3):
            assert api.call(method, path, body, expect=500).json() == WAL_BODY
    assert api.result("POST", P + "/count", {}) == {"count": 1}
    assert query(api, COLL, {"query": sparse({1: 1}), "using": "text"})[0]["id"] == 1
    q.fault(kind="clear")
    api.result("POST", P + "/delete?wait=true", {"points": [1]})
    statuses = [r["status"] for r in q.requests() if r["op"] == "upsert"]
    assert statuses == [200, 200, 500, 500, 500]
    with pytest.raises(ValueError):
        q.fault(kind="wal_full", ops=["query"])  # reads are never refused by a real server


def test_hang_delays_the_next_calls(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    q.fault(kind="hang", count=1, seconds=2, ops=["list_collections"])
    api.call("GET", "/healthz")  # not a matching op
    with pytest.raises(requests.exceptions.Timeout):
        api.call("GET", "/collections", timeout=0.3)
    assert api.result("GET", "/collections") == {"collections": []}
    q.fault(kind="hang", count=2, seconds=1.5)
    for _ in range(2):
        with pytest.raises(requests.exceptions.Timeout):
            api.call("GET", "/readyz", timeout=0.3)
    api.call("GET", "/readyz", timeout=5)


def test_garbage_fault_mangles_the_next_answers(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    api.result("PUT", "/collections/" + COLL, IDF_COLLECTION)
    q.fault(kind="garbage", count=1, ops=["upsert"])
    r = api.call("PUT", P + "?wait=true", {"points": [GOOD_POINT]})  # applied, answer cut off
    assert r.text == qd.GARBAGE_BODY and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()
    assert api.result("POST", P + "/count", {}) == {"count": 1}
    q.fault(kind="garbage", count=2, code=502, body="<html>Bad Gateway</html>")
    for _ in range(2):
        assert api.call("GET", "/collections", expect=502).text == "<html>Bad Gateway</html>"
    assert api.result("GET", "/collections") == {"collections": [{"name": COLL}]}
    for bad in ({"kind": "garbage", "code": 99}, {"kind": "garbage", "body": 5},
                {"kind": "garbage", "ops": ["explode"]}):
        with pytest.raises(ValueError):
            q.fault(**bad)


def test_status_fault_colours_the_collection(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    api.result("PUT", "/collections/a", IDF_COLLECTION)
    api.result("PUT", "/collections/b", IDF_COLLECTION)
    q.fault(kind="status", value="red", collection="a", optimizer_error="disk full")
    a = api.result("GET", "/collections/a")
    assert a["status"] == "red" and a["optimizer_status"] == {"error": "disk full"}
    assert api.result("GET", "/collections/b")["status"] == "green"
    q.fault(kind="status", value="yellow")
    assert api.result("GET", "/collections/b")["status"] == "yellow"
    q.fault(kind="clear")
    assert api.result("GET", "/collections/a")["status"] == "green"
    for bad in ({"kind": "status", "value": "purple"}, {"kind": "explode"}, {"kind": "hang"},
                {"kind": "wal_full", "count": 0}, {"kind": "readyz", "code": 500}):
        with pytest.raises(ValueError):
            q.fault(**bad)


def test_stop_and_restart_keep_the_data(qdrant_double):
    q = qdrant_double()
    api = Api(q)
    lucy_like_setup(api)
    api.result("PUT", P + "?wait=true", {"points": [GOOD_POINT]})
    port = q.port
    q.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        api.call("GET", "/readyz", timeout=2)
    q.restart()
    assert q.port == port
    api = Api(q)
    info = api.result("GET", "/collections/" + COLL)
    assert info["points_count"] == 1 and "source" in info["payload_schema"]


def test_api_key(qdrant_double):
    q = qdrant_double(api_key="s3cret")
    url = q.url + "/collections"
    r = requests.get(url, timeout=10)
    assert r.status_code == 401 and r.text == "Must provide an API key or an Authorization bearer token"
    assert requests.get(url, headers={"api-key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(url, headers={"api-key": "s3cret"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
    for open_path in ("/healthz", "/livez", "/readyz"):
        assert requests.get(q.url + open_path, timeout=10).status_code == 200
    assert q.violations() == []  # a refused key is an answer, not a schema violation


def test_aliases_and_named_dense_vectors(qdrant_double):
    """What lucy's dense upgrade needs: a collection with the sparse `text`
    and a named dense vector, aliases resolved in collection paths, atomic
    alias changes, and the refusals a real Qdrant answers."""
    q = qdrant_double(allow_violations=True)
    api = Api(q)
    both = {"sparse_vectors": {"text": {"modifier": "idf"}},
            "vectors": {"dense": {"size": 3, "distance": "Cosine"}}}
    assert api.result("PUT", "/collections/v2", both) is True
    pid = str(uuid.uuid4())
    point = {"id": pid, "vector": {"text": sparse({7: 1.0}), "dense": [1.0, 0.0, 0.0]}, "payload": {}}
    api.result("PUT", "/collections/v2/points?wait=true", {"points": [point]})
    # a dense vector of the wrong size, or a vector name the collection lacks
    bad = dict(point, vector={"dense": [1.0, 0.0]})
    api.call("PUT", "/collections/v2/points", {"points": [bad]}, expect=400)
    bad = dict(point, vector={"other": [1.0, 0.0, 0.0]})
    api.call("PUT", "/collections/v2/points", {"points": [bad]}, expect=400)
    # an alias to a missing collection; an alias named like a collection
    mk = {"actions": [{"create_alias": {"collection_name": "nope", "alias_name": COLL}}]}
    api.call("POST", "/collections/aliases", mk, expect=404)
    api.result("PUT", "/collections/" + COLL, IDF_COLLECTION)
    mk = {"actions": [{"create_alias": {"collection_name": "v2", "alias_name": COLL}}]}
    api.call("POST", "/collections/aliases", mk, expect=400)
    assert api.result("GET", "/aliases") == {"aliases": []}
    # dropped, then the name becomes the alias; paths through it reach v2
    api.result("DELETE", "/collections/" + COLL)
    assert api.result("POST", "/collections/aliases", mk) is True
    assert api.result("GET", "/aliases") == {"aliases": [{"alias_name": COLL, "collection_name": "v2"}]}
    assert api.result("GET", "/collections/v2/aliases")["aliases"][0]["alias_name"] == COLL
    hits = api.result("POST", "/collections/%s/points/query" % COLL,
                      {"query": [0.0, 1.0, 0.0], "using": "dense", "limit": 3})["points"]
    assert [h["id"] for h in hits] == [pid] and abs(hits[0]["score"]) < 1e-9
    api.call("PUT", "/collections/" + COLL, IDF_COLLECTION, expect=409)  # the name is taken
    # a failing action leaves every alias as it was (atomic)
    bad = {"actions": [{"delete_alias": {"alias_name": COLL}},
                       {"delete_alias": {"alias_name": "missing"}}]}
    api.call("POST", "/collections/aliases", bad, expect=404)
    assert len(api.result("GET", "/aliases")["aliases"]) == 1
    # deleting the collection drops its aliases
    api.result("DELETE", "/collections/v2")
    assert api.result("GET", "/aliases") == {"aliases": []}
    # the three 400s (two points, the alias named like a collection) are recorded
    assert [(v["op"], v["status"]) for v in q.violations()] == [("upsert", 400)] * 2 + [
        ("update_aliases", 400)]
