#!/usr/bin/python3
"""A small but real OpenAI-compatible transcription server for tests.

POST /v1/audio/transcriptions, multipart/form-data with `file`, `model`,
`response_format` (json | verbose_json | text) and `timestamp_granularities[]`
(word, segment: verbose_json's `words[]` and `segments[]`), as OpenAI's API
takes it.
The uploaded audio is converted by the ffmpeg CLI to 16 kHz mono 16-bit WAV
and transcribed by `pocketsphinx_continuous -time yes`; each utterance the
decoder finds becomes one segment with its word-time start and end (seconds).
Errors are answered the OpenAI way: {"error": {"message", "type"}} with 400
for a bad request and 500 when the decoder fails.

Standard library only. Usage:
    asr_server.py [--port N] [--decoder PROGRAM]
prints "listening PORT" on stdout once it accepts connections. --decoder
replaces pocketsphinx_continuous (a test points it at a program that fails,
to get a real 500).
"""
import argparse
import email.parser
import email.policy
import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILLERS = ("<", "[", "++")
MAX_BODY_BYTES = 64 * 1024 * 1024


class TranscriptionError(Exception):
    def __init__(self, status, message, kind):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def parse_multipart(content_type, body):
    """{field name: (filename or None, bytes)} of a multipart/form-data body."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise TranscriptionError(400, "expected multipart/form-data", "invalid_request_error")
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and name.endswith("[]"):  # an array field: every value, in order
            fields.setdefault(name, []).append(part.get_payload(decode=True) or b"")
        elif name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def word_times(output):
    """Utterances from `pocketsphinx_continuous -time yes` stdout: each a
    list of (word, start_s, end_s). A hypothesis line is followed by one
    "word start end confidence" line per word."""
    utterances = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4:
            try:
                start, end = float(parts[1]), float(parts[2])
                float(parts[3])
            except ValueError:
                utterances.append([])  # a four-word hypothesis
                continue
            if not utterances:
                utterances.append([])
            word = parts[0]
            if not word.startswith(FILLERS):
                utterances[-1].append((word.split("(")[0], start, end))
        elif parts:
            utterances.append([])
    return [u for u in utterances if u]


def transcribe(audio, decoder):
    with tempfile.TemporaryDirectory(prefix="asr-server-") as tmp:
        src = os.path.join(tmp, "upload")
        wav = os.path.join(tmp, "audio.wav")
        with open(src, "wb") as f:
            f.write(audio)
        conv = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", src, "-ar", "16000", "-ac", "1",
             "-c:a", "pcm_s16le", "-fflags", "+bitexact", "-flags:a", "+bitexact", wav],
            capture_output=True, timeout=120)
        if conv.returncode != 0:
            raise TranscriptionError(400, "could not decode the audio file: %s" %
                                     conv.stderr.decode("utf-8", "replace").strip()[:300],
                                     "invalid_request_error")
        run = subprocess.run([decoder, "-infile", wav, "-time", "yes"], capture_output=True,
                             timeout=600)
        if run.returncode != 0:
            raise TranscriptionError(500, "speech decoder failed with exit status %d" %
                                     run.returncode, "server_error")
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                "-of", "csv=p=0", wav], capture_output=True, timeout=60)
        try:
            duration = float(probe.stdout.decode().strip())
        except ValueError:
            duration = 0.0
    segments = []
    for i, words in enumerate(word_times(run.stdout.decode("utf-8", "replace"))):
        segments.append({
            "id": i, "seek": 0, "start": words[0][1], "end": words[-1][2],
            "text": " " + " ".join(w for w, _, _ in words),
            "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
            "compression_ratio": 1.0, "no_speech_prob": 0.0,
        })
    text = " ".join(s["text"].strip() for s in segments)
    # verbose_json's words[] (timestamp_granularities[]=word): {word, start, end}.
    words = [{"word": w, "start": a, "end": b}
             for u in word_times(run.stdout.decode("utf-8", "replace")) for w, a, b in u]
    return {"task": "transcribe", "language": "english", "duration": duration,
            "text": text, "segments": segments, "words": words}


class Handler(BaseHTTPRequestHandler):
    decoder = "pocketsphinx_continuous"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        try:
            if self.path.rstrip("/") != "/v1/audio/transcriptions":
                raise TranscriptionError(404, "no route %s" % self.path, "invalid_request_error")
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY_BYTES:
                raise TranscriptionError(400, "missing or oversized body", "invalid_request_error")
            fields = parse_multipart(self.headers.get("Content-Type", ""), self.rfile.read(length))
            if "file" not in fields or not fields["file"][1]:
                raise TranscriptionError(400, "missing the 'file' field", "invalid_request_error")
            if "model" not in fields:
                raise TranscriptionError(400, "missing the 'model' field", "invalid_request_error")
            fmt = fields.get("response_format", (None, b"json"))[1].decode()
            granularities = [v.decode() for v in fields.get("timestamp_granularities[]", [])]
            if any(g not in ("word", "segment") for g in granularities):
                raise TranscriptionError(400, "timestamp_granularities[] must be word or segment",
                                         "invalid_request_error")
            if granularities and fmt != "verbose_json":
                raise TranscriptionError(400, "timestamp_granularities[] needs verbose_json",
                                         "invalid_request_error")
            result = transcribe(fields["file"][1], self.decoder)
            # OpenAI: segments only when asked for (or no granularity given),
            # words only when asked for.
            if granularities and "segment" not in granularities:
                result.pop("segments")
            if "word" not in granularities:
                result.pop("words")
            if fmt == "text":
                self.reply(200, result["text"].encode(), "text/plain")
            elif fmt == "verbose_json":
                self.reply(200, result)
            else:
                self.reply(200, {"text": result["text"]})
        except TranscriptionError as e:
            self.reply(e.status, {"error": {"message": e.message, "type": e.kind,
                                            "param": None, "code": None}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--decoder", default="pocketsphinx_continuous")
    args = ap.parse_args()
    Handler.decoder = args.decoder
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
