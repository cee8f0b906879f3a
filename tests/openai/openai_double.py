#!/usr/bin/env python3
"""An OpenAI-compatible test double for lucy's LLM and embedding clients.

No model server can run on the machines lucy is tested on, so lucy's
`src/llm/` clients talk to this process. It is strict: every request is
validated against OpenAI's published OpenAPI description (openapi.json,
see README.md and schema.py) before anything else, and every reply it sends
is validated too; a failure of either is recorded as a violation
(GET /__double__/violations) and the request is answered 400 the way
OpenAI answers ({"error": {"message", "type", "param", "code"}}).

Routes (the base URL is http://127.0.0.1:PORT/v1, as for OpenAI):
  POST /v1/chat/completions  CreateChatCompletionRequest ->
                             CreateChatCompletionResponse, or with
                             "stream": true server-sent events of
                             CreateChatCompletionStreamResponse chunks and a
                             final `data: [DONE]`, as OpenAI sends them.
  POST /v1/embeddings        CreateEmbeddingRequest -> CreateEmbeddingResponse:
                             a hashed bag of words (DIM dimensions, each word
                             lower-cased and hashed with SHA-256 to one
                             dimension, L2-normalised), so texts that share
                             words are close by cosine similarity.
  GET  /v1/models            ListModelsResponse.

The answer is deterministic from the request. lucy's prompt numbers its
sources as lines "[n] label" followed by the source's text (docs/ask.md);
the double takes source [1]'s first text line, quotes its first sentence
(at most QUOTE_WORDS words) and cites it:
    According to the sources, "<quote>" [1].
With no numbered source in the prompt it answers "I found nothing." and
cites nothing.

Faults (POST /__double__/fault {"kind": K, "count": N, "seconds": S};
count = how many chat/embedding requests it applies to, default all;
{"kind": "clear"} removes every fault):
  down      the connection is closed without an answer
  hang      waits S seconds (default 30) before answering
  status500 answers 500 with OpenAI's error body
  garbage   answers 200 with a body that is not JSON
  cite7     the answer cites [7] (lucy gives five sources or fewer)
  misquote  the answer quotes words that occur in no source, citing [1]
  nocite    the answer cites nothing
  hold      a streamed answer stops after its first content piece until
            POST /__double__/release (the client sees an LLM that is
            still generating, for as long as a test needs)
  cutoff    a streamed answer stops after its first half and the
            connection is closed without finish_reason or [DONE] (an LLM
            failing midway)
Faults that shape the answer (cite7, misquote, nocite) are the double
misbehaving on purpose; its reply still follows the schema.

Control endpoints: GET /__double__/fault, GET /__double__/requests (every
API request: method, path, body, status), GET /__double__/violations,
POST /__double__/release (held streams go on; later ones are held again
while a hold fault is in force), GET /__double__/streams ({"held": streams
waiting now, "finished": streamed answers sent to the end}).
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schema  # noqa: E402

DIM = 256
QUOTE_WORDS = 12
MODELS = ["double-chat", "double-embed"]
ANSWER_FAULTS = ("cite7", "misquote", "nocite")
STREAM_FAULTS = ("hold", "cutoff")
WIRE_FAULTS = ("down", "hang", "status500", "garbage")


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []  # [{"kind", "count" (None = forever), "seconds"}]
        self.requests = []
        self.violations = []
        self.counter = 0
        self.release = threading.Condition(self.lock)
        self.generation = 0  # bumped by each release
        self.held = 0  # streams waiting for a release now
        self.finished = 0  # streamed answers sent to the end

    def take_fault(self, kinds):
        """The first fault in force of one of kinds, counting it down."""
        with self.lock:
            for f in self.faults:
                if f["kind"] in kinds and (f["count"] is None or f["count"] > 0):
                    if f["count"] is not None:
                        f["count"] -= 1
                    return dict(f)
        return None

    def next_id(self):
        with self.lock:
            self.counter += 1
            return self.counter


STATE = State()


# ---- answers -----------------------------------------------------------------

def prompt_text(messages):
    """All text of the messages, system and user alike."""
    out = []
    for m in messages:
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out.extend(p.get("text", "") for p in c if isinstance(p, dict))
    return "\n".join(out)


def first_source_text(text):
    """The first text line after the "[1] label" line, or None."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("[1] "):
            for nxt in lines[i + 1:]:
                if nxt.strip():
                    return nxt.strip()
            return None
    return None


def quote_of(src):
    sentence = re.split(r"(?<=[.!?])\s", src, maxsplit=1)[0].rstrip(".!?")
    return " ".join(sentence.split()[:QUOTE_WORDS])


def answer_for(messages, fault):
    src = first_source_text(prompt_text(messages))
    kind = fault["kind"] if fault else None
    if src is None or kind == "nocite":
        return "I found nothing."
    if kind == "misquote":
        return 'According to the sources, "purple elephants negotiate the zeppelin treaty" [1].'
    n = 7 if kind == "cite7" else 1
    return 'According to the sources, "%s" [%d].' % (quote_of(src), n)


def embedding(text):
    v = [0.0] * DIM
    for w in re.findall(r"\w+", text.lower()):
        v[int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "big") % DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v] if norm else v


def openai_error(message, type_="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ---- HTTP ----------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _violation(self, kind, error, body=None):
        with STATE.lock:
            STATE.violations.append({"path": self.path, "kind": kind, "error": error,
                                     "body": body})

    def _checked(self, schema_name, obj):
        """obj, after recording a violation if it does not match schema_name."""
        errs = schema.validate(schema_name, obj)
        if errs:
            self._violation("reply", "%s: %s" % (schema_name, "; ".join(errs[:5])), obj)
        return obj

    def _serve(self, method):
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        if path.startswith("/__double__/"):
            return self._control(method, path[len("/__double__/"):], raw)
        routes = {("POST", "/v1/chat/completions"): ("CreateChatCompletionRequest", self._chat),
                  ("POST", "/v1/embeddings"): ("CreateEmbeddingRequest", self._embeddings),
                  ("GET", "/v1/models"): (None, self._models)}
        route = routes.get((method, path))
        entry = {"method": method, "path": path, "body": None, "status": None,
                 "authorization": self.headers.get("Authorization")}
        with STATE.lock:
            STATE.requests.append(entry)
        if not route:
            self._violation("route", "%s %s is not served" % (method, path))
            entry["status"] = 404
            return self._send(404, openai_error("Unknown request URL: %s %s" % (method, path)))
        schema_name, fn = route
        body = None
        if schema_name:
            try:
                body = json.loads(raw)
            except ValueError as e:
                self._violation("json", str(e), raw.decode(errors="replace"))
                entry["status"] = 400
                return self._send(400, openai_error("We could not parse the JSON body: %s" % e))
            entry["body"] = body
            ctype = self.headers.get("Content-Type", "")
            if not ctype.startswith("application/json"):
                self._violation("content_type", ctype)
            errs = schema.validate(schema_name, body)
            if errs:
                self._violation("request", "; ".join(errs[:5]), body)
                entry["status"] = 400
                return self._send(400, openai_error("Invalid request: " + errs[0]))
        fault = STATE.take_fault(WIRE_FAULTS) if schema_name else None
        if fault and fault["kind"] == "down":
            entry["status"] = 0
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        if fault and fault["kind"] == "hang":
            time.sleep(fault.get("seconds") or 30)
        if fault and fault["kind"] == "status500":
            entry["status"] = 500
            return self._send(500, openai_error("The server had an error while processing your "
                                                "request.", "server_error"))
        if fault and fault["kind"] == "garbage":
            entry["status"] = 200
            return self._send(200, b"<html>502 Bad Gateway</html>{{{")
        entry["status"] = 200
        try:
            return fn(body)
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _chat(self, body):
        fault = STATE.take_fault(ANSWER_FAULTS)
        text = answer_for(body["messages"], fault)
        cid = "chatcmpl-double-%d" % STATE.next_id()
        created = int(time.time())
        model = body["model"]
        if not body.get("stream"):
            reply = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                     "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                  "message": {"role": "assistant", "content": text,
                                              "refusal": None, "annotations": []}}],
                     "usage": {"prompt_tokens": len(prompt_text(body["messages"]).split()),
                               "completion_tokens": len(text.split()),
                               "total_tokens": len(prompt_text(body["messages"]).split())
                               + len(text.split())}}
            return self._send(200, self._checked("CreateChatCompletionResponse", reply))
        # As OpenAI streams: a first chunk with the role, content pieces, a
        # last chunk with finish_reason and an empty delta, then [DONE].
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, finish=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": created,
                 "model": model, "system_fingerprint": "double",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}]}
            self._checked("CreateChatCompletionStreamResponse", c)
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.flush()

        pace = STATE.take_fault(STREAM_FAULTS)
        chunk({"role": "assistant", "content": "", "refusal": None})
        pieces = re.findall(r"\S+\s*", text)
        for i, piece in enumerate(pieces):
            chunk({"content": piece})
            if pace and pace["kind"] == "hold" and i == 0:
                with STATE.lock:
                    gen = STATE.generation
                    STATE.held += 1
                    STATE.release.wait_for(lambda: STATE.generation != gen, timeout=300)
                    STATE.held -= 1
            if pace and pace["kind"] == "cutoff" and i + 1 >= len(pieces) // 2:
                self.close_connection = True
                self.connection.shutdown(2)
                return None
        chunk({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        with STATE.lock:
            STATE.finished += 1
        return None

    def _embeddings(self, body):
        inp = body["input"]
        texts = [inp] if isinstance(inp, str) else inp
        if any(not isinstance(t, str) for t in texts):
            return self._send(400, openai_error("the double embeds strings only", param="input"))
        data = [{"object": "embedding", "index": i, "embedding": embedding(t)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        reply = {"object": "list", "model": body["model"], "data": data,
                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return self._send(200, self._checked("CreateEmbeddingResponse", reply))

    def _models(self, _body):
        reply = {"object": "list",
                 "data": [{"id": m, "object": "model", "created": 0, "owned_by": "double"}
                          for m in MODELS]}
        return self._send(200, self._checked("ListModelsResponse", reply))

    def _control(self, method, name, raw):
        if name == "fault" and method == "POST":
            cmd = json.loads(raw or b"{}")
            kind = cmd.get("kind")
            if kind == "clear":
                with STATE.lock:
                    STATE.faults.clear()
                return self._send(200, {"faults": []})
            if kind not in WIRE_FAULTS + ANSWER_FAULTS + STREAM_FAULTS:
                return self._send(400, {"error": "unknown fault kind %r" % kind})
            with STATE.lock:
                STATE.faults.append({"kind": kind, "count": cmd.get("count"),
                                     "seconds": cmd.get("seconds")})
                return self._send(200, {"faults": STATE.faults})
        if name == "release" and method == "POST":
            with STATE.lock:
                STATE.generation += 1
                STATE.release.notify_all()
            return self._send(200, {"released": True})
        views = {"fault": lambda: STATE.faults, "requests": lambda: STATE.requests,
                 "violations": lambda: STATE.violations,
                 "streams": lambda: {"held": STATE.held, "finished": STATE.finished}}
        if method == "GET" and name in views:
            with STATE.lock:
                return self._send(200, json.loads(json.dumps(views[name]())))
        return self._send(404, {"error": "no control endpoint %s %s" % (method, name)})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free one)")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)
    schema.spec()  # load before announcing the port: the first request is not slow
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
