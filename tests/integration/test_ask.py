"""Ask (DESIGN §14, docs/ask.md): the real lucy binary answers over loopback
HTTP from fixture documents - a WhatsApp message posted to the webhook (its
sender becomes the person "Alex Example", phone +15550002222) and a call
recording's segments fed through the producer API with the call's number -
with the OpenAI-compatible double (tests/openai/openai_double.py) as the LLM. Every
request lucy sends the double is validated against OpenAI's published
schema, and every reply lucy gives is validated here against the same
schema (tests/openai/schema.py). Waits poll observable state, never sleep.
"""
import datetime
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import sqlite3
import string
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import LUCY_BIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "openai"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import openai_double as double_mod  # noqa: E402
import schema  # noqa: E402
from test_search import env_for, feed  # noqa: E402

DOUBLE = os.path.join(ROOT, "tests", "openai", "openai_double.py")
PYTHON = "/usr/bin/python3"
ALEX = "15550002222"
REC = "rec-ask-1"
T_CALL = 1717171200  # 2024-05-31T16:00:00Z
TIMEOUT_MS = 1000

SEGMENTS = [
    "hello this is the station calling",
    "the train to Leeds leaves from platform three at noon",
    "please be there ten minutes early with the tickets",
    "and bring the invoice for the repair",
]


class Double:
    def __init__(self, tmp_path):
        self.log = open(str(tmp_path / "openai-double.log"), "wb")
        self.proc = subprocess.Popen([PYTHON, DOUBLE, "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=self.log)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("listening on "), line
        self.url = "http://127.0.0.1:%d" % int(line.split()[-1])

    def fault(self, **f):
        requests.post(self.url + "/__double__/fault", json=f, timeout=10).raise_for_status()

    def chat_requests(self):
        return [r for r in requests.get(self.url + "/__double__/requests", timeout=10).json()
                if r["path"] == "/v1/chat/completions"]

    def violations(self):
        return requests.get(self.url + "/__double__/violations", timeout=10).json()

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def double(tmp_path):
    d = Double(tmp_path)
    yield d
    try:
        assert d.violations() == [], "lucy sent the LLM something OpenAI would refuse"
    finally:
        d.stop()


def webhook(lucy, wamid, text, ts):
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "2"},
        "contacts": [{"profile": {"name": "Alex Example"}, "wa_id": ALEX}],
        "messages": [{"from": ALEX, "id": wamid, "timestamp": str(ts), "type": "text",
                      "text": {"body": text}}]}}]}]}
    r = lucy.post("/webhook/whatsapp", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def add_call(data_dir):
    """The recording and its call (schema 44) as the scanner stores them."""
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"), timeout=30)
    with db:
        db.execute("INSERT INTO recordings (id, size, mtime_ns, duration_s, first_seen_s, updated_at_s)"
                   " VALUES (?, 1000, ?, 20.0, 1, 1)", (REC, T_CALL * 10**9))
        db.execute("INSERT INTO recording_calls (recording_id, started_at_ms, direction, number_raw,"
                   " number_e164, title, updated_at_ms) VALUES (?, ?, 'in', ?, ?, 'Call with Alex', 1)",
                   (REC, T_CALL * 1000, "+" + ALEX, "+" + ALEX))
    db.close()
    feed(data_dir, [{"source": "call_recording", "id": REC, "segment": i, "title": "call.m4a",
                     "text": t, "time": T_CALL, "t0_ms": 4000 * i, "t1_ms": 4000 * (i + 1)}
                    for i, t in enumerate(SEGMENTS)])


def ready(lucy, headers):
    """Waits until the call and the message are searchable."""
    def both():
        hits = lucy.get("/search", params={"q": "invoice", "group": "0"},
                        headers=headers).json()["hits"]
        return len({h["source"] for h in hits}) == 2 or None
    lucy.wait_for(both, timeout=60, what="the call and the message indexed")


@pytest.fixture
def asking(start_lucy, double):
    """lucy with the double as its LLM, the fixtures indexed."""
    def start(extra=None, with_llm=True):
        env = {"LUCY_TIMEZONE": "UTC", "LUCY_LLM_TIMEOUT_MS": str(TIMEOUT_MS)}
        if with_llm:
            env["LUCY_LLM_URL"] = double.url + "/v1"
            env["LUCY_LLM_MODEL"] = "double-chat"
        env.update(extra or {})
        lucy = start_lucy(env=env)
        msg_ts = int(time.time()) - 3600
        webhook(lucy, "wamid.ASK1", "Can you send me the invoice for the boiler repair?", msg_ts)
        add_call(lucy.data_dir)
        token = env.get("LUCY_API_TOKEN")
        ready(lucy, {"Authorization": "Bearer " + token} if token else {})
        return lucy
    return start


def ask(lucy, q, **kw):
    r = lucy.get("/ask", params={"q": q}, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def chat(lucy, content, stream=False, **kw):
    return lucy.post("/v1/chat/completions", json={
        "model": "lucy", "stream": stream, "messages": [{"role": "user", "content": content}]}, **kw)


def last_week_utc():
    today = datetime.datetime.now(datetime.timezone.utc).date()
    monday = today - datetime.timedelta(days=today.weekday() + 7)
    return ("%sT00:00:00+00:00" % monday.isoformat(),
            "%sT23:59:59+00:00" % (monday + datetime.timedelta(days=6)).isoformat())


# ---- understanding -----------------------------------------------------------

def test_person_and_time_phrase_become_filters(asking):
    lucy = asking(with_llm=False)
    alex = lucy.get("/people", params={"q": ALEX}).json()["people"][0]
    before = last_week_utc()
    body = ask(lucy, "What did Alex say about the invoice last week?")
    after = last_week_utc()
    f = body["retrieval"]["filters"]
    assert f["person"]["id"] == alex["id"] and f["person"]["name"] == "Alex Example"
    assert f["person"]["matched"].lower() == "alex"
    assert f["time_phrase"] == "last week"
    assert (f["from"], f["to"]) in (before, after)
    assert body["retrieval"]["words"] == "invoice"
    # by number too; "yesterday" is a day
    body = ask(lucy, "calls with +1 555 000 2222 yesterday")
    assert body["retrieval"]["filters"]["person"]["id"] == alex["id"]
    assert body["retrieval"]["filters"]["person"]["by"] == "number"
    assert body["retrieval"]["filters"]["time_phrase"] == "yesterday"
    # the person filter keeps out what others said: nobody called Zed exists
    body = ask(lucy, "what about the invoice")
    assert body["retrieval"]["filters"]["person"] is None


def test_a_date_that_names_no_day_is_not_moved_to_another(asking):
    # 30 February is not 1 March: no time filter from it, and the reply says which phrase
    lucy = asking(with_llm=False)
    body = ask(lucy, "what about the invoice since 2024-02-30")
    f = body["retrieval"]["filters"]
    assert f["time_not_understood"] == "since 2024-02-30"
    assert f["time_phrase"] is None and f["from"] is None and f["to"] is None
    assert body["retrieval"]["words"] == "invoice"
    assert "did not understand \u201csince 2024-02-30\u201d" in body["answer"]
    assert body["citations"], "the invoice is found at any time"
    body = ask(lucy, "what about the invoice since 2024-02-29")
    assert body["retrieval"]["filters"]["time_not_understood"] is None
    assert body["retrieval"]["filters"]["from"] == "2024-02-29T00:00:00+00:00"
    # a month's day is that day; one the month does not have is named, not dropped
    f = ask(lucy, "what about the invoice on 30 April 2024")["retrieval"]["filters"]
    assert (f["time_phrase"], f["from"], f["to"]) == (
        "on 30 april 2024", "2024-04-30T00:00:00+00:00", "2024-04-30T23:59:59+00:00"), f
    for q, phrase in (("the invoice on April 31", "on april 31"),
                      ("the invoice in March 20245", "in march 20245")):
        f = ask(lucy, q)["retrieval"]["filters"]
        assert f["time_not_understood"] == phrase and f["from"] is None, f
    f = ask(lucy, "the invoice before 1000-01-01")["retrieval"]["filters"]
    assert f["to"] == "0999-12-31T23:59:59+00:00", f


def test_latest_call_with_a_person(asking):
    lucy = asking(with_llm=False)
    body = ask(lucy, "the latest call with Alex")
    assert body["retrieval"]["filters"]["latest"] is True
    assert body["retrieval"]["filters"]["source"] == "call_recording"
    assert [c["id"] for c in body["citations"]] == [REC]
    assert body["citations"][0]["person"]["name"] == "Alex Example"
    assert body["retrieval"]["filters"]["unknown_person"] is None
    # someone lucy does not know: said so, not anyone's latest call
    body = ask(lucy, "the latest call with Nobody?")
    assert body["citations"] == [] and body["retrieval"]["filters"]["unknown_person"] == "Nobody"
    assert "I know no one called Nobody" in body["answer"]


# ---- extractive answers --------------------------------------------------------

def test_extractive_answer_cites_the_right_segment(asking):
    lucy = asking(with_llm=False)
    body = ask(lucy, "which platform 3?")  # "3" finds "three", any word matches
    assert body["retrieval"]["llm"] == "not_configured"
    c = body["citations"][0]
    assert (c["source"], c["id"], c["segment"], c["t0_ms"], c["t1_ms"]) == \
        ("call_recording", REC, 1, 4000, 8000)
    assert c["verified"] is True and "platform three" in c["quote"]
    assert c["url"].endswith("/#/recordings/%s?t=4000" % REC)
    assert c["time"] == "2024-05-31T16:00:00+00:00"
    # The text says why it quotes (a chat UI shows the text, not retrieval.llm).
    assert body["answer"].endswith("(No language model is configured (LUCY_LLM_URL), so lucy "
                                   "quotes the passages it found instead of answering.)"), body
    assert "[1]" in body["answer"] and "platform three" in body["answer"]
    assert body["verified"] is True


def test_nothing_found_is_still_an_answer(asking):
    lucy = asking(with_llm=False)
    body = ask(lucy, "zqxnothing zqxanywhere")
    assert body["citations"] == [] and "nothing" in body["answer"]
    # A word longer than the engine keeps, cut inside a UTF-8 character,
    # was a 500 "out of memory" on every way of asking
    for word in ("é" * 24, "日" * 30, "ж" * 40):
        assert ask(lucy, "what about " + word)["citations"] == []
        r = chat(lucy, word)
        assert r.status_code == 200, r.text


# ---- dense fusion ------------------------------------------------------------------

MESSAGE = "Can you send me the invoice for the boiler repair?"


def bucket(word):
    """The dimension the double's hashed bag of words puts word in."""
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % double_mod.DIM


def a_synonym_of(target):
    """A made-up word the double embeds exactly like target (same bucket)
    that occurs in no fixture, while no other fixture word shares target's
    bucket: a question of it is close to target's segment only by meaning
    (as the double has it), never by its words."""
    words = set(re.findall(r"\w+", " ".join(SEGMENTS + [MESSAGE]).lower()))
    assert [w for w in words if bucket(w) == bucket(target)] == [target]
    for letters in itertools.product(string.ascii_lowercase, repeat=3):
        w = "qu" + "".join(letters)
        if w not in words and bucket(w) == bucket(target):
            return w
    raise AssertionError("no word shares the bucket of " + target)


def vectors_ready(lucy):
    e = lucy.get("/rag/stats").json()["embeddings"]
    return e if e["pending"] == 0 and e["vectors"] == len(SEGMENTS) + 1 else None


def test_dense_list_finds_what_bm25_cannot(asking, double):
    word = a_synonym_of("leeds")
    # BM25 alone: the word is in no document, so nothing is found
    lucy = asking(with_llm=False)
    body = ask(lucy, word)
    assert body["citations"] == [] and body["retrieval"]["backend"] == "sqlite"
    lucy.stop()
    # with the embedding server, the dense list finds the Leeds segment
    lucy = asking(with_llm=False, extra={"LUCY_EMBED_URL": double.url + "/v1",
                                         "LUCY_EMBED_MODEL": "double-embed"})
    lucy.wait_for(lambda: vectors_ready(lucy), timeout=60, interval=0.2, what="vectors stored")
    body = ask(lucy, word)
    assert body["retrieval"]["backend"] == "sqlite+dense" and body["retrieval"]["degraded"] is False
    c = body["citations"][0]
    assert (c["id"], c["segment"], c["t0_ms"]) == (REC, 1, 4000) and "Leeds" in c["quote"]
    assert c["verified"] is True
    # a question both lists answer still cites the BM25 hit first
    body = ask(lucy, "invoice boiler")
    assert body["citations"][0]["source"] == "whatsapp"
    # the embedding server down: still 200, BM25 only, degraded and why
    double.fault(kind="status500")
    r = lucy.get("/ask", params={"q": "invoice " + word})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["retrieval"]["backend"] == "sqlite" and body["retrieval"]["degraded"] is True
    assert "dense retrieval unavailable" in body["retrieval"]["degraded_reason"]
    assert any(c["source"] == "whatsapp" for c in body["citations"])
    assert all("Leeds" not in c["quote"] for c in body["citations"]), body


# ---- the LLM, and verification ---------------------------------------------------

def test_llm_answer_is_verified_and_in_openai_shape(asking, double):
    lucy = asking()
    r = chat(lucy, "which platform 3 does the train leave from?")
    assert r.status_code == 200, r.text
    body = r.json()
    assert schema.validate("CreateChatCompletionResponse", body) == []
    msg = body["choices"][0]["message"]
    assert "[1]" in msg["content"] and body["lucy"]["retrieval"]["llm"] == "used"
    assert body["lucy"]["verified"] is True
    ann = msg["annotations"][0]
    assert ann["type"] == "url_citation"
    assert msg["content"][ann["url_citation"]["start_index"]:ann["url_citation"]["end_index"]] == "[1]"
    assert ann["url_citation"]["url"] == body["lucy"]["citations"][0]["url"]
    # the double got numbered sources, the first being the call's passage
    prompt = double.chat_requests()[-1]["body"]["messages"][-1]["content"]
    assert "[1] call with Alex Example" in prompt and "platform three" in prompt
    assert double.chat_requests()[-1]["body"]["model"] == "double-chat"


def test_a_call_told_apart_by_channel_says_who_spoke(asking, double):
    """The LLM reads "Me: ..." and the person's name before each segment of
    a per-channel call, and the citation's speaker is "me" or the person."""
    lucy = asking()
    db = sqlite3.connect(os.path.join(lucy.data_dir, "lucy.db"), timeout=30)
    with db:  # the call's transcript, its speakers as the worker stores them
        for i, t in enumerate(SEGMENTS):
            db.execute("INSERT INTO segments (recording_id, idx, t0_ms, t1_ms, text, speaker, channel)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", (REC, i, 4000 * i, 4000 * (i + 1), t,
                                                     "me" if i % 2 else "them", i % 2 ^ 1))
    db.close()
    alex = lucy.get("/people", params={"q": ALEX}).json()["people"][0]
    r = chat(lucy, "which platform 3 does the train leave from?")
    assert r.status_code == 200, r.text
    prompt = double.chat_requests()[-1]["body"]["messages"][-1]["content"]
    assert "Alex Example: hello this is the station calling" in prompt, prompt
    assert "Me: the train to Leeds" in prompt, prompt
    cite = next(c for c in r.json()["lucy"]["citations"] if c["source"] == "call_recording")
    assert cite["speaker"] == "me" and cite["quote"].startswith("the train"), cite
    cite = next(c for c in ask(lucy, "hello station calling")["citations"]
                if c["source"] == "call_recording")
    assert cite["speaker"] == alex["id"], cite


def test_streamed_reply_parses_as_openai_chunks(asking):
    lucy = asking()
    r = chat(lucy, "which platform 3?", stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    for c in chunks:
        assert schema.validate("CreateChatCompletionStreamResponse", c) == []
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "[1]" in text and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["lucy"]["verified"] is True
    assert chunks[-1]["lucy"]["citations"][0]["id"] == REC


# ---- streamed answers: tokens pass through as the LLM sends them -----------------

SLOW_LLM = {"LUCY_LLM_TIMEOUT_MS": "120000"}  # held streams must not time out


class Stream:
    """A streamed chat completion read event by event, each stamped with
    time.monotonic() when it arrived."""

    def __init__(self, lucy, question):
        self.conn = http.client.HTTPConnection("127.0.0.1", lucy.port, timeout=120)
        self.conn.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"},
                          body=json.dumps({"model": "lucy", "stream": True,
                                           "messages": [{"role": "user", "content": question}]}))
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and \
            self.resp.getheader("Content-Type").startswith("text/event-stream")
        self.events = []  # (arrived, "data: ..." text)

    def next(self):
        lines = []
        while True:
            line = self.resp.readline()
            assert line, "the stream ended without [DONE]: %r" % self.events
            if line == b"\n":
                break
            lines.append(line.decode().rstrip("\n"))
        self.events.append((time.monotonic(), "\n".join(lines)))
        return self.events[-1][1]

    def until_content(self):
        """Reads up to the first chunk with content; returns that content."""
        while True:
            e = self.next()
            content = json.loads(e[len("data: "):])["choices"][0]["delta"].get("content")
            if content:
                return content

    def rest(self):
        while self.next() != "data: [DONE]":
            pass
        chunks = [json.loads(e[len("data: "):]) for _, e in self.events[:-1]]
        for c in chunks:
            assert schema.validate("CreateChatCompletionStreamResponse", c) == []
        self.conn.close()
        return chunks

    def close(self):
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def content_of(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def streams(double):
    return requests.get(double.url + "/__double__/streams", timeout=10).json()


def release(double):
    requests.post(double.url + "/__double__/release", timeout=10).raise_for_status()


def test_streamed_tokens_arrive_while_the_llm_is_still_answering(asking, double):
    lucy = asking(extra=SLOW_LLM)
    double.fault(kind="hold")  # the double sends its first piece, then waits for us
    s = Stream(lucy, "which platform 3?")
    first = s.until_content()
    t_first = s.events[-1][0]
    lucy.wait_for(lambda: streams(double)["held"] == 1, what="the double holding its answer")
    assert first == "According "  # the LLM's first token, passed on before it said more
    t_release = time.monotonic()
    release(double)
    chunks = s.rest()
    t_last = s.events[-1][0]
    assert t_first < t_release < t_last
    text = content_of(chunks)
    assert text.startswith("According to the sources, ") and text.endswith(" [1].")
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["lucy"]["verified"] is True
    assert last["lucy"]["citations"][0]["id"] == REC and last["lucy"]["retrieval"]["llm"] == "used"
    ann = last["choices"][0]["delta"]["annotations"][0]["url_citation"]
    assert text[ann["start_index"]:ann["end_index"]] == "[1]"


def test_liveness_answers_while_8_streams_are_open(asking, double):
    # two pool threads: a stream that held one would starve the rest
    lucy = asking(extra=dict(SLOW_LLM, LUCY_HTTP_THREADS="2"))
    double.fault(kind="hold")
    open_streams = [Stream(lucy, "which platform 3?") for _ in range(8)]
    for s in open_streams:
        assert s.until_content() == "According "
    lucy.wait_for(lambda: streams(double)["held"] == 8, what="8 answers held by the double")
    for _ in range(3):
        assert lucy.get("/health/live", timeout=30).status_code == 200
    assert lucy.get("/ask", params={"q": "invoice"}, timeout=30).status_code == 200
    assert streams(double)["held"] == 8  # all still open
    release(double)
    for s in open_streams:
        assert s.rest()[-1]["lucy"]["verified"] is True


def test_slow_answers_never_take_the_threads_liveness_needs(asking, double):
    """Unstreamed answers wait for the LLM on a server thread: at most half
    the pool (here 1 of 2) does so at once; past that a question is 503 with
    Retry-After, and liveness answers throughout (before, 20 questions to a
    hung LLM held all 8 threads: /health/live and the webhook timed out)."""
    lucy = asking(extra=dict(SLOW_LLM, LUCY_HTTP_THREADS="2"))
    double.fault(kind="hang", seconds=8)
    asked = len(double.chat_requests())
    first = {}
    t = threading.Thread(target=lambda: first.update(r=chat(lucy, "which platform 3?", timeout=120)))
    t.start()
    lucy.wait_for(lambda: len(double.chat_requests()) > asked or None, what="the LLM asked")
    r = lucy.get("/ask", params={"q": "invoice"}, timeout=30)
    assert r.status_code == 503 and r.json()["error_type"] == "dependency_unavailable", r.text
    assert r.headers["Retry-After"] and "stream" in r.json()["message"]
    for _ in range(3):
        assert lucy.get("/health/live", timeout=10).status_code == 200
    t.join(130)
    assert first["r"].status_code == 200


def http_stream_threads(lucy):
    names = []
    for t in os.listdir("/proc/%d/task" % lucy.proc.pid):
        try:
            with open("/proc/%d/task/%s/comm" % (lucy.proc.pid, t)) as f:
                names.append(f.read().strip())
        except OSError:
            pass  # the thread ended meanwhile
    return names.count("http-stream")


def test_client_gone_mid_stream_leaves_no_stuck_thread(asking, double):
    lucy = asking(extra=SLOW_LLM)
    double.fault(kind="hold")
    gone = [Stream(lucy, "which platform 3?") for _ in range(3)]
    for s in gone:
        s.until_content()
    lucy.wait_for(lambda: streams(double)["held"] == 3, what="3 answers held by the double")
    assert http_stream_threads(lucy) == 3
    for s in gone:
        s.close()
    double.fault(kind="clear")
    release(double)
    lucy.wait_for(lambda: http_stream_threads(lucy) == 0 or None, timeout=60,
                  what="the producers of the streams nobody reads to end")
    # the next requests are fine, streamed and not
    assert Stream(lucy, "which platform 3?").rest()[-1]["lucy"]["verified"] is True
    assert chat(lucy, "which platform 3?").json()["lucy"]["verified"] is True
    metrics = lucy.get("/metrics").text
    line = next(x for x in metrics.splitlines()
                if x.startswith("lucy_http_requests_total") and "/v1/chat/completions" in x
                and 'status="200"' in x)
    assert int(float(line.split()[-1])) == 5, line
    assert http_stream_threads(lucy) == 0


@pytest.mark.parametrize("kind", ["cutoff", "nocite"])
def test_llm_failing_midway_streams_the_extractive_answer_after_a_note(asking, double, kind):
    lucy = asking(extra=SLOW_LLM)
    double.fault(kind=kind)
    chunks = Stream(lucy, "which platform 3?").rest()
    text = content_of(chunks)
    llm_part = "According to the sources," if kind == "cutoff" else "I found nothing."
    assert text.startswith(llm_part), text
    note = text.index("(lucy could not use the answer above:")
    assert text.index("The best passages I found:") > note
    last = chunks[-1]["lucy"]
    assert last["retrieval"]["llm"] == "unavailable" and last["verified"] is True
    assert last["citations"][0]["segment"] == 1
    ann = chunks[-1]["choices"][0]["delta"]["annotations"][0]["url_citation"]
    assert ann["start_index"] > note and text[ann["start_index"]:ann["end_index"]] == "[1]"


def test_citing_a_source_that_was_not_given_is_unverified(asking, double):
    lucy = asking()
    double.fault(kind="cite7")
    body = chat(lucy, "which platform 3?").json()
    lucy_obj = body["lucy"]
    assert lucy_obj["verified"] is False
    bad = [c for c in lucy_obj["citations"] if c["n"] == 7]
    assert bad and bad[0]["verified"] is False and bad[0]["id"] is None
    content = body["choices"][0]["message"]["content"]
    assert "could not verify" in content and "[7] names no source" in content
    # the user still gets the passages, cited and verified
    assert any(c["n"] == 1 and c["verified"] for c in lucy_obj["citations"])


def test_quoting_words_not_in_the_source_is_unverified(asking, double):
    lucy = asking()
    double.fault(kind="misquote")
    body = ask(lucy, "which platform 3?")
    assert body["verified"] is False
    assert body["citations"][0]["n"] == 1 and body["citations"][0]["verified"] is False
    assert "not in that source" in body["answer"]


def test_an_answer_citing_nothing_becomes_extractive(asking, double):
    lucy = asking()
    double.fault(kind="nocite")
    body = ask(lucy, "which platform 3?")
    assert body["retrieval"]["llm"] == "unavailable" and "cited none" in body["retrieval"]["llm_error"]
    assert body["citations"][0]["segment"] == 1 and body["verified"] is True


@pytest.mark.parametrize("kind", ["down", "hang", "status500", "garbage"])
def test_llm_failures_give_200_extractive_within_timeout(asking, double, kind):
    lucy = asking()
    double.fault(kind=kind, seconds=TIMEOUT_MS / 1000 * 5)
    t0 = time.monotonic()
    r = chat(lucy, "which platform 3?")
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert schema.validate("CreateChatCompletionResponse", body) == []
    assert body["lucy"]["retrieval"]["llm"] == "unavailable"
    assert body["lucy"]["retrieval"]["llm_error"]
    assert body["lucy"]["citations"][0]["segment"] == 1
    text = body["choices"][0]["message"]["content"]
    assert "(The language model could not answer (%s)" % body["lucy"]["retrieval"]["llm_error"] \
        in text, text
    assert elapsed < TIMEOUT_MS / 1000 + 1, "took %.2f s" % elapsed


def test_llm_not_listening_is_extractive(asking):
    lucy = asking(extra={"LUCY_LLM_URL": "http://127.0.0.1:9/v1"})
    body = ask(lucy, "which platform 3?")
    assert body["retrieval"]["llm"] == "unavailable" and body["citations"]


# ---- the endpoint's edges --------------------------------------------------------

def test_models_lists_lucy(asking):
    lucy = asking(with_llm=False)
    body = lucy.get("/v1/models").json()
    assert schema.validate("ListModelsResponse", body) == []
    assert [m["id"] for m in body["data"]] == ["lucy"]


def test_limits_and_bad_requests(asking, double):
    lucy = asking()
    asked = len(double.chat_requests())
    many = [{"role": "user", "content": "hi"}] * 40
    r = lucy.post("/v1/chat/completions", json={"model": "lucy", "messages": many})
    assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"
    r = lucy.post("/v1/chat/completions", json={"model": "lucy", "messages": [
        {"role": "user", "content": "x" * (300 * 1024)}]})
    assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"
    r = chat(lucy, "q" * 5000)
    assert r.status_code in (400, 413) and r.json()["error_type"] in ("bad_request", "payload_too_large")
    for body in ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                 {"model": "lucy", "messages": []},
                 {"model": "lucy", "messages": [{"role": "system", "content": "hi"}]},
                 {"model": "lucy", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}):
        r = lucy.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error_type"] == "bad_request", body
        assert r.json()["message"]
        # ... and OpenAI's error object, for OpenAI clients (its Error schema)
        assert schema.validate("ErrorResponse", r.json()) == [], r.json()
        assert r.json()["error"]["message"] == r.json()["message"]
    r = lucy.post("/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = lucy.get("/ask")
    assert r.status_code == 400 and "q=" in r.json()["message"]
    assert len(double.chat_requests()) == asked, "a refused request reached the LLM"


def test_token_required_when_set(asking):
    lucy = asking(extra={"LUCY_API_TOKEN": "s3cret"}, with_llm=False)
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/ask?q=x")):
        r = requests.request(method, lucy.url + path, json={}, timeout=10)
        assert r.status_code == 401, path
        assert schema.validate("ErrorResponse", r.json()) == [], r.json()
    r = requests.get(lucy.url + "/ask", params={"q": "platform"},
                     headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert r.status_code == 200


def test_lucy_ask_command(asking):
    lucy = asking(with_llm=False)
    env = env_for(lucy.data_dir, {"LUCY_TIMEZONE": "UTC"})
    r = subprocess.run([LUCY_BIN, "ask", "which", "platform", "3", "--json"], env=env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    body = json.loads(r.stdout)
    assert body["citations"][0]["id"] == REC and body["citations"][0]["segment"] == 1
    r = subprocess.run([LUCY_BIN, "ask", "which", "platform", "3"], env=env, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and b"[1] call with Alex Example" in r.stdout
    r = subprocess.run([LUCY_BIN, "ask"], env=env, capture_output=True, timeout=60)
    assert r.returncode == 2 and b"ask a question" in r.stderr
    r = subprocess.run([LUCY_BIN, "ask", "x"], env=env_for(lucy.data_dir, {"LUCY_TIMEZONE": "Mars/Olympus"}),
                       capture_output=True, timeout=60)
    assert r.returncode == 2 and b"LUCY_TIMEZONE" in r.stderr


# ---- a real OpenAI client ----------------------------------------------------------

CLIENT_DIR = os.path.join(ROOT, "tests", "clients", "openai")
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def openai_npm():
    """tests/clients/openai/node_modules from the lock file, installed once."""
    if not NODE:
        pytest.skip("node is not installed (it comes with the machine image)")
    if not os.path.exists(os.path.join(CLIENT_DIR, "node_modules", "openai", "package.json")):
        r = subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=CLIENT_DIR,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, "npm ci failed in tests/clients/openai:\n" + r.stdout + r.stderr
    return CLIENT_DIR


@pytest.mark.parametrize("with_llm", [True, False])
def test_official_openai_client_reads_citations(asking, openai_npm, with_llm):
    lucy = asking(extra={"LUCY_API_TOKEN": "tok"}, with_llm=with_llm)
    r = subprocess.run([NODE, "client.test.js", lucy.url, "which platform 3?", REC, "tok"],
                       cwd=openai_npm, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["plain"]["url"].endswith("/#/recordings/%s?t=4000" % REC)
    assert out["streamed"]["llm"] == ("used" if with_llm else "not_configured")


# ---- the Ask page in Chromium (tests/e2e/ask.test.js) ------------------------------

def test_ask_page_in_chromium(start_lucy, tmp_path):
    """A real recording scanned and transcribed (pocketsphinx), plus one
    passage placed at the middle of that recording through the producer API
    (so the citation's t0_ms is well after 0 whatever the recogniser makes
    of the audio); the page asks, cites it, and its Play button plays the
    recording from t0_ms."""
    import test_ui_e2e as e2e
    e2e.ensure_playwright()
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    shutil.copy(os.path.join(ROOT, "tests", "fixtures", "audio", "librivox-0870.m4a"), str(rec_dir))
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(rec_dir), "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
                           "LUCY_TIMEZONE": "UTC"})

    def transcribed():
        recs = lucy.get("/recordings").json()["recordings"]
        return recs if recs and recs[0]["transcript_status"] == "done" else None
    rec = lucy.wait_for(transcribed, timeout=180, interval=0.3, what="the recording transcribed")[0]
    rec = lucy.get("/recordings/" + rec["id"]).json()
    t0_ms = int(rec["duration_s"] * 1000 / 2) // 100 * 100
    assert t0_ms >= 1000, rec["duration_s"]
    feed(lucy.data_dir, [{"source": "call_recording", "id": rec["id"], "segment": 999,
                          "title": "librivox-0870.m4a", "text": "the zebra crossing by the harbour",
                          "time": T_CALL, "t0_ms": t0_ms, "t1_ms": t0_ms + 900}])
    lucy.wait_for(lambda: lucy.get("/search", params={"q": "zebra"}).json()["count"] == 1 or None,
                  timeout=60, what="the passage indexed")
    r = e2e.run_node(lucy.url, {"E2E_ARTEFACTS": e2e.artefacts_dir()}, "where is the zebra crossing?",
                     script="ask.test.js")
    assert r.returncode == 0, "browser test failed:\n" + r.stdout[-8000:] + r.stderr[-4000:]
    assert re.search(r"^3 passed, 0 failed$", r.stdout, re.M), r.stdout
    for name in ("ask-answer", "ask-playing"):
        assert os.path.getsize(os.path.join(e2e.artefacts_dir(), name + ".png")) > 1000, name
