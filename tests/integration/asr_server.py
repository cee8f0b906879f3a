#!/usr/bin/python3
"""A small but real OpenAI-compatible transcription server for tests.

POST /v1/audio/transcriptions, multipart/form-data, as OpenAI's API takes
it. Every request is checked against OpenAI's published OpenAPI description
(tests/openai/openapi.json, schema CreateTranscriptionRequest: the form
fields as one object, `name[]` fields as arrays, no unknown field, `file`
a named upload; plus the rule of its description that
`timestamp_granularities` needs `response_format=verbose_json`), and a
request that does not match gets OpenAI's 400 with what is wrong. The
uploaded audio is converted by the ffmpeg CLI to 16 kHz mono 16-bit WAV and
transcribed by `pocketsphinx_continuous -time yes`; each utterance the
decoder finds becomes one segment with its word-time start and end
(seconds), and each word (fillers dropped) one entry of `words`. As OpenAI
does, `segments` are in a verbose_json answer when the `segment`
granularity is asked for (the default), `words` when `word` is. Every
answer is checked against CreateTranscriptionResponseVerboseJson (or
...ResponseJson) before it is sent: a double that drifted from the
published schema answers 500 rather than teach lucy a wrong format.
Errors are answered the OpenAI way: {"error": {"message", "type"}} with 400
for a bad request and 500 when the decoder fails.

Standard library + Debian python3-jsonschema (4.10: RefResolver, Draft7).
Usage:
    asr_server.py [--port N] [--decoder PROGRAM] [--answers DIR] [--whisper-cpp]
prints "listening PORT" on stdout once it accepts connections. --decoder
replaces pocketsphinx_continuous (a test points it at a program that fails,
to get a real 500). --answers writes each 200 answer's JSON to DIR/N.json
(N = 1, 2, ...), so a test can compare what lucy made of it. --whisper-cpp
answers verbose_json the way whisper.cpp's whisper-server does: no
top-level `words`, but each segment's own `words` of tokens, a word longer
than three letters split in two (" forw" + "ard", the second without the
leading space that marks a new word).
"""
import argparse
import email.parser
import email.policy
import itertools
import json
import os
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jsonschema import Draft7Validator, RefResolver
from jsonschema.exceptions import best_match

FILLERS = ("<", "[", "++")
MAX_BODY_BYTES = 64 * 1024 * 1024
OPENAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "openai", "openapi.json")


class Schemas:
    """Validators for schemas of OpenAI's OpenAPI document, $refs resolved
    inside it."""

    def __init__(self, path=OPENAPI):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.resolver = RefResolver.from_schema(self.doc)
        self.validators = {}

    def errors(self, name, instance):
        """None when instance matches components.schemas[name], else the
        most telling error as text."""
        v = self.validators.get(name)
        if v is None:
            v = self.validators[name] = Draft7Validator(
                {"$ref": "#/components/schemas/" + name}, resolver=self.resolver)
        err = best_match(v.iter_errors(instance))
        if err is None:
            return None
        where = "/".join(str(p) for p in err.absolute_path) or "(the request)"
        return "%s: %s" % (where, err.message)


class TranscriptionError(Exception):
    def __init__(self, status, message, kind):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def parse_multipart(content_type, body):
    """[(field name, filename or None, content type, bytes)] of a
    multipart/form-data body, in order."""
    if not content_type.startswith("multipart/form-data"):
        raise TranscriptionError(400, "expected multipart/form-data, got %r" % content_type,
                                 "invalid_request_error")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise TranscriptionError(400, "expected multipart/form-data", "invalid_request_error")
    parts = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise TranscriptionError(400, "a multipart part has no name", "invalid_request_error")
        parts.append((name, part.get_filename(), part.get_content_type(),
                      part.get_payload(decode=True) or b""))
    return parts


def form_instance(parts):
    """The form as the JSON object CreateTranscriptionRequest describes:
    `x[]` fields become the array `x`, numbers and booleans are read as
    such (a form carries text), `file` a string standing for the upload.
    Returns (instance, audio bytes or None)."""
    numbers, booleans = ("temperature",), ("stream",)
    instance, audio = {}, None
    for name, filename, ctype, data in parts:
        if name.endswith("[]"):
            instance.setdefault(name[:-2], []).append(data.decode("utf-8", "replace"))
            continue
        if name in instance:
            raise TranscriptionError(400, "the field %r is sent twice" % name,
                                     "invalid_request_error")
        if name == "file":
            if not filename or not data:
                raise TranscriptionError(400, "'file' must be a named, non-empty upload",
                                         "invalid_request_error")
            instance[name], audio = "%s (%s, %d bytes)" % (filename, ctype, len(data)), data
            continue
        text = data.decode("utf-8", "replace")
        if name in numbers:
            try:
                instance[name] = float(text)
                continue
            except ValueError:
                pass
        if name in booleans and text in ("true", "false"):
            instance[name] = text == "true"
            continue
        instance[name] = text
    return instance, audio


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
    segments, words = [], []
    for i, utterance in enumerate(word_times(run.stdout.decode("utf-8", "replace"))):
        segments.append({
            "id": i, "seek": 0, "start": utterance[0][1], "end": utterance[-1][2],
            "text": " " + " ".join(w for w, _, _ in utterance),
            "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
            "compression_ratio": 1.0, "no_speech_prob": 0.0,
        })
        words += [{"word": w, "start": t0, "end": t1} for w, t0, t1 in utterance]
    text = " ".join(s["text"].strip() for s in segments)
    return {"task": "transcribe", "language": "english", "duration": duration,
            "text": text, "segments": segments, "words": words}


def as_whisper_cpp(result):
    """Moves result's words into its segments as whisper.cpp tokens."""
    words = result.pop("words", None) or []
    for seg in result.get("segments", []):
        seg["words"] = []
        for w in words:
            if seg["start"] <= w["start"] and w["end"] <= seg["end"]:
                text, t0, t1 = w["word"], w["start"], w["end"]
                if len(text) > 3:
                    mid = round((t0 + t1) / 2, 3)
                    seg["words"] += [{"word": " " + text[:-3], "start": t0, "end": mid},
                                     {"word": text[-3:], "start": mid, "end": t1}]
                else:
                    seg["words"].append({"word": " " + text, "start": t0, "end": t1})


class Handler(BaseHTTPRequestHandler):
    decoder = "pocketsphinx_continuous"
    schemas = None  # Schemas, loaded once in main()
    answers_dir = None  # --answers
    whisper_cpp = False  # --whisper-cpp
    answers = itertools.count(1)
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
            parts = parse_multipart(self.headers.get("Content-Type", ""), self.rfile.read(length))
            form, audio = form_instance(parts)
            problem = self.schemas.errors("CreateTranscriptionRequest", form)
            if problem:
                raise TranscriptionError(400, "the request does not match OpenAI's "
                                         "CreateTranscriptionRequest: " + problem,
                                         "invalid_request_error")
            fmt = form.get("response_format", "json")
            granularities = form.get("timestamp_granularities")
            if granularities is not None and fmt != "verbose_json":
                raise TranscriptionError(400, "timestamp_granularities needs response_format "
                                         "verbose_json", "invalid_request_error")
            if fmt not in ("json", "text", "verbose_json"):
                raise TranscriptionError(400, "response_format %s is not supported by this "
                                         "server" % fmt, "invalid_request_error")
            result = transcribe(audio, self.decoder)
            if fmt == "text":
                self.reply(200, result["text"].encode(), "text/plain")
                return
            if fmt == "verbose_json":
                granularities = granularities or ["segment"]
                if "segment" not in granularities:
                    del result["segments"]
                if "word" not in granularities:
                    del result["words"]
                if self.whisper_cpp:
                    as_whisper_cpp(result)
                schema = "CreateTranscriptionResponseVerboseJson"
            else:
                result, schema = {"text": result["text"]}, "CreateTranscriptionResponseJson"
            problem = self.schemas.errors(schema, result)
            if problem:
                raise TranscriptionError(500, "the double's answer does not match %s: %s" %
                                         (schema, problem), "server_error")
            if self.answers_dir:
                with open(os.path.join(self.answers_dir, "%d.json" % next(self.answers)), "w") as f:
                    json.dump(result, f)
            self.reply(200, result)
        except TranscriptionError as e:
            sys.stderr.write("asr_server: %d %s\n" % (e.status, e.message))
            self.reply(e.status, {"error": {"message": e.message, "type": e.kind,
                                            "param": None, "code": None}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--decoder", default="pocketsphinx_continuous")
    ap.add_argument("--answers", default=None)
    ap.add_argument("--whisper-cpp", action="store_true")
    args = ap.parse_args()
    Handler.decoder = args.decoder
    Handler.schemas = Schemas()
    Handler.answers_dir = args.answers
    Handler.whisper_cpp = args.whisper_cpp
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
