"""The `http` engine's word timings (DESIGN §13 "Words") against
asr_server.py, a real OpenAI-compatible server (ffmpeg +
pocketsphinx_continuous -time yes) that checks every request and every
answer against OpenAI's published OpenAPI description
(tests/openai/openapi.json).
"""
import json
import os
import subprocess
import sys

import pytest
import requests

from conftest import FIXTURES, LUCY_BIN, SAN_ENV

HERE = os.path.dirname(os.path.abspath(__file__))
AUDIO = os.path.join(FIXTURES, "audio")


@pytest.fixture(params=["openai", "whisper.cpp"])
def server_url(tmp_path, request):
    """The double's URL, answering as OpenAI does (top-level words) or as
    whisper.cpp's server (tokens in each segment); its answers land in
    tmp_path/answers/N.json."""
    (tmp_path / "answers").mkdir()
    shape = ["--whisper-cpp"] if request.param == "whisper.cpp" else []
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "asr_server.py"), "--answers",
                             str(tmp_path / "answers")] + shape,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening "), line + proc.stderr.read()
    yield "http://127.0.0.1:%d/v1/audio/transcriptions" % int(line.split()[1])
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    # a request lucy sent that did not match the schema is logged here
    assert "asr_server: 400" not in err, err


def transcribe_json(path, url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    env.update(SAN_ENV)
    env.update(LUCY_ASR_ENGINE="http", LUCY_ASR_URL=url)
    # --chunk-s 0: the whole file in one request, so the answer's seconds
    # are the file's (chunks shift them by the chunk's start: test_speakers)
    run = subprocess.run([LUCY_BIN, "transcribe", path, "--chunk-s", "0", "--json"],
                         capture_output=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    return json.loads(run.stdout)


@pytest.mark.parametrize("name", ["librivox-0870.m4a", "goforward.m4a"])
def test_http_engine_words_are_timed_monotonic_and_inside_their_segments(server_url, tmp_path,
                                                                         name):
    path = os.path.join(AUDIO, name)
    r = transcribe_json(path, server_url)
    assert r["engine"] == "http" and r["segments"], r
    flat, last_t0 = [], 0
    for s in r["segments"]:
        assert s.get("words"), "a segment without words: %r" % s
        assert " ".join(w["text"] for w in s["words"]) == s["text"], s
        for w in s["words"]:
            assert s["t0_ms"] <= w["t0_ms"] <= w["t1_ms"] <= s["t1_ms"], (w, s)
            assert w["t0_ms"] >= last_t0, (w, s)  # monotonic across the transcript
            last_t0 = w["t0_ms"]
            flat.append((w["text"], w["t0_ms"], w["t1_ms"]))
    # Every word of the server's answer, its seconds in ms.
    with open(str(tmp_path / "answers" / "1.json")) as f:
        answer = json.load(f)
    assert answer["segments"]  # lucy asked for both granularities
    assert flat == [(w["word"], round(w["start"] * 1000), round(w["end"] * 1000))
                    for w in answer_words(answer)]


def answer_words(answer):
    """The answer's words: OpenAI's words[], or whisper.cpp's tokens in
    each segment joined back (a token without a leading space continues
    the word before)."""
    if "words" in answer:
        return answer["words"]
    words = []
    for seg in answer["segments"]:
        for t in seg["words"]:
            if t["word"].startswith(" ") or not words:
                words.append(dict(t, word=t["word"].strip()))
            else:
                words[-1] = dict(words[-1], word=words[-1]["word"] + t["word"], end=t["end"])
    assert words
    return words


def post(url, fields, audio=b"RIFF"):
    files = [("file", ("a.wav", audio, "audio/wav"))] + [(k, (None, v)) for k, v in fields]
    return requests.post(url, files=files, timeout=60)


@pytest.mark.parametrize("fields,expect", [
    ([("response_format", "verbose_json")], "'model' is a required property"),
    ([("model", "whisper-1"), ("speaker", "me")], "Additional properties"),
    ([("model", "whisper-1"), ("response_format", "verbose_json"),
      ("timestamp_granularities[]", "sentence")], "timestamp_granularities/0"),
    ([("model", "whisper-1"), ("response_format", "words")], "response_format"),
    ([("model", "whisper-1"), ("timestamp_granularities[]", "word")], "needs response_format"),
    ([("model", "whisper-1"), ("temperature", "warm")], "temperature"),
])
def test_the_double_refuses_requests_outside_openais_schema(fields, expect):
    """The check is real: what OpenAI's description does not allow gets
    OpenAI's 400 naming the problem (so a wrong request from lucy would
    fail its tests, not pass silently)."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "asr_server.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(proc.stdout.readline().split()[1])
        r = post("http://127.0.0.1:%d/v1/audio/transcriptions" % port, fields)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and expect in err["message"], err
    finally:
        proc.terminate()
        proc.wait(10)
