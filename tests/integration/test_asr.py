"""`lucy transcribe`: decoding and speech recognition on real recordings.

Accuracy: every fixture in tests/fixtures/audio is transcribed by
`lucy transcribe --json` (pocketsphinx engine, lucy's own FFmpeg decoding)
and by `pocketsphinx_continuous` on a 16 kHz mono WAV made by the ffmpeg
CLI from the same file. Word error rates against transcripts.tsv, pooled
over all files, are printed; lucy's must be no worse than the CLI's + 0.05,
so lucy's decoding, resampling and feeding cost no accuracy.

Also: a stereo call built from two different clips is transcribed per
channel, its segments labelled me/them as LUCY_CALL_CHANNELS or --channels
say (as the daemon does); 30 s of silence gives no segments; the http engine against
asr_server.py (a real OpenAI-compatible server that runs
pocketsphinx_continuous on the upload); a server error and an unreachable
server are exit 1 with one line; undecodable files are exit 1 with one line.
"""
import concurrent.futures
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from audio_build import AUDIO, references, stereo_call
from conftest import LUCY_BIN, SAN_ENV

HERE = os.path.dirname(os.path.abspath(__file__))


def lucy_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    env.update(SAN_ENV)
    env.update(extra)
    return env


def lucy_transcribe(path, *args, env=None, timeout=300):
    return subprocess.run([LUCY_BIN, "transcribe", path, *args], capture_output=True,
                          env=env or lucy_env(), timeout=timeout)


def to_wav(src, dst):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-ar", "16000", "-ac",
                    "1", "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                    dst], check=True, timeout=60)


def continuous(wav):
    """pocketsphinx_continuous's transcript: its hypothesis lines joined."""
    run = subprocess.run(["pocketsphinx_continuous", "-infile", wav], capture_output=True,
                         timeout=300, check=True)
    return " ".join(line.strip() for line in run.stdout.decode().splitlines() if line.strip())


def edit_distance(ref, hyp):
    """Levenshtein distance over words."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def pooled_wer(refs, hyps):
    errors = sum(edit_distance(refs[n].split(), hyps[n].split()) for n in refs)
    words = sum(len(refs[n].split()) for n in refs)
    return errors / words


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Both transcripts of every fixture, run in parallel once per module."""
    tmp = tmp_path_factory.mktemp("asr")
    refs = references()

    def ours(name):
        run = lucy_transcribe(os.path.join(AUDIO, name), "--json", "--engine", "pocketsphinx")
        assert run.returncode == 0, run.stderr.decode()
        return json.loads(run.stdout)

    def theirs(name):
        wav = str(tmp / (name + ".wav"))
        to_wav(os.path.join(AUDIO, name), wav)
        return continuous(wav)

    workers = max(2, os.cpu_count() or 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        lucy_f = {n: pool.submit(ours, n) for n in refs}
        cli_f = {n: pool.submit(theirs, n) for n in refs}
        return refs, {n: f.result() for n, f in lucy_f.items()}, \
            {n: f.result() for n, f in cli_f.items()}


def test_wer_no_worse_than_pocketsphinx_continuous(results):
    refs, lucy, cli = results
    for name in sorted(refs):
        print("%-22s ref: %s\n%-22s lucy: %s\n%-22s cli:  %s" % (
            name, refs[name], "", lucy[name]["text"], "", cli[name]))
    lucy_wer = pooled_wer(refs, {n: r["text"] for n, r in lucy.items()})
    cli_wer = pooled_wer(refs, cli)
    print("WER lucy transcribe: %.3f   pocketsphinx_continuous: %.3f" % (lucy_wer, cli_wer))
    assert lucy_wer <= cli_wer + 0.05


def test_transcript_json_shape(results):
    refs, lucy, _ = results
    for name, r in lucy.items():
        assert r["engine"] == "pocketsphinx"
        assert r["model"].endswith("en-us")
        assert r["language"] == "en"
        assert r["duration_s"] > 0.5 and r["rtf"] > 0
        assert r["segments"], name
        last = 0
        for s in r["segments"]:
            assert last <= s["t0_ms"] < s["t1_ms"] <= r["duration_s"] * 1000 + 10, (name, s)
            assert s["text"] == s["text"].strip() and s["text"]
            last = s["t1_ms"]
        assert r["text"] == " ".join(s["text"] for s in r["segments"])


def test_plain_output_lists_timed_segments():
    run = lucy_transcribe(os.path.join(AUDIO, "goforward.m4a"))
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    assert lines and all(l.startswith("[0:0") and " \u2192 " in l for l in lines), lines
    assert "forward" in run.stdout.decode()
    assert run.stderr == b""  # no engine chatter outside DEBUG


# A two-party call: "me" (left) says one clip, "them" (right) another,
# after it.
CALL_LEFT = [("librivox-0880.m4a", None), (None, 4)]
CALL_RIGHT = [(None, 4), ("goforward.m4a", None)]


def test_stereo_call_per_channel_with_speakers(tmp_path):
    """`lucy transcribe` splits a stereo call as the daemon does (DESIGN
    §13): each channel apart, segments labelled with speaker and channel
    by LUCY_CALL_CHANNELS (default me,them) or --channels, merged in time
    order; mix gives one channel without speakers."""
    call = str(tmp_path / "call.m4a")
    stereo_call(str(tmp_path), CALL_LEFT, CALL_RIGHT, call)
    refs = references()
    left_ref, right_ref = refs["librivox-0880.m4a"].split(), refs["goforward.m4a"].split()
    common = lambda text, ref: len(set(text.split()) & set(ref))

    def transcript(*args, **env):
        run = lucy_transcribe(call, "--json", "--engine", "pocketsphinx", *args,
                              env=lucy_env(**env))
        assert run.returncode == 0, run.stderr.decode()
        return json.loads(run.stdout)

    for env, roles in (({}, ("me", "them")), ({"LUCY_CALL_CHANNELS": "them,me"}, ("them", "me"))):
        r = transcript(**env)
        segs = r["segments"]
        assert r["channels"] == 2 and segs, r
        assert [s["t0_ms"] for s in segs] == sorted(s["t0_ms"] for s in segs), "not in time order"
        assert r["text"] == " ".join(s["text"] for s in segs)
        by_channel = {0: "", 1: ""}
        for s in segs:
            assert s["channel"] in (0, 1) and s["speaker"] == roles[s["channel"]], (env, s)
            by_channel[s["channel"]] += " " + s["text"]
        left, right = by_channel[0], by_channel[1]
        # Each side holds its own clip's words, not the other's.
        assert common(left, left_ref) >= 3 and common(left, right_ref) == 0, (left, r)
        assert "forward" in right and common(right, left_ref) <= 1, (right, r)
        # The right clip starts after its 4 s of silence: times on the file's clock.
        assert min(s["t0_ms"] for s in segs if s["channel"] == 1) >= 4000, segs

    # --channels wins over LUCY_CALL_CHANNELS; mix is one channel, no speakers.
    # --name=value is --name value (the shared flag parser).
    for args, env in ((("--channels", "mix"), {"LUCY_CALL_CHANNELS": "them,me"}),
                      (("--channels=mix",), {"LUCY_CALL_CHANNELS": "them,me"}),
                      (("--channels", "mix"), {"LUCY_CALL_CHANNELS": "bogus"}),
                      ((), {"LUCY_CALL_CHANNELS": "mix"})):
        r = transcript(*args, **env)
        assert r["channels"] == 1 and r["segments"], r
        assert all(s["speaker"] is None and s["channel"] is None for s in r["segments"]), r
        assert "forward" in r["text"] and common(r["text"], left_ref) >= 3, r["text"]

    # Plain output names the speaker of each line.
    run = lucy_transcribe(call, "--engine", "pocketsphinx")
    lines = run.stdout.decode().splitlines()
    assert run.returncode == 0 and lines, run.stderr.decode()
    assert all(re.match(r"^\[\d+:\d\d\.\d{3} \u2192 \d+:\d\d\.\d{3}\] (me|them): \S", l)
               for l in lines), lines
    assert any(l.split("] ")[1].startswith("them: ") and "forward" in l for l in lines), lines

    # An unknown layout is a usage error that lists the right ones.
    run = lucy_transcribe(call, "--channels", "left,right")
    err = run.stderr.decode().strip()
    assert run.returncode == 2 and len(err.splitlines()) == 1, err
    assert "me,them" in err and "them,me" in err and "mix" in err, err
    run = lucy_transcribe(call, "--json=yes")
    err = run.stderr.decode().strip()
    assert run.returncode == 2 and "--json takes no value" in err, err


def test_lanes_share_a_long_call(tmp_path):
    """LUCY_ASR_THREADS lanes (pocketsphinx, docs/asr.md "Lanes"): a call of
    clips and silences, cut into many chunks, recognised on 1, 2 and 4
    lanes gives the same clips' words in the same order, segments in time
    order with words inside them; a bad value is a one-line config error."""
    from audio_build import channel_wav
    clips = ["librivox-0870.m4a", "goforward.m4a", "librivox-0880.m4a", "cards-001.ogg"]
    parts = []
    for name in clips:
        parts += [(name, None), (None, 2)]
    call = str(tmp_path / "long.wav")
    channel_wav(parts, call)
    texts = {}
    for lanes in ("1", "2", "4"):
        run = lucy_transcribe(call, "--json", "--engine", "pocketsphinx", "--chunk-s", "5",
                              env=lucy_env(LUCY_ASR_THREADS=lanes))
        assert run.returncode == 0, run.stderr.decode()
        r = json.loads(run.stdout)
        segs = r["segments"]
        assert [s["t0_ms"] for s in segs] == sorted(s["t0_ms"] for s in segs), (lanes, segs)
        for s in segs:
            ts = [(w["t0_ms"], w["t1_ms"]) for w in s["words"]]
            assert ts == sorted(ts) and all(s["t0_ms"] <= a <= b <= s["t1_ms"] for a, b in ts), s
        texts[lanes] = r["text"]
        # The clips are heard in order, whichever lane had them (the last,
        # a 1.5 s card name alone on its lane, is too short to be sure of).
        at = [r["text"].find(w) for w in ("leisure", "forward", "young")]
        assert -1 not in at and at == sorted(at), (lanes, r["text"])
    # Lanes share the same chunks: text differs at most where a lane's
    # first chunk starts afresh (a word or two per lane), never by clips.
    one = texts["1"].split()
    for lanes in ("2", "4"):
        assert abs(len(texts[lanes].split()) - len(one)) <= 2 * int(lanes), texts
    run = lucy_transcribe(call, env=lucy_env(LUCY_ASR_THREADS="abc"))
    err = run.stderr.decode().strip()
    assert run.returncode == 2 and "LUCY_ASR_THREADS" in err and len(err.splitlines()) == 1, err


def test_silence_gives_no_segments(tmp_path):
    silence = str(tmp_path / "silence.m4a")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "anullsrc=r=44100:cl=stereo", "-t", "30", "-c:a", "aac", silence],
                   check=True, timeout=60)
    run = lucy_transcribe(silence, "--json")
    assert run.returncode == 0, run.stderr.decode()
    r = json.loads(run.stdout)
    assert r["segments"] == [] and r["text"] == ""
    assert abs(r["duration_s"] - 30.0) < 0.1


@pytest.mark.parametrize("content", [b"", b"hello, this is not audio\n" * 100])
def test_undecodable_file_is_one_line_exit_1(tmp_path, content):
    bad = tmp_path / "call.m4a"
    bad.write_bytes(content)
    run = lucy_transcribe(str(bad))
    assert run.returncode == 1
    err = run.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "not decodable audio" in err, err


def test_truncated_file_warns_once(tmp_path):
    """A cut-off recording (the container says 7.1 s, 4.2 s decode): one
    warning line on stderr, not the decoder's log line plus the command's
    own line as before."""
    whole, cut = str(tmp_path / "whole.m4a"), str(tmp_path / "cut.m4a")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i",
                    os.path.join(AUDIO, "librivox-0870.m4a"), "-c", "copy", "-movflags",
                    "+faststart", whole], check=True, timeout=60)
    with open(whole, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[:len(data) * 6 // 10])
    run = lucy_transcribe(cut, "--json")
    assert run.returncode == 0, run.stderr.decode()
    lines = [l for l in run.stderr.decode().splitlines() if "cut.m4a" in l]
    assert len(lines) == 1 and "truncated" in lines[0], lines
    assert json.loads(lines[0])["level"] == "warning"


def test_usage_errors_exit_2():
    assert lucy_transcribe(os.path.join(AUDIO, "goforward.m4a"), "--engine", "nope").returncode == 2
    assert subprocess.run([LUCY_BIN, "transcribe"], capture_output=True,
                          env=lucy_env()).returncode == 2
    # --chunk-s has LUCY_ASR_CHUNK_S's range (5-600), and 0 for the whole file
    for bad in ("3", "601", "-1", "x"):
        run = lucy_transcribe(os.path.join(AUDIO, "goforward.m4a"), "--chunk-s", bad)
        assert run.returncode == 2 and b"5 to 600" in run.stderr, (bad, run.stderr)


# ---- http engine against a real OpenAI-compatible server ------------------

def start_server(*args):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "asr_server.py"), *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening "), line
    return proc, "http://127.0.0.1:%d/v1/audio/transcriptions" % int(line.split()[1])


@pytest.fixture
def asr_server():
    started = []

    def start(*args):
        proc, url = start_server(*args)
        started.append(proc)
        return url

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_http_engine_end_to_end(asr_server, results):
    _, _, cli = results
    url = asr_server()
    run = lucy_transcribe(os.path.join(AUDIO, "librivox-0880.m4a"), "--json",
                          env=lucy_env(LUCY_ASR_URL=url))  # auto picks http
    assert run.returncode == 0, run.stderr.decode()
    r = json.loads(run.stdout)
    assert r["engine"] == "http" and r["model"] == "whisper-1"
    assert r["language"] == "english"
    # the server ran pocketsphinx_continuous on lucy's WAV upload: the same
    # words as the CLI on ffmpeg's WAV of the same file
    assert r["text"] == cli["librivox-0880.m4a"]
    assert r["segments"]
    for s in r["segments"]:
        assert 0 <= s["t0_ms"] < s["t1_ms"] <= 3100 and s["text"]


def test_http_server_error_is_exit_1_with_its_message(asr_server):
    url = asr_server("--decoder", "/bin/false")
    run = lucy_transcribe(os.path.join(AUDIO, "goforward.m4a"), "--engine", "http",
                          env=lucy_env(LUCY_ASR_URL=url))
    assert run.returncode == 1
    err = run.stderr.decode().strip()
    assert len(err.splitlines()) == 1, err
    assert "HTTP 500" in err and "speech decoder failed with exit status 1" in err, err


def test_http_server_unreachable_is_exit_1():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lucy_transcribe(os.path.join(AUDIO, "goforward.m4a"), "--engine", "http",
                          env=lucy_env(LUCY_ASR_URL="http://127.0.0.1:%d/v1/audio/transcriptions"
                                       % port))
    assert run.returncode == 1
    assert "cannot reach the ASR server" in run.stderr.decode()
