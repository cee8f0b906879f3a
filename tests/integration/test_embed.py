"""Dense embeddings (DESIGN §14 Retrieval): documents get vectors from an
OpenAI-compatible /embeddings server through the embedder thread; nothing
is lost while that server is down (documents stay due, /rag/stats says
how many and why, lucy_index_similar is degraded), the vectors are filled
in when it is back, and lucy_index_similar ranks by meaning.

The server is a stand-in written here (no model can run on the build
machines): a hashed bag of words, so texts that share words are close. It
validates every request lucy sends, and every reply it returns, against the
published OpenAI schemas copied into tests/embed/. Documents are fed with
tests/tools/outbox_put like a producer; lucy_index_similar is called by
tests/tools/similar exactly as the ask engine will call it.
"""
import json
import os
import re
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from conftest import BUILD_DIR, ROOT, SAN_ENV, Lucy

OUTBOX_PUT = os.path.join(BUILD_DIR, "tests", "tools", "outbox_put")
SIMILAR = os.path.join(BUILD_DIR, "tests", "tools", "similar")
with open(os.path.join(ROOT, "tests", "embed", "openai-embeddings.json")) as f:
    OPENAI = json.load(f)
DIM = 64
MODEL = "bag-of-words-test"


def check(instance, name):
    jsonschema.validate(instance, {"$ref": "#/components/schemas/" + name,
                                   "components": OPENAI["components"]})


def embed(text):
    v = [0.0] * DIM
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        v[zlib.crc32(w.encode()) % DIM] += 1.0
    return v


class EmbeddingServer:
    """POST /v1/embeddings; `down` makes it answer 503."""

    def __init__(self):
        self.down = False
        self.requests = 0
        self.errors = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                if outer.down:
                    return self.reply(503, {"error": {"message": "loading model"}})
                try:
                    req = json.loads(body)
                    assert self.path == "/v1/embeddings", self.path
                    check(req, "CreateEmbeddingRequest")
                    assert req["model"] == MODEL
                    texts = req["input"] if isinstance(req["input"], list) else [req["input"]]
                except (AssertionError, ValueError, jsonschema.ValidationError) as e:
                    outer.errors.append(str(e)[:500])
                    return self.reply(400, {"error": {"message": str(e)[:200]}})
                rep = {"object": "list", "model": MODEL,
                       "data": [{"object": "embedding", "index": i, "embedding": embed(t)}
                                for i, t in enumerate(texts)],
                       "usage": {"prompt_tokens": 1, "total_tokens": 1}}
                check(rep, "CreateEmbeddingResponse")
                self.reply(200, rep)

            def reply(self, status, doc):
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/v1" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def embedder():
    s = EmbeddingServer()
    yield s
    s.close()
    assert not s.errors, s.errors


DOCS = [
    ("call_recording", "a" * 64, 0, "the train to london leaves from platform three"),
    ("call_recording", "a" * 64, 1, "please send the invoice for march"),
    ("whatsapp", "wamid.1", 0, "the invoice is paid thank you"),
    ("whatsapp", "wamid.2", 0, "dinner at eight tonight"),
    ("call_recording", "b" * 64, 0, "which platform does the london train use"),
]


def feed(data_dir):
    lines = "".join(json.dumps({"source": s, "id": i, "segment": g, "text": t, "title": "t",
                                "time": 1717171200 + n}) + "\n"
                    for n, (s, i, g, t) in enumerate(DOCS))
    p = subprocess.run([OUTBOX_PUT, data_dir], input=lines, capture_output=True, text=True,
                       env=dict(os.environ, **SAN_ENV), timeout=60)
    assert p.returncode == 0, p.stderr


def similar(lucy, query, limit=3):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    env.update(SAN_ENV)
    env.update({"LUCY_DATA_DIR": lucy.data_dir, "LUCY_EMBED_URL": lucy.env["LUCY_EMBED_URL"],
                "LUCY_EMBED_MODEL": MODEL})
    p = subprocess.run([SIMILAR, query, str(limit)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def embeddings(lucy):
    return lucy.get("/rag/stats").json()["embeddings"]


def test_vectors_wait_for_the_server_then_rank_by_meaning(start_lucy, embedder):
    embedder.down = True
    lucy = start_lucy(env={"LUCY_EMBED_URL": embedder.url, "LUCY_EMBED_MODEL": MODEL})
    feed(lucy.data_dir)
    # down: nothing is lost, the documents wait, and the reason is shown
    e = lucy.wait_for(lambda: (lambda e: e if e["pending"] == len(DOCS) and e["last_error"] else None)(
        embeddings(lucy)), timeout=60, what="embedding failures reported")
    assert e["vectors"] == 0 and "503" in e["last_error"] and e["model"] == MODEL
    r = similar(lucy, "platform train")
    assert r["degraded"] is True and r["hits"] == [] and r["degraded_reason"]
    # back: every document gets its vector
    embedder.down = False
    lucy.wait_for(lambda: (lambda e: e["pending"] == 0 and e["vectors"] == len(DOCS)
                           and e["last_error"] is None)(embeddings(lucy)),
                  timeout=90, interval=0.3, what="vectors filled in")
    r = similar(lucy, "which platform for the london train", limit=2)
    assert r["degraded"] is False and r["backend"] == "dense"
    assert {(h["id"], h["segment"]) for h in r["hits"]} == {("a" * 64, 0), ("b" * 64, 0)}
    assert r["hits"][0]["score"] >= r["hits"][1]["score"] > 0
    r = similar(lucy, "invoice", limit=2)
    assert {(h["id"], h["segment"]) for h in r["hits"]} == {("a" * 64, 1), ("wamid.1", 0)}
    # a changed document is embedded again; a deleted one leaves the ranking
    p = subprocess.run([OUTBOX_PUT, lucy.data_dir],
                       input=json.dumps({"op": "delete", "source": "whatsapp", "id": "wamid.1"}) + "\n",
                       capture_output=True, text=True, env=dict(os.environ, **SAN_ENV), timeout=60)
    assert p.returncode == 0, p.stderr
    lucy.wait_for(lambda: embeddings(lucy)["vectors"] == len(DOCS) - 1, timeout=60,
                  what="the deleted document's vector swept")
    assert [h["id"] for h in similar(lucy, "invoice paid", limit=5)["hits"]].count("wamid.1") == 0


def test_url_without_model_refuses_to_start(tmp_path, embedder):
    lucy = Lucy(str(tmp_path / "d"), env={"LUCY_EMBED_URL": embedder.url},
                log_path=str(tmp_path / "l.log"))
    with pytest.raises(RuntimeError) as e:
        lucy.start(timeout=30)
    assert "LUCY_EMBED_MODEL" in str(e.value)
