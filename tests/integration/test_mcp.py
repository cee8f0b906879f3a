"""/mcp (DESIGN §14, docs/mcp.md): the Model Context Protocol, revision
2025-11-25, over Streamable HTTP, spoken as raw JSON-RPC by this file and by
the official TypeScript SDK (tests/clients/mcp/).

Every message lucy sends is validated against MCP's published JSON Schema
(tests/mcp/schema-2025-11-25.json), and each tool's structuredContent
against the outputSchema lucy lists for it. The data is real: recordings
remuxed from tests/fixtures/audio under recorder file names that carry a
phone number, scanned and transcribed by pocketsphinx, and a WhatsApp
message from the person with that number; expected words are read back
from lucy's own transcript, never assumed from the recogniser.

Also: the bearer token (401), the per-client API rate limit (429 with
Retry-After, shared by two instances on one real redis-server), the
transport's rules (session header, 202 for notifications, 405 for GET,
DELETE, Origin, protocol version, parse errors).
"""
import json
import os
import shutil
import subprocess

import jsonschema
import pytest

from conftest import FIXTURES, ROOT
from redis_fixture import needs_redis, redis_server  # noqa: F401 (fixture)
from test_calls import make_audio

SCHEMA_PATH = os.path.join(ROOT, "tests", "mcp", "schema-2025-11-25.json")
with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)
CLIENT_DIR = os.path.join(ROOT, "tests", "clients", "mcp")
NODE = shutil.which("node")
TOKEN = "mcp-test-token-0123456789"
# The sender of tests/fixtures/whatsapp/text.json, given a number that
# libphonenumber holds valid so a recorder's file name links it too.
FIXTURE_SENDER = "15550002222"
ALEX = "14155550123"
ALEX_CALL = "+%s_20240301-101500_incoming.m4a" % ALEX
OTHER_CALL = "+442079460018_20240302-111500_outgoing.m4a"
INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test_mcp", "version": "1"}}


def valid(instance, definition):
    """Validates instance against $defs/definition of MCP's schema."""
    jsonschema.validate(instance, {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                                   "$ref": "#/$defs/" + definition})
    return instance


class Session:
    """Raw JSON-RPC over POST /mcp with the session lucy hands out."""

    def __init__(self, lucy, token=None, init=True):
        self.lucy = lucy
        self.headers = {"Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}
        if token:
            self.headers["Authorization"] = "Bearer " + token
        self.next_id = 1
        self.id = None
        if init:
            r = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})
            assert r.status_code == 200, r.text
            self.id = r.headers["MCP-Session-Id"]
            valid(r.json()["result"], "InitializeResult")
            self.headers["MCP-Session-Id"] = self.id
            self.headers["MCP-Protocol-Version"] = r.json()["result"]["protocolVersion"]
            r = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            assert r.status_code == 202 and r.content == b"", r.text

    def post(self, msg, headers=None, raw=None):
        h = dict(self.headers, **(headers or {}))
        return self.lucy.post("/mcp", data=raw if raw is not None else json.dumps(msg), headers=h)

    def call(self, method, params=None, result_type=None):
        """A request; returns the validated result, or the error object."""
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.next_id += 1
        r = self.post(msg)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        body = r.json()
        assert body["id"] == msg["id"]
        if "error" in body:
            return valid(body, "JSONRPCErrorResponse")["error"]
        valid(body, "JSONRPCResultResponse")
        if result_type:
            valid(body["result"], result_type)
        return body["result"]

    def tool(self, name, arguments, schemas):
        """tools/call; a successful result's structuredContent is checked
        against the tool's outputSchema and its text block."""
        res = self.call("tools/call", {"name": name, "arguments": arguments}, "CallToolResult")
        if not res.get("isError"):
            jsonschema.validate(res["structuredContent"], schemas[name])
            assert json.loads(res["content"][0]["text"]) == res["structuredContent"]
        return res


def rpc_error(r, status, code, error_type):
    assert r.status_code == status, r.text
    body = valid(r.json(), "JSONRPCErrorResponse")
    assert body["error"]["code"] == code and body["error"]["data"]["error_type"] == error_type, body
    assert body["error"]["message"]
    return body


def post_fixture(lucy, name):
    with open(os.path.join(FIXTURES, "whatsapp", name), "rb") as f:
        body = f.read().replace(FIXTURE_SENDER.encode(), ALEX.encode())
    r = lucy.post("/webhook/whatsapp", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


@pytest.fixture
def archive(start_lucy, tmp_path):
    """A lucy with two transcribed calls (one with ALEX's number) and ALEX's
    WhatsApp message; returns (lucy, {file name: recording})."""
    d = str(tmp_path / "recordings")
    make_audio(os.path.join(d, ALEX_CALL), src="goforward.m4a")
    make_audio(os.path.join(d, OTHER_CALL), src="librivox-0880.m4a")
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": d, "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
                           "LUCY_API_TOKEN": TOKEN})
    auth = {"Authorization": "Bearer " + TOKEN}
    post_fixture(lucy, "text.json")
    assert lucy.post("/recordings/scan", headers=auth).status_code == 200

    def ready():
        recs = lucy.get("/recordings", params={"limit": 10}, headers=auth).json()["recordings"]
        if len(recs) != 2 or any(r["transcript_status"] != "done" for r in recs):
            return None
        full = {os.path.basename(r["paths"][0]["path"]):
                lucy.get("/recordings/" + r["id"], headers=auth).json() for r in recs}
        # searchable once the indexer took every segment
        stats = lucy.get("/rag/stats", headers=auth).json()
        return full if stats["pending_count"] == 0 else None
    recs = lucy.wait_for(ready, timeout=180, interval=0.3, what="2 recordings transcribed and indexed")
    return lucy, recs


def a_word(rec):
    """The longest word of the recording's own transcript."""
    return max(rec["transcript"]["text"].split(), key=len)


def test_tools_and_resources_on_real_data(archive):
    lucy, recs = archive
    s = Session(lucy, TOKEN)
    assert s.call("ping", None, "EmptyResult") == {}

    listed = s.call("tools/list", {}, "ListToolsResult")["tools"]
    names = [t["name"] for t in listed]
    assert names == ["search", "get_transcript", "get_person", "list_calls", "ask"]
    schemas = {}
    for t in listed:
        jsonschema.Draft202012Validator.check_schema(t["inputSchema"])
        jsonschema.Draft202012Validator.check_schema(t["outputSchema"])
        assert t["outputSchema"]["type"] == "object" and t["annotations"]["readOnlyHint"] is True
        schemas[t["name"]] = t["outputSchema"]

    alex_rec, other_rec = recs[ALEX_CALL], recs[OTHER_CALL]
    alex = alex_rec["call"]["person"]["id"]

    # search: a word of the call finds it, linked as a resource
    word = a_word(alex_rec)
    res = s.tool("search", {"query": word}, schemas)
    sc = res["structuredContent"]
    hit = next(h for h in sc["hits"] if h["id"] == alex_rec["id"])
    assert hit["source"] == "call_recording" and hit["uri"] == "lucy://recordings/" + alex_rec["id"]
    links = [c for c in res["content"] if c["type"] == "resource_link"]
    assert hit["uri"] in [l["uri"] for l in links]
    # ... filtered to another person's calls it is gone; to Alex's it stays
    res = s.tool("search", {"query": word, "person_id": alex}, schemas)
    assert alex_rec["id"] in [h["id"] for h in res["structuredContent"]["hits"]]
    other_word = a_word(other_rec)
    res = s.tool("search", {"query": other_word, "person_id": alex}, schemas)
    assert other_rec["id"] not in [h["id"] for h in res["structuredContent"]["hits"]]
    # ... and by time: the calls are from 2024-03-01 and 2024-03-02
    res = s.tool("search", {"query": other_word, "from": "2024-03-02"}, schemas)
    assert other_rec["id"] in [h["id"] for h in res["structuredContent"]["hits"]]
    res = s.tool("search", {"query": other_word, "to": "2024-03-01"}, schemas)
    assert other_rec["id"] not in [h["id"] for h in res["structuredContent"]["hits"]]
    # ... the message is found too, linked to its person
    res = s.tool("search", {"query": "invoice", "source": "whatsapp"}, schemas)
    msg_hit = res["structuredContent"]["hits"][0]
    assert msg_hit["source"] == "whatsapp" and msg_hit["uri"] == "lucy://people/%d" % alex
    assert msg_hit["speaker"] == alex  # its sender (test_search_speakers: calls' speakers)
    for bad in ({}, {"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "from": "yesterday"},
                {"query": "x", "source": "email"}, {"query": "x", "colour": "red"},
                {"query": "x", "person_id": 999999}):
        res = s.tool("search", bad, schemas)
        assert res["isError"] is True and res["content"][0]["text"], bad

    # get_transcript: whole, then a window
    segs = alex_rec["transcript"]["segments"]
    res = s.tool("get_transcript", {"recording_id": alex_rec["id"]}, schemas)
    sc = res["structuredContent"]
    assert sc["segments"] == segs and sc["uri"] == "lucy://recordings/" + alex_rec["id"]
    assert res["content"][1]["type"] == "resource_link"
    first = segs[0]
    res = s.tool("get_transcript", {"recording_id": alex_rec["id"], "t0_ms": first["t0_ms"],
                                    "t1_ms": first["t0_ms"]}, schemas)
    window = res["structuredContent"]["segments"]
    assert first in window and all(x["t0_ms"] <= first["t0_ms"] <= x["t1_ms"] for x in window)
    res = s.tool("get_transcript", {"recording_id": alex_rec["id"], "t0_ms": 10 ** 9}, schemas)
    assert res["structuredContent"]["segments"] == [] and res["structuredContent"]["text"] == ""
    for bad in ({"recording_id": "nope"}, {"recording_id": "0" * 64},
                {"recording_id": alex_rec["id"], "t0_ms": 5, "t1_ms": 1},
                {"recording_id": alex_rec["id"], "t0_ms": -1}):
        res = s.tool("get_transcript", bad, schemas)
        assert res["isError"] is True, bad

    # get_person: identifiers and the timeline holding both the call and the message
    res = s.tool("get_person", {"person_id": alex}, schemas)
    p = res["structuredContent"]
    assert ("phone", "+" + ALEX) in [(i["kind"], i["value"]) for i in p["identifiers"]]
    kinds = sorted(i["kind"] for i in p["timeline"])
    assert kinds == ["call", "message"]
    assert "lucy://recordings/" + alex_rec["id"] in [c.get("uri") for c in res["content"]]
    res = s.tool("get_person", {"person_id": alex, "timeline_limit": 1}, schemas)
    assert len(res["structuredContent"]["timeline"]) == 1 and res["structuredContent"]["timeline_more"]
    for bad in ({}, {"person_id": 999999}, {"person_id": "one"}):
        assert s.tool("get_person", bad, schemas)["isError"] is True, bad

    # list_calls: newest first, oldest first, by person, by time, paged
    ids = lambda res: [c["recording_id"] for c in res["structuredContent"]["calls"]]  # noqa: E731
    assert ids(s.tool("list_calls", {}, schemas)) == [other_rec["id"], alex_rec["id"]]
    assert ids(s.tool("list_calls", {"order": "oldest"}, schemas)) == [alex_rec["id"], other_rec["id"]]
    assert ids(s.tool("list_calls", {"person_id": alex}, schemas)) == [alex_rec["id"]]
    assert ids(s.tool("list_calls", {"to": "2024-03-01"}, schemas)) == [alex_rec["id"]]
    page = s.tool("list_calls", {"limit": 1}, schemas)["structuredContent"]
    assert page["next_cursor"] == other_rec["id"]
    rest = s.tool("list_calls", {"limit": 1, "cursor": page["next_cursor"]}, schemas)
    assert ids(rest) == [alex_rec["id"]] and rest["structuredContent"]["next_cursor"] is None
    for bad in ({"limit": 101}, {"order": "random"}, {"cursor": "x"}, {"person_id": 999999},
                {"from": "2024-03-02", "to": "2024-03-01"}):
        assert s.tool("list_calls", bad, schemas)["isError"] is True, bad

    # ask: the engine of /ask (no LLM here: the extractive answer), its
    # citations verified and linked to their recording at t0_ms
    res = s.tool("ask", {"question": "what was said about " + word + "?"}, schemas)
    sc = res["structuredContent"]
    cited = [c for c in sc["lucy"]["citations"] if c["id"] == alex_rec["id"]]
    assert cited and cited[0]["verified"] and "[%d]" % cited[0]["n"] in sc["answer"], sc
    assert cited[0]["t0_ms"] in [x["t0_ms"] for x in segs]
    assert sc["lucy"]["retrieval"]["llm"] == "not_configured"
    link = next(c for c in res["content"] if c["type"] == "resource_link"
                and c["uri"] == "lucy://recordings/" + alex_rec["id"])
    assert "t0_ms %d" % cited[0]["t0_ms"] in link["description"]
    # ... the person and time arguments filter what it may cite
    res = s.tool("ask", {"question": "what was said about " + other_word + "?", "person_id": alex},
                 schemas)
    assert other_rec["id"] not in [c["id"] for c in res["structuredContent"]["lucy"]["citations"]]
    assert res["structuredContent"]["lucy"]["retrieval"]["filters"]["person"]["id"] == alex
    res = s.tool("ask", {"question": "what was said about " + other_word + "?",
                         "to": "2024-03-01"}, schemas)
    assert other_rec["id"] not in [c["id"] for c in res["structuredContent"]["lucy"]["citations"]]
    res = s.tool("ask", {"question": "what was said about " + other_word + "?",
                         "from": "2024-03-02"}, schemas)
    assert other_rec["id"] in [c["id"] for c in res["structuredContent"]["lucy"]["citations"]]
    for bad in ({}, {"question": ""}, {"question": "x" * 4001}, {"question": "x", "person_id": 999999},
                {"question": "x", "from": "2024-03-02", "to": "2024-03-01"}):
        res = s.tool("ask", bad, schemas)
        assert res["isError"] is True and res["content"][0]["text"], bad

    # an unknown tool is a protocol error
    err = s.call("tools/call", {"name": "delete_everything", "arguments": {}})
    assert err["code"] == -32602

    # resources
    listed = s.call("resources/list", {}, "ListResourcesResult")["resources"]
    assert [r["uri"] for r in listed] == ["lucy://recordings/" + other_rec["id"],
                                          "lucy://recordings/" + alex_rec["id"]]
    # a cursor continues after its recording; one lucy did not give is invalid params
    after = s.call("resources/list", {"cursor": other_rec["id"]}, "ListResourcesResult")
    assert [r["uri"] for r in after["resources"]] == ["lucy://recordings/" + alex_rec["id"]]
    for bad in ("x", 12, "0" * 64, other_rec["id"].upper(), ""):
        err = s.call("resources/list", {"cursor": bad})
        assert err["code"] == -32602 and "nextCursor" in err["message"], (bad, err)
    tpl = s.call("resources/templates/list", {}, "ListResourceTemplatesResult")
    assert {t["uriTemplate"] for t in tpl["resourceTemplates"]} == {
        "lucy://recordings/{id}", "lucy://people/{id}"}
    read = s.call("resources/read", {"uri": "lucy://recordings/" + alex_rec["id"]}, "ReadResourceResult")
    doc = json.loads(read["contents"][0]["text"])
    assert doc["id"] == alex_rec["id"] and doc["transcript"]["segments"] == segs
    read = s.call("resources/read", {"uri": "lucy://people/%d" % alex}, "ReadResourceResult")
    assert json.loads(read["contents"][0]["text"])["id"] == alex
    for uri in ("lucy://people/999999", "lucy://recordings/" + "0" * 64, "lucy://people/x",
                "file:///etc/passwd"):
        assert s.call("resources/read", {"uri": uri})["code"] == -32002, uri
    assert s.call("resources/read", {})["code"] == -32602
    assert s.call("prompts/list")["code"] == -32601


def test_transport_rules(start_lucy):
    lucy = start_lucy()
    s = Session(lucy, init=False)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    # before initialize: no session
    rpc_error(s.post(ping), 400, -32600, "bad_request")
    s = Session(lucy)
    assert s.call("ping") == {}
    # a response or a notification: 202 and no body
    r = s.post({"jsonrpc": "2.0", "id": 7, "result": {}})
    assert r.status_code == 202 and r.content == b""
    r = s.post({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
    assert r.status_code == 202 and r.content == b""
    # bad JSON, batches, not JSON-RPC
    rpc_error(s.post(None, raw="{\"jsonrpc\": \"2.0\", "), 400, -32700, "bad_request")
    rpc_error(s.post([ping, ping]), 400, -32600, "bad_request")
    rpc_error(s.post({"id": 1, "method": "ping"}), 400, -32600, "bad_request")
    rpc_error(s.post({"jsonrpc": "2.0", "id": None, "method": "ping"}), 400, -32600, "bad_request")
    rpc_error(s.post(ping, headers={"Content-Type": "text/plain"}), 415, -32600, "unsupported_media")
    rpc_error(s.post(ping, headers={"MCP-Protocol-Version": "1999-01-01"}), 400, -32600, "bad_request")
    # Origin: loopback pages pass, other sites are refused
    assert s.post(ping, headers={"Origin": "http://localhost:3000"}).status_code == 200
    rpc_error(s.post(ping, headers={"Origin": "http://evil.example"}), 403, -32600, "forbidden")
    rpc_error(s.post(ping, headers={"Origin": "http://localhost.evil.example"}), 403, -32600,
              "forbidden")
    # no server-initiated stream
    r = lucy.get("/mcp", headers={"Accept": "text/event-stream"})
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    # an unknown session, then DELETE ends ours
    rpc_error(s.post(ping, headers={"MCP-Session-Id": "0" * 32}), 404, -32600, "not_found")
    r = lucy.request("DELETE", "/mcp", headers=s.headers)
    assert r.status_code == 204, r.text
    rpc_error(s.post(ping), 404, -32600, "not_found")
    # initialize with a version lucy does not speak: lucy answers with its own
    r = s.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": dict(INIT, protocolVersion="2099-01-01")},
               headers={"MCP-Session-Id": "", "MCP-Protocol-Version": "2025-11-25"})
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"


def test_origins_option_admits_a_listed_site(start_lucy):
    lucy = start_lucy(env={"LUCY_MCP_ORIGINS": "https://agent.example, https://b.example:8443"})
    s = Session(lucy)
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert s.post(ping, headers={"Origin": "https://b.example:8443"}).status_code == 200
    rpc_error(s.post(ping, headers={"Origin": "https://b.example"}), 403, -32600, "forbidden")


def test_token_required(start_lucy):
    lucy = start_lucy(env={"LUCY_API_TOKEN": TOKEN})
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT})
    for auth in (None, "Bearer wrong"):
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = auth
        r = lucy.post("/mcp", data=body, headers=h)
        assert r.status_code == 401 and r.json()["error_type"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert Session(lucy, TOKEN).call("ping") == {}


def over_limit(lucy, path, headers=None, method="POST", n=1):
    """Sends requests until one is a 429; returns it (None: never)."""
    for _ in range(n):
        r = lucy.request(method, path, data="{}", headers=dict({"Content-Type": "application/json"},
                                                             **(headers or {})))
        if r.status_code == 429:
            return r
    return None


def test_rate_limit_per_client(start_lucy):
    # per hour: one request is allowed back only after 20 minutes, so no
    # slowness of the machine can refill the budget within the test
    lucy = start_lucy(env={"LUCY_RATE_LIMIT": "3/hour", "LUCY_API_TOKEN": TOKEN})
    auth = {"Authorization": "Bearer " + TOKEN}
    ok = [lucy.post("/mcp", data="{}", headers=dict(auth, **{"Content-Type": "application/json"}))
          for _ in range(3)]
    assert [r.status_code for r in ok] == [400, 400, 400]  # not JSON-RPC, but served
    r = over_limit(lucy, "/mcp", auth)
    assert r is not None and r.json()["error_type"] == "rate_limited"
    wait_s = int(r.headers["Retry-After"])
    assert 1100 <= wait_s <= 1200 and r.json()["retry_after_s"] == wait_s
    assert "LUCY_RATE_LIMIT=3/hour" in r.json()["message"]
    # a wrong token is refused before it can spend anyone's budget
    assert lucy.post("/mcp", data="{}", headers={"Authorization": "Bearer x"}).status_code == 401
    # routes outside /v1/*, /ask, /mcp are not limited
    assert all(lucy.get("/recordings", headers=auth).status_code == 200 for _ in range(6))


def test_rate_limit_without_a_token_is_per_address(start_lucy):
    """Without LUCY_API_TOKEN no bearer string is checked, so a new made-up
    one per request must not be a new budget: the client is its address."""
    lucy = start_lucy(env={"LUCY_RATE_LIMIT": "3/hour"})
    codes = [lucy.get("/ask", params={"q": "x"}, headers={"Authorization": "Bearer t%d" % i})
             .status_code for i in range(5)]
    assert codes[:3] == [200] * 3 and codes[3:] == [429] * 2, codes


def test_rate_limit_counters_of_the_embedded_kv_are_not_written_to_the_store(start_lucy):
    """The API limiter's GCRA state needs no durability: with the embedded
    kv it stays in memory, so a limited request costs no store write (a
    group commit and its fsync); the decisions are the same."""
    import sqlite3
    lucy = start_lucy(env={"LUCY_RATE_LIMIT": "3/hour", "LUCY_API_TOKEN": TOKEN})
    h = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}
    codes = [lucy.post("/mcp", data="{}", headers=h).status_code for _ in range(5)]
    assert codes == [400, 400, 400, 429, 429], codes
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(lucy.data_dir, "lucy.db"), uri=True)
    try:
        rows = con.execute("SELECT key FROM kv_ratelimit WHERE key LIKE 'api:%'").fetchall()
    finally:
        con.close()
    assert rows == [], rows


@needs_redis
def test_rate_limit_shared_by_two_instances_on_redis(start_lucy, redis_server):
    redis = redis_server()
    env = {"LUCY_RATE_LIMIT": "4/hour", "REDIS_URL": redis.url, "LUCY_API_TOKEN": TOKEN}
    a, b = start_lucy(env=env), start_lucy(env=env)
    auth = {"Authorization": "Bearer " + TOKEN}
    h = dict(auth, **{"Content-Type": "application/json"})
    codes = [x.post("/mcp", data="{}", headers=h).status_code for x in (a, b, a, b)]
    assert codes == [400] * 4
    # the budget is spent on both: each instance now refuses
    for x in (a, b):
        r = x.post("/mcp", data="{}", headers=h)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text
    # the key is the token's digest, never the token
    keys = str(redis.cli("KEYS", "*"))
    assert "api:t:" in keys and TOKEN not in keys, keys


@pytest.mark.skipif(not NODE, reason="node is not installed (it comes with the machine image)")
def test_official_typescript_sdk(archive):
    lucy, recs = archive
    if not os.path.exists(os.path.join(CLIENT_DIR, "node_modules", "@modelcontextprotocol", "sdk",
                                       "package.json")):
        p = subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=CLIENT_DIR,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, "npm ci failed in tests/clients/mcp:\n" + p.stdout + p.stderr
    alex_rec = recs[ALEX_CALL]
    p = subprocess.run([NODE, os.path.join(CLIENT_DIR, "client.mjs"), lucy.url + "/mcp", TOKEN,
                        a_word(alex_rec), alex_rec["id"]],
                       cwd=CLIENT_DIR, capture_output=True, text=True, timeout=120)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["tools"] == ["search", "get_transcript", "get_person", "list_calls", "ask"]
    assert alex_rec["id"] in out["search_ids"]
    assert alex_rec["id"] in out["ask_cited_ids"] and out["ask_verified"] is True
    assert out["transcript_segments"] == len(alex_rec["transcript"]["segments"])
    assert out["person_name"] and out["calls"] == 2
    assert out["resource_id"] == alex_rec["id"]
