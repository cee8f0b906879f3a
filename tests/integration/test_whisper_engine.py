"""The `whisper` engine (src/asr/whisper.c) against the real whisper.cpp
library, in a build that has it (Debian 12 packages no whisper.cpp:
docs/asr.md says how to build one; CI's build has none, so these tests
skip there). No trained model can be had here, so the model is synthetic
(whisper_model.py: whisper.cpp's format, seeded random weights): it
checks the plumbing - loading, decoding, token timestamps into words,
times inside the audio, stereo per channel - never accuracy.

Run them with a whisper build, e.g.:
  LD_LIBRARY_PATH=/tmp/whisper-prefix/lib LUCY_BIN=/tmp/bw/lucy \\
      python3 -m pytest tests/integration/test_whisper_engine.py
"""
import json
import os
import subprocess

import pytest

from audio_build import AUDIO, stereo_call
from conftest import LUCY_BIN, SAN_ENV
from whisper_model import write as write_model


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    e.update(SAN_ENV)
    return e


def transcribe(path, model, *args):
    return subprocess.run([LUCY_BIN, "transcribe", path, "--engine", "whisper", "--model", model,
                           "--json", *args], capture_output=True, env=env(), timeout=300)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("whisper") / "random.bin")
    write_model(path, True)
    run = transcribe(os.path.join(AUDIO, "goforward.m4a"), path)
    if b"not built in" in run.stderr:
        pytest.skip("this lucy is built without whisper.cpp (docs/asr.md: building with it)")
    return path


def check_times(r):
    end_ms = r["duration_s"] * 1000 + 1
    for s in r["segments"]:
        assert 0 <= s["t0_ms"] <= s["t1_ms"] <= end_ms, (s["t0_ms"], s["t1_ms"], end_ms)
        ts = [(w["t0_ms"], w["t1_ms"]) for w in s["words"]]
        assert ts == sorted(ts), ts
        assert all(s["t0_ms"] <= a <= b <= s["t1_ms"] for a, b in ts), (s["t0_ms"], s["t1_ms"], ts)
        assert " ".join(w["text"] for w in s["words"]) == s["text"], s


def test_whisper_library_gives_words_inside_their_segments(model):
    run = transcribe(os.path.join(AUDIO, "goforward.m4a"), model)
    assert run.returncode == 0, run.stderr.decode()
    r = json.loads(run.stdout)
    assert r["engine"] == "whisper" and r["model"] == model
    # Random weights still decode tokens with timestamps: the words come
    # from whisper.cpp's token timestamps (lucy_segment_add_tokens).
    assert r["segments"] and all(s["words"] for s in r["segments"]), r
    check_times(r)


def test_an_empty_model_finds_no_speech(tmp_path, model):
    empty = str(tmp_path / "empty.bin")
    write_model(empty, False)
    run = transcribe(os.path.join(AUDIO, "goforward.m4a"), empty)
    assert run.returncode == 0, run.stderr.decode()
    r = json.loads(run.stdout)
    assert r["segments"] == [] and r["text"] == ""


def test_whisper_per_channel(tmp_path, model):
    call = str(tmp_path / "call.m4a")
    stereo_call(str(tmp_path), [("librivox-0880.m4a", None), (None, 4)],
                [(None, 4), ("goforward.m4a", None)], call)
    run = transcribe(call, model)
    assert run.returncode == 0, run.stderr.decode()
    r = json.loads(run.stdout)
    assert r["channels"] == 2
    assert {s["speaker"] for s in r["segments"]} <= {"me", "them"}
    assert {s["channel"] for s in r["segments"]} <= {0, 1}
    check_times(r)
