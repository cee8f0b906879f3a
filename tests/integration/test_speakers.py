"""Who said what (DESIGN §13): per-channel transcription of stereo calls,
chunks at pauses, word timings, progress with checkpoints and resume, and
the truncated warning - the real binary, FFmpeg and pocketsphinx.

Every recording is built IN THE TEST with the ffmpeg CLI from the real
clips of tests/fixtures/audio/: a stereo call has one clip sequence per
channel, offset with silence so the parties alternate. Word error rates
are scored with NIST sclite (Debian `sctk`) against transcripts.tsv, for
lucy's segments of one speaker and for `pocketsphinx_continuous` on that
channel alone (extracted by ffmpeg from the same stereo file).
"""
import os
import re
import shutil
import subprocess

import pytest

from audio_build import AUDIO, channel_wav, ffmpeg, references, stereo_call

DONE = ("done", "no_speech")
SCLITE = shutil.which("sclite") or "/usr/lib/sctk/bin/sclite"
needs_sclite = pytest.mark.skipif(not os.path.exists(SCLITE), reason="sclite (Debian sctk) missing")
# A BCR-style name with the other party's number: the scanner links it to
# a person, who becomes the "them" speaker.
CALL_NAME = "+14155550123_20240301-101500_incoming.m4a"

# Left ("me"): two clips; right ("them"): two others, in the gaps.
LEFT = [("librivox-0870.m4a", None), (None, 8), ("librivox-0880.m4a", None), (None, 10)]
RIGHT = [(None, 8), ("librivox-0890.m4a", None), (None, 6), ("goforward.m4a", None)]


def start(start_lucy, rec_dir, **env):
    e = {
        "LUCY_RECORDINGS_DIRS": rec_dir,
        "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx",
        "LUCY_ASR_THREADS": "1",
        "LUCY_JOB_RETRY_BASE_S": "1",
    }
    e.update(env)
    return start_lucy(env=e)


def recordings(lucy):
    r = lucy.get("/recordings", params={"limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["recordings"]


def wait_transcribed(lucy, n, timeout=300):
    def ready():
        recs = recordings(lucy)
        return len(recs) >= n and all(r["transcript_status"] in DONE for r in recs) and recs
    return lucy.wait_for(ready, timeout=timeout, interval=0.2, what="%d recordings transcribed" % n)


def by_name(lucy):
    out = {}
    for rec in recordings(lucy):
        for p in rec["paths"]:
            out[os.path.basename(p["path"])] = lucy.get("/recordings/" + rec["id"]).json()
    return out


def metric(lucy, name):
    text = lucy.get("/metrics").text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no metric %s in /metrics" % name
    return float(m.group(1))


def words(text):
    return text.lower().split()


def sclite_wer(tmp, tag, ref, hyp):
    """Word error rate of hyp against ref (strings), scored by sclite."""
    rf, hf = os.path.join(tmp, tag + ".ref"), os.path.join(tmp, tag + ".hyp")
    with open(rf, "w") as f:
        f.write("%s (spk_%s)\n" % (ref, tag))
    with open(hf, "w") as f:
        f.write("%s (spk_%s)\n" % (hyp, tag))
    run = subprocess.run([SCLITE, "-r", rf, "trn", "-h", hf, "trn", "-i", "rm", "-o", "sum",
                          "stdout"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # | Sum/Avg|    1   22 | 81.8  18.2   0.0   4.5  22.7  100.0 |
    line = [l for l in run.stdout.splitlines() if "Sum/Avg" in l][0]
    nums = re.findall(r"[\d.]+", line)
    return float(nums[6]) / 100.0


def continuous(wav):
    run = subprocess.run(["pocketsphinx_continuous", "-infile", wav], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return " ".join(l.strip() for l in run.stdout.splitlines() if l.strip())


def check_words(seg):
    """Words in order, each inside its segment."""
    prev = seg["t0_ms"]
    for w in seg["words"]:
        assert seg["t0_ms"] <= w["t0_ms"] <= w["t1_ms"] <= seg["t1_ms"], (w, seg)
        assert w["t0_ms"] >= prev, seg
        prev = w["t1_ms"]
        assert w["text"]
    assert " ".join(w["text"] for w in seg["words"]) == seg["text"], seg


@needs_sclite
def test_stereo_call_per_channel_speakers_words_and_wer(start_lucy, tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    call = str(d / CALL_NAME)
    stereo_call(str(tmp_path), LEFT, RIGHT, call)
    lucy = start(start_lucy, str(d))
    wait_transcribed(lucy, 1)
    rec = by_name(lucy)[CALL_NAME]
    t = rec["transcript"]
    assert t["channels"] == 2 and t["warnings"] == [] and t["truncated"] is False, t
    person = rec["call"]["person"]
    assert person and person["id"] > 0, rec["call"]
    segs = t["segments"]
    assert {s["speaker"] for s in segs} == {"me", person["id"]}, segs
    assert [s["t0_ms"] for s in segs] == sorted(s["t0_ms"] for s in segs), "not in time order"
    for s in segs:
        assert s["channel"] == (0 if s["speaker"] == "me" else 1), s
        assert s["words"], s
        check_words(s)

    # "me" holds the left clips' words, "them" the right's: each side's
    # text shares far more words with its own clips than with the others.
    refs = references()
    left_ref = " ".join(refs[n] for n, _ in LEFT if n)
    right_ref = " ".join(refs[n] for n, _ in RIGHT if n)
    me = " ".join(s["text"] for s in segs if s["speaker"] == "me")
    them = " ".join(s["text"] for s in segs if s["speaker"] != "me")
    own = lambda hyp, ref: len(set(words(hyp)) & set(words(ref)))
    assert own(me, left_ref) > 2 * own(me, right_ref), (me, left_ref)
    assert own(them, right_ref) > 2 * own(them, left_ref), (them, right_ref)
    assert "forward" in them and "forward" not in me

    # Per-channel WER no worse than pocketsphinx_continuous on that channel
    # alone + 0.05.
    for ch, hyp, ref in ((0, me, left_ref), (1, them, right_ref)):
        wav = str(tmp_path / ("ch%d.wav" % ch))
        ffmpeg("-i", call, "-af", "pan=mono|c0=c%d" % ch, "-ar", "16000", "-c:a", "pcm_s16le", wav)
        lucy_wer = sclite_wer(str(tmp_path), "lucy%d" % ch, ref, hyp)
        cli_wer = sclite_wer(str(tmp_path), "cli%d" % ch, ref, continuous(wav))
        print("channel %d WER: lucy %.3f, pocketsphinx_continuous %.3f" % (ch, lucy_wer, cli_wer))
        assert lucy_wer <= cli_wer + 0.05, (ch, lucy_wer, cli_wer, hyp)

    # ?speaker= filters the segments; a bad value is a 400 that says what
    # to use.
    path = "/recordings/" + rec["id"]
    mine = lucy.get(path, params={"speaker": "me"}).json()["transcript"]["segments"]
    theirs = lucy.get(path, params={"speaker": "them"}).json()["transcript"]["segments"]
    by_id = lucy.get(path, params={"speaker": str(person["id"])}).json()["transcript"]["segments"]
    assert mine and all(s["speaker"] == "me" for s in mine)
    assert theirs and theirs == by_id and all(s["speaker"] == person["id"] for s in theirs)
    assert len(mine) + len(theirs) == len(segs)
    r = lucy.get(path, params={"speaker": "nobody"})
    assert r.status_code == 400 and r.json()["error_type"] == "bad_request"
    assert "me, them" in r.json()["message"]
    # Answers say who spoke, as the recording does: "forward" was said on
    # the right (the person), a word only the left said is "me".
    def cited_speaker(q):
        cites = [c for c in lucy.get("/ask", params={"q": q}).json()["citations"]
                 if c["source"] == "call_recording"]
        assert cites, q
        return cites[0]["speaker"]
    assert cited_speaker("forward") == person["id"]
    mine_only = next(w for w in words(me) if len(w) > 5 and w not in words(them))
    assert cited_speaker(mine_only) == "me", mine_only
    # Chunks: silence skipped, so the audio recognised is well under twice
    # the call's length (two channels).
    assert metric(lucy, "lucy_asr_chunk_audio_seconds_total") < 2 * t["duration_s"] * 0.75


def test_identical_channels_once_and_mix(start_lucy, tmp_path):
    """A stereo file whose channels carry one signal is transcribed once,
    as mono; LUCY_CALL_CHANNELS=mix mixes a two-party call."""
    d = tmp_path / "rec"
    d.mkdir()
    mono = str(tmp_path / "mono.wav")
    channel_wav(LEFT[:1], mono)
    ffmpeg("-i", mono, "-ac", "2", "-ar", "44100", "-c:a", "aac", "-b:a", "128k",
           str(d / "twins.m4a"))
    lucy = start(start_lucy, str(d))
    wait_transcribed(lucy, 1)
    t = by_name(lucy)["twins.m4a"]["transcript"]
    assert t["channels"] == 1, t
    assert t["segments"] and all(s["speaker"] is None and s["channel"] is None
                                 for s in t["segments"]), t
    assert "leisure" in t["text"]
    once = metric(lucy, "lucy_asr_chunk_audio_seconds_total")
    assert 0 < once <= t["duration_s"] + 0.5, (once, t["duration_s"])

    d2 = tmp_path / "rec2"
    d2.mkdir()
    stereo_call(str(tmp_path), LEFT, RIGHT, str(d2 / "call.m4a"))
    lucy2 = start(start_lucy, str(d2), LUCY_CALL_CHANNELS="mix")
    wait_transcribed(lucy2, 1)
    t = by_name(lucy2)["call.m4a"]["transcript"]
    assert t["channels"] == 1 and all(s["speaker"] is None for s in t["segments"]), t
    assert "forward" in t["text"] and "leisure" in t["text"]


CLIPS = ["librivox-0870.m4a", "librivox-0880.m4a", "librivox-0890.m4a", "goforward.m4a",
         "cards-001.ogg", "cards-002-8k.wav", "cards-003-stereo.m4a"]


def long_call(tmp_path):
    """A folder tmp_path/rec with long.wav: every clip twice, 3 s of
    silence after each."""
    d = tmp_path / "rec"
    d.mkdir()
    parts = []
    for name in CLIPS * 2:
        parts += [(name, None), (None, 3)]
    channel_wav(parts, str(d / "long.wav"))
    return d


@pytest.mark.parametrize("lanes", [1, 2])
def test_progress_checkpoints_and_resume_after_kill9(start_lucy, tmp_path, lanes):
    """A long recording (every clip twice, 3 s of silence between) is
    chunked; lucy is killed with SIGKILL once the API reports about half
    of it done; after the restart the job resumes from its checkpoints and
    recognises again at most one chunk per lane (LUCY_ASR_THREADS lanes,
    each an engine instance with the chunk it was on)."""
    d = long_call(tmp_path)
    data = str(tmp_path / "data")
    env = {"LUCY_ASR_CHUNK_S": "5", "LUCY_ASR_THREADS": str(lanes)}
    lucy = start(start_lucy, str(d), **env)
    rec = lucy.wait_for(lambda: recordings(lucy), timeout=60, what="the recording scanned")[0]

    def job_id():
        r = lucy.get("/recordings/" + rec["id"]).json()
        return r["job"] and r["job"].get("job_id")
    jid = lucy.wait_for(job_id, timeout=60, what="a job")
    seen = {}

    def half_way():
        j = lucy.get("/jobs/%d" % jid).json()
        assert j["status"] in ("queued", "running"), "the job ended before half way: %r" % j
        if j["status"] != "running" or j["progress"] is None:
            return False
        if "rec" not in seen:
            r = lucy.get("/recordings/" + rec["id"]).json()
            if r["progress"] is not None and r["chunks_total"]:  # 0 while decoding
                seen["rec"] = r
        if j["progress"] >= 0.5:
            return j
        return False
    at_kill = lucy.wait_for(half_way, timeout=300, interval=0.02, what="progress >= 0.5")
    # Each lane is an engine instance with its model (the job has chunks
    # enough for every lane).
    loaded = metric(lucy, 'lucy_asr_instances_loaded{engine="pocketsphinx"}')
    lucy.kill9()
    assert loaded == lanes, loaded
    total, done_before = at_kill["chunks_total"], at_kill["chunks_done"]
    assert total >= 8 and 0 < done_before < total, at_kill
    assert 0.5 <= at_kill["progress"] < 1 and at_kill["eta_s"] is not None, at_kill
    # /recordings/{id} reported it too while it ran.
    assert seen["rec"]["chunks_total"] == total and 0 <= seen["rec"]["progress"] < 1

    lucy2 = start_lucy(env={
        "LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0", "LUCY_ASR_ENGINE": "pocketsphinx",
        **env}, data_dir=lucy.data_dir)
    lucy2.wait_for(lambda: lucy2.get("/jobs/%d" % jid).json()["status"] in DONE, timeout=300,
                   interval=0.1, what="the resumed job done")
    again = metric(lucy2, "lucy_asr_chunks_total")
    assert again <= total - done_before + lanes, (again, total, done_before)
    assert "transcription resumed from checkpoints" in lucy2.log_text()
    t = lucy2.get("/recordings/" + rec["id"]).json()
    assert t["progress"] is None and t["eta_s"] is None
    t = t["transcript"]
    # Segments from before the kill (checkpoints) and after it, in order.
    assert "leisure" in t["text"] and "clubs" in t["text"], t["text"]
    starts = [s["t0_ms"] for s in t["segments"]]
    assert starts == sorted(starts) and starts[-1] > t["duration_s"] * 1000 * 0.8, starts
    for s in t["segments"]:
        check_words(s)


SANITIZED = "asan" in os.path.basename(os.path.normpath(
    os.environ.get("LUCY_BUILD_DIR", os.path.dirname(os.environ.get("LUCY_BIN", "")))))


def vm_peak_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmPeak:"))


@pytest.mark.skipif(SANITIZED, reason="ASan reserves terabytes of address space: no RLIMIT_AS")
def test_no_room_for_a_lane_means_fewer_lanes_not_a_crash(start_lucy, tmp_path):
    """pocketsphinx ends the process when an allocation fails, so an extra
    lane loads only with memory to spare (lucy_asr_room_for_lane). Under an
    address-space limit (RLIMIT_AS, as `ulimit -v` or a container's) with
    room for one model but not a second, LUCY_ASR_THREADS=4 transcribes on
    one lane, says so, and lucy lives."""
    d = long_call(tmp_path)
    env = {"LUCY_ASR_CHUNK_S": "5"}
    # How much address space one lane takes here, unlimited.
    one = start(start_lucy, str(d), **env)
    wait_transcribed(one, 1)
    peak_kb = vm_peak_kb(one.proc.pid)
    one.stop()
    # Room for that plus ~150 MB: not for the second lane (~200 MB).
    wrapper = tmp_path / "lucy-limited"
    wrapper.write_text("#!/bin/sh\nulimit -v %d\nexec %s \"$@\"\n"
                       % (peak_kb + 150 * 1024, os.environ["LUCY_BIN"]))
    wrapper.chmod(0o755)
    d2 = tmp_path / "rec2"
    d2.mkdir()
    shutil.copy(str(d / "long.wav"), str(d2 / "long.wav"))
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d2), "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "4", **env},
                      binary=str(wrapper))
    recs = wait_transcribed(lucy, 1)
    assert recs[0]["transcript_status"] == "done", recs
    assert lucy.proc.poll() is None, "lucy died"
    assert "no memory for another recognition lane" in lucy.log_text()
    assert metric(lucy, 'lucy_asr_instances_loaded{engine="pocketsphinx"}') == 1


def test_truncated_and_odd_files(start_lucy, tmp_path):
    """A cut-off mp3 gets the truncated warning; a mono file named stereo,
    a 6-channel file and an hour of silence are each handled."""
    d = tmp_path / "rec"
    d.mkdir()
    wav = str(tmp_path / "long.wav")
    channel_wav(LEFT, wav)
    full = str(tmp_path / "full.mp3")
    ffmpeg("-i", wav, "-c:a", "libmp3lame", "-b:a", "64k", full)  # a Xing header: the duration
    with open(full, "rb") as f, open(str(d / "cut.mp3"), "wb") as out:
        out.write(f.read(os.path.getsize(full) // 6))
    ffmpeg("-i", os.path.join(AUDIO, "goforward.m4a"), "-c:a", "aac", str(d / "call-stereo.m4a"))
    ffmpeg("-i", os.path.join(AUDIO, "goforward.m4a"), "-ac", "6", "-c:a", "aac",
           str(d / "six.m4a"))
    ffmpeg("-f", "lavfi", "-t", "3600", "-i", "anullsrc=r=16000:cl=mono", "-c:a", "aac", "-b:a",
           "16k", str(d / "hour.m4a"))
    lucy = start(start_lucy, str(d))
    wait_transcribed(lucy, 4, timeout=600)
    recs = by_name(lucy)

    cut = recs["cut.mp3"]
    t = cut["transcript"]
    assert cut["transcript_status"] == "done", cut
    assert t["truncated"] is True and t["warnings"] == ["truncated"], t
    assert t["source_duration_s"] > 3 * t["duration_s"], t
    assert "leisure" in t["text"] or "consider" in t["text"], t

    for name in ("call-stereo.m4a", "six.m4a"):
        rec = recs[name]
        t = rec["transcript"]
        assert rec["transcript_status"] == "done" and t["channels"] == 1, (name, t)
        assert "forward" in t["text"] and t["warnings"] == [], (name, t)
        assert all(s["speaker"] is None and s["channel"] is None for s in t["segments"])
    assert recs["six.m4a"]["channels"] == 6

    hour = recs["hour.m4a"]
    assert hour["transcript_status"] == "no_speech", hour
    assert hour["transcript"]["segments"] == [] and hour["transcript"]["truncated"] is False
    assert 3590 < hour["transcript"]["duration_s"] < 3610
    # Its version names the model, though nothing was recognised.
    versions = lucy.get("/recordings/%s/transcripts" % hour["id"]).json()["versions"]
    assert versions and versions[0]["engine"] == "pocketsphinx" and versions[0]["model"], versions
    # Silence is never sent to the recogniser: only the other files' audio
    # was recognised.
    assert metric(lucy, "lucy_asr_chunk_audio_seconds_total") < 60


def test_http_engine_word_times_per_channel(start_lucy, tmp_path):
    """The http engine asks for word timestamps (timestamp_granularities[]
    segment and word, verbose_json) of each chunk; asr_server.py answers as
    OpenAI does; the words land in their segments, on the file's clock."""
    import sys
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                          "asr_server.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening "), line
        url = "http://127.0.0.1:%d/v1/audio/transcriptions" % int(line.split()[1])
        d = tmp_path / "rec"
        d.mkdir()
        stereo_call(str(tmp_path), LEFT, RIGHT, str(d / "call.m4a"))
        lucy = start(start_lucy, str(d), LUCY_ASR_ENGINE="http", LUCY_ASR_URL=url)
        wait_transcribed(lucy, 1)
        t = by_name(lucy)["call.m4a"]["transcript"]
        assert t["engine"] == "http" and t["channels"] == 2, t
        segs = t["segments"]
        assert {s["speaker"] for s in segs} == {"me", None}, segs  # no person: a bare name
        them = [s for s in segs if s["channel"] == 1]
        assert them and any("forward" in s["text"] for s in them)
        for s in segs:
            assert s["words"], s
            check_words(s)
        # The second clip of the right channel starts 8 + 5.3 + 6 s in.
        fwd = [w for s in them for w in s["words"] if w["text"] == "forward"]
        assert fwd and 19000 < fwd[0]["t0_ms"] < 22000, fwd
    finally:
        proc.terminate()
        proc.wait(timeout=30)
