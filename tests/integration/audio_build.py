"""Recordings built in a test from the real clips of tests/fixtures/audio/,
with the ffmpeg CLI: a channel of clips and silences, and a stereo call of
two such channels. Import from a test module (pytest puts
tests/integration on sys.path):

    from audio_build import AUDIO, channel_wav, stereo_call, references

    stereo_call(str(tmp_path), [("librivox-0880.m4a", None), (None, 4)],
                [(None, 4), ("goforward.m4a", None)], str(tmp_path / "call.m4a"))

A part is (clip name, None) or (None, seconds of digital silence).
references() gives each clip's reference transcript (transcripts.tsv).
"""
import os
import subprocess

from conftest import FIXTURES

AUDIO = os.path.join(FIXTURES, "audio")


def references():
    """{clip name: reference transcript} from transcripts.tsv."""
    refs = {}
    with open(os.path.join(AUDIO, "transcripts.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            name, text = line.rstrip("\n").split("\t")
            refs[name] = text
    return refs


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300)


def channel_wav(parts, dst):
    """A 16 kHz mono WAV: clips of the fixtures and (None, seconds) of
    digital silence, one after the other."""
    inputs, chains = [], []
    for i, (name, seconds) in enumerate(parts):
        if name:
            inputs += ["-i", os.path.join(AUDIO, name)]
        else:
            inputs += ["-f", "lavfi", "-t", str(seconds), "-i", "anullsrc=r=16000:cl=mono"]
        chains.append("[%d:a]aresample=16000,aformat=sample_fmts=s16:channel_layouts=mono[a%d]"
                      % (i, i))
    graph = ";".join(chains) + ";" + "".join("[a%d]" % i for i in range(len(parts)))
    graph += "concat=n=%d:v=0:a=1[o]" % len(parts)
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[o]", dst)


def stereo_call(tmp, left, right, dst):
    """A stereo AAC call at 44.1 kHz: left parts on channel 0, right on 1
    (tmp: a folder for the two channels' WAVs)."""
    lw, rw = os.path.join(tmp, "left.wav"), os.path.join(tmp, "right.wav")
    channel_wav(left, lw)
    channel_wav(right, rw)
    ffmpeg("-i", lw, "-i", rw, "-filter_complex",
           "[0:a][1:a]join=inputs=2:channel_layout=stereo[a]", "-map", "[a]", "-ar", "44100",
           "-c:a", "aac", "-b:a", "128k", dst)
