#!/usr/bin/env python3
"""A strict Qdrant REST test double for lucy's Qdrant index backend.

No Qdrant server can be installed on the machines lucy is tested on, so the
backend is tested against this process instead. It serves the endpoints a
search-index client needs (see ROUTES), and it is strict: every request is
checked against the operation it addresses in Qdrant's own OpenAPI 3 document
(tests/qdrant/openapi.json, Qdrant v1.19.0, Apache 2.0) before anything else
happens, so a request the real server would reject fails the test.

How a request is handled (Handler._serve):
  1. The body is read (Content-Length or chunked) and the request logged.
  2. A pending "hang" fault sleeps here (the client sees a slow server).
  3. api-key check when started with --api-key (Qdrant's 401 and its open
     paths /, /healthz, /readyz, /livez).
  4. The method and path are matched against every path of the spec.  Unknown
     path -> 404, known path but wrong method -> 405; both are violations.
  5. Path and query parameters are checked against their spec schemas (query
     strings are typed the way serde_urlencoded types them: "true"/"false"
     for booleans, digits for integers).
  6. The JSON body (Content-Type must be application/json, as actix requires)
     is validated against the operation's requestBody schema, first exactly as
     published ("faithful") and then with unknown object fields forbidden
     ("strict fields", see below).  Then the checks Qdrant makes in code
     (sparse vector lengths and unique indices, vector names and sizes, ...).
  7. The handler runs against the in-memory store; update handlers consult the
     "wal_full" fault before changing anything, like Qdrant's disk check.
Every answer with status 400, 405 or 422, and every request to an unknown
route or to an operation the double does not implement, is recorded as a
violation (GET /__double__/violations) so a test can assert that the client
never sent anything a real server would refuse.

Schema translation (OpenAPI 3.0 -> JSON Schema draft 7, to_json_schema()):
  * `nullable: true` next to `type` becomes `type: [T, "null"]`; the bare
    `{"nullable": true}` branch that Qdrant's generator puts into
    `anyOf: [{$ref}, {nullable: true}]` means "null" and becomes
    `{"type": "null"}` (read literally it would accept anything and switch
    validation of every optional field off).
  * `format` is checked for the formats the spec uses in requests: uint,
    uint8/32/64, int64, float/double (finite), uuid, date-time.
  * `integer` means a JSON number without a fraction or exponent part (serde
    rejects 1.0 for an integer field); JSON NaN/Infinity and duplicate object
    keys are rejected while parsing.
  * oneOf is kept as oneOf.  In v1.19.0 it only appears in response-side
    schemas whose branches are disjoint (tagged by an enum or by a required
    key), and every example in the spec validates under strict oneOf
    (checked by test_qdrant_double.py), so no relaxation to anyOf is needed.
  * Strict fields: Qdrant's deserializer ignores unknown object fields unless
    the struct denies them (the spec says so with additionalProperties:
    false, e.g. Filter).  A misspelt optional field ("with_paylod") would so
    be ignored silently by a real server and the client would misbehave
    without an error, so the double also validates with
    `additionalProperties: false` added to every object schema that lists
    its properties and says nothing about others.  Such a request is
    answered 400 and recorded with kind "unknown_field"; --lenient-fields
    turns this off.  Unknown query parameters are treated the same way.

Status codes follow Qdrant: 400 "Format error in JSON body: ..." for what its
deserializer rejects, 422 "Validation error in JSON body: [...]" for what its
validators reject (value ranges like limit >= 1, sparse vector rules), 404 for
a missing collection or point, 409 for creating an existing collection, 500
with the exact WAL message under the wal_full fault.  Error bodies have
Qdrant's shape {"status": {"error": "..."}, "time": 0.0}.

Ranking: sparse queries are scored by dot product over the shared indices;
with `modifier: idf` on the sparse vector each query weight is multiplied by
Qdrant's idf, ln(1 + (N - n + 0.5) / (n + 0.5)), N = points that have the
vector, n = those with a non-zero value at the index (Qdrant docs, "Indexing
/ IDF Modifier").  Filters select the candidates before ranking.

Control endpoints (no api-key needed), for tests:
  POST   /__double__/fault        {"kind": "wal_full", "count": N, "ops": [...]}
                                  {"kind": "hang", "count": N, "seconds": S, "ops": [...]}
                                  {"kind": "status", "value": "red", "collection": C}
                                  {"kind": "readyz", "code": 503}
                                  {"kind": "garbage", "count": N, "ops": [...],
                                   "code": 200, "body": "..."}
                                  {"kind": "clear"}
  GET    /__double__/fault        the faults in force
  GET    /__double__/violations   [{method, path, op, kind, status, error, body}]
  GET    /__double__/requests     [{method, path, op, status, ms, body}]
  DELETE /__double__/violations, /__double__/requests   clear the logs
`count` omitted means "until cleared".  Stopping and restarting the server is
done by the test (kill the process, start it again on the same port with the
same --data-dir: points survive like on a real server).

Usage: python3 tests/qdrant/double.py --port 0 [--api-key KEY]
           [--data-dir DIR] [--check-responses] [--lenient-fields]
The first line on stdout is "listening on PORT".

Standard library + Debian python3-jsonschema (4.10: RefResolver, Draft7).
"""
import argparse
import copy
import datetime
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema
from jsonschema import Draft7Validator, FormatChecker, RefResolver
from jsonschema.exceptions import best_match

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_PATH = os.path.join(HERE, "openapi.json")
QDRANT_VERSION = "1.19.0"

# What the garbage fault answers by default: JSON cut off mid-way, as from
# a proxy that dropped the connection's tail.
GARBAGE_BODY = '{"result":{"points":[{"id":"3f9c3e20-0b4d-527a-bfa2-11e224d5b6b1","score":'
WAL_FULL_ERROR = ("Service internal error: No space left on device: "
                  "WAL buffer size exceeds available disk space")
AUTH_MISSING = "Must provide an API key or an Authorization bearer token"
AUTH_INVALID = "Invalid API key or JWT"
OPEN_PATHS = ("/", "/healthz", "/readyz", "/livez")  # Qdrant's auth whitelist

# ---------------------------------------------------------------------------
# OpenAPI 3.0 -> JSON Schema
# ---------------------------------------------------------------------------

META_KEYS = {"description", "default", "example", "examples", "deprecated",
             "readOnly", "writeOnly", "title", "nullable", "externalDocs", "xml"}


def to_json_schema(node, strict_fields):
    """Return a draft-7 copy of an OpenAPI 3.0 schema tree (see file header)."""
    if isinstance(node, list):
        return [to_json_schema(x, strict_fields) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v, strict_fields) for k, v in node.items()
           if k not in ("nullable", "example", "examples", "deprecated", "discriminator", "xml",
                        "externalDocs")}
    if "$ref" in out and len(set(out) - META_KEYS) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    if (strict_fields and "properties" in out and "additionalProperties" not in out
            and out.get("type") == "object"):
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        if not set(node) - META_KEYS:
            return {"type": "null"}
        if "type" in out:
            t = out["type"]
            out["type"] = list(dict.fromkeys((t if isinstance(t, list) else [t]) + ["null"]))
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _is_int(checker, x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(checker, x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


TYPE_CHECKER = Draft7Validator.TYPE_CHECKER.redefine_many({"integer": _is_int, "number": _is_number})
Validator = jsonschema.validators.extend(Draft7Validator, type_checker=TYPE_CHECKER)

INT_RANGES = {"uint": (0, 2**64 - 1), "uint64": (0, 2**64 - 1), "uint32": (0, 2**32 - 1),
              "uint8": (0, 255), "uint16": (0, 65535), "int64": (-2**63, 2**63 - 1),
              "int32": (-2**31, 2**31 - 1)}
FORMATS = FormatChecker(formats=())


def _register_int_format(name, lo, hi):
    @FORMATS.checks(name)
    def check(x):
        return not _is_int(None, x) or lo <= x <= hi
    return check


for _name, (_lo, _hi) in INT_RANGES.items():
    _register_int_format(_name, _lo, _hi)


@FORMATS.checks("float")
def _check_float(x):
    return not _is_number(None, x) or (math.isfinite(x) and abs(x) <= 3.4028234663852886e38)


@FORMATS.checks("double")
def _check_double(x):
    return not _is_number(None, x) or math.isfinite(x)


@FORMATS.checks("uuid")
def _check_uuid(x):
    return not isinstance(x, str) or parse_uuid(x) is not None


@FORMATS.checks("date-time")
def _check_datetime(x):
    return not isinstance(x, str) or parse_datetime(x) is not None


def parse_uuid(s):
    """Canonical (lowercase, hyphenated) form of a UUID string, or None."""
    try:
        return str(uuid.UUID(s))
    except (ValueError, AttributeError, TypeError):
        return None


def parse_datetime(s):
    try:
        v = datetime.datetime.fromisoformat(s.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)
    return v


class Spec:
    """The OpenAPI document, its two draft-7 translations and the operations."""

    def __init__(self, path=SPEC_PATH):
        with open(path, encoding="utf-8") as f:
            self.raw = json.load(f)
        self.faithful = to_json_schema(self.raw, strict_fields=False)
        self.strict = to_json_schema(self.raw, strict_fields=True)
        self._resolvers = {False: RefResolver("", self.faithful), True: RefResolver("", self.strict)}
        self.operations = []  # (regex, param names, spec_path, {method: op})
        self.path_of = {}  # operationId -> spec path
        for spec_path, item in self.raw["paths"].items():
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    self.path_of[op["operationId"]] = spec_path
            names = re.findall(r"{([^}]+)}", spec_path)
            rx = "^" + re.sub(r"\\{[^}]+\\}", "([^/]+)", re.escape(spec_path)) + "$"
            self.operations.append((re.compile(rx), names, spec_path, item))
        # Literal segments win over parameters (/points/delete vs /points/{id}).
        self.operations.sort(key=lambda o: len(o[1]))

    def match(self, path):
        """(spec_path, path_item, {param: value}) for a request path, or None."""
        for rx, names, spec_path, item in self.operations:
            m = rx.match(path)
            if m:
                return spec_path, item, {n: unquote(v) for n, v in zip(names, m.groups())}
        return None

    def schema(self, raw_schema_path, strict):
        """The translated schema at a JSON pointer list into the document."""
        node = self.strict if strict else self.faithful
        for key in raw_schema_path:
            node = node[key]
        return node

    def errors(self, instance, schema, strict):
        v = Validator(schema, resolver=self._resolvers[strict], format_checker=FORMATS)
        return list(v.iter_errors(instance))

    def resolve_raw(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            node = self.raw
            for key in schema["$ref"][2:].split("/"):
                node = node[key]
            schema = node
        return schema


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ApiError(Exception):
    """An answer other than 200.  kind != None marks a client violation."""

    def __init__(self, status, message, kind=None, text=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.text = text  # plain-text body (auth errors), not Qdrant's JSON shape


def json_path(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "body"


def schema_error(errors, where, kind):
    """Map jsonschema errors to Qdrant's 400 (deserializer) or 422 (validator)."""
    err = best_match(errors)
    loc = json_path(err.absolute_path)
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                         "minLength", "maxLength", "minItems", "maxItems") and \
            not (err.validator == "minimum" and err.validator_value == 0):
        # Right type, value out of the validator's range: Qdrant's validator crate.
        bound = "%s %s" % ("must be" if "min" in err.validator.lower() else "must be at most",
                           err.validator_value)
        if err.validator == "minimum":
            bound = "must be %s or larger" % err.validator_value
        return ApiError(422, "Validation error in %s: [%s: value %s invalid, %s]"
                        % (where, loc, json.dumps(err.instance), bound), kind="validation")
    return ApiError(400, "Format error in %s: %s: %s" % (where, loc, err.message[:400]), kind=kind)


def validation_error(loc, message):
    return ApiError(422, "Validation error in JSON body: [%s: %s]" % (loc, message), kind="validation")


def wrong_input(message):
    return ApiError(400, "Wrong input: " + message, kind="rejected")


def unsupported(what):
    return ApiError(400, "Qdrant test double does not implement %s; extend tests/qdrant/double.py "
                    "or change the request" % what, kind="unsupported")


def not_found_collection(name):
    return ApiError(404, "Not found: Collection `%s` doesn't exist!" % name)


# ---------------------------------------------------------------------------
# Points, payloads and filters
# ---------------------------------------------------------------------------


def point_key(pid):
    """Store key of a point id: ints as such, UUIDs canonical (Qdrant's order: ints first)."""
    if isinstance(pid, int):
        return (0, pid)
    return (1, uuid.UUID(pid).int)


def point_id_out(key):
    return key[1] if key[0] == 0 else str(uuid.UUID(int=key[1]))


def payload_values(payload, key):
    """Leaf values of a payload key ("a.b", "a[].b"), arrays flattened."""
    nodes = [payload]
    for part in key.split("."):
        flatten = part.endswith("[]")
        name = part[:-2] if flatten else part
        nxt = []
        for n in nodes:
            if isinstance(n, list):
                n_items = n
            else:
                n_items = [n]
            for item in n_items:
                if isinstance(item, dict) and name in item:
                    nxt.append(item[name])
        nodes = nxt
    out = []
    for n in nodes:
        out.extend(n if isinstance(n, list) else [n])
    return out


def payload_raw(payload, key):
    node = payload
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ("missing", None)
        node = node[part]
    return ("present", node)


def same_value(a, b):
    """Qdrant's MatchValue equality: strings, integers and booleans never match across types."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) != isinstance(b, str):
        return False
    return isinstance(a, (str, int)) and a == b


def tokenize(text, params):
    """Tokens of a text under a full-text index's params (word/whitespace/prefix/multilingual)."""
    params = params or {}
    if params.get("lowercase", True) is not False:
        text = text.lower()
    if params.get("ascii_folding"):
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    if params.get("tokenizer") == "whitespace":
        tokens = text.split()
    else:
        tokens = re.findall(r"\w+", text)
    lo = params.get("min_token_len") or 0
    hi = params.get("max_token_len")
    tokens = [t for t in tokens if len(t) >= lo and (hi is None or len(t) <= hi)]
    stop = params.get("stopwords")
    if isinstance(stop, dict):
        words = {w.lower() for w in stop.get("custom") or []}
        if stop.get("languages"):
            raise unsupported("stopword languages of a text index")
        tokens = [t for t in tokens if t not in words]
    elif stop is not None:
        raise unsupported("stopword languages of a text index")
    if params.get("stemmer"):
        raise unsupported("stemmers of a text index")
    return tokens


class FilterEval:
    """Evaluates a Qdrant Filter against a point (collection gives index params)."""

    FIELD_KEYS = ("match", "range", "geo_bounding_box", "geo_radius", "geo_polygon",
                  "values_count", "is_empty", "is_null")

    def __init__(self, coll):
        self.coll = coll

    def check(self, flt):
        """Qdrant's validation of a filter (422) and the double's support (400)."""
        for part in ("must", "should", "must_not"):
            conds = flt.get(part)
            if conds is None:
                continue
            for c in conds if isinstance(conds, list) else [conds]:
                self.check_cond(c)
        ms = flt.get("min_should")
        if ms:
            for c in ms["conditions"]:
                self.check_cond(c)

    def check_cond(self, c):
        if "key" in c:
            given = [k for k in self.FIELD_KEYS if c.get(k) is not None]
            if not given:
                raise validation_error(c["key"], "At least one field condition must be specified")
            for k in given:
                if k.startswith("geo"):
                    raise unsupported("geo conditions")
        elif "nested" in c:
            self.check(c["nested"]["filter"])
        elif "slice" in c:
            raise unsupported("slice conditions")
        elif any(k in c for k in ("must", "should", "must_not", "min_should")) or c == {}:
            self.check(c)

    def matches(self, flt, point):
        if flt is None:
            return True

        def conds(part):
            v = flt.get(part)
            if v is None:
                return None
            return v if isinstance(v, list) else [v]

        must = conds("must")
        if must and not all(self.cond(c, point) for c in must):
            return False
        must_not = conds("must_not")
        if must_not and any(self.cond(c, point) for c in must_not):
            return False
        should = conds("should")
        ms = flt.get("min_should")
        if should and not any(self.cond(c, point) for c in should):
            return False
        if ms and sum(1 for c in ms["conditions"] if self.cond(c, point)) < ms["min_count"]:
            return False
        return True

    def cond(self, c, point):
        payload = point["payload"] or {}
        if "key" in c:
            return all(self.field(c["key"], k, c[k], payload) for k in self.FIELD_KEYS
                       if c.get(k) is not None)
        if "is_empty" in c:
            return not [v for v in payload_values(payload, c["is_empty"]["key"]) if v is not None]
        if "is_null" in c:
            state, v = payload_raw(payload, c["is_null"]["key"])
            return state == "present" and v is None
        if "has_id" in c:
            return point["key"] in {point_key(normalize_id(i)) for i in c["has_id"]}
        if "has_vector" in c:
            return c["has_vector"] in point["vector"]
        if "nested" in c:
            key, sub = c["nested"]["key"], c["nested"]["filter"]
            return any(isinstance(item, dict) and self.matches(sub, {**point, "payload": item})
                       for item in payload_values(payload, key))
        return self.matches(c, point)

    def field(self, key, kind, spec, payload):
        values = payload_values(payload, key)
        if kind == "is_empty":
            empty = not [v for v in values if v is not None]
            return empty == spec
        if kind == "is_null":
            state, v = payload_raw(payload, key)
            return (state == "present" and v is None) == spec
        if kind == "values_count":
            n = len([v for v in values if v is not None])
            return all(op_ok(n, op, bound) for op, bound in spec.items() if bound is not None)
        if kind == "range":
            bounds = {op: b for op, b in spec.items() if b is not None}
            if any(isinstance(b, str) for b in bounds.values()):
                bounds = {op: parse_datetime(b) for op, b in bounds.items()}
                cands = [parse_datetime(v) for v in values if isinstance(v, str)]
                cands = [v for v in cands if v is not None]
            else:
                cands = [v for v in values if _is_number(None, v)]
            return any(all(op_ok(v, op, b) for op, b in bounds.items()) for v in cands)
        # match
        if "value" in spec:
            return any(same_value(v, spec["value"]) for v in values)
        if "any" in spec:
            return any(same_value(v, a) for v in values for a in spec["any"])
        if "except" in spec:
            return not any(same_value(v, a) for v in values for a in spec["except"])
        if "prefix" in spec:
            return any(isinstance(v, str) and v.startswith(spec["prefix"]) for v in values)
        texts = [v for v in values if isinstance(v, str)]
        index = self.coll.payload_indexes.get(key)
        if not index or index["data_type"] != "text":
            # No full-text index: Qdrant matches the text as an exact substring.
            needle = spec.get("text", spec.get("text_any", spec.get("phrase")))
            if "text_any" in spec:
                return any(w in t for t in texts for w in needle.split())
            return any(needle in t for t in texts)
        params = index.get("params") or {}
        prefix = params.get("tokenizer") == "prefix"

        def has(doc_tokens, q):
            return any(t.startswith(q) for t in doc_tokens) if prefix else q in doc_tokens

        for t in texts:
            doc = tokenize(t, params)
            if "text" in spec:
                q = tokenize(spec["text"], params)
                if q and all(has(doc, w) for w in q):
                    return True
            elif "text_any" in spec:
                if any(has(doc, w) for w in tokenize(spec["text_any"], params)):
                    return True
            else:
                q = tokenize(spec["phrase"], params)
                if q and any(doc[i:i + len(q)] == q for i in range(len(doc) - len(q) + 1)):
                    return True
        return False


def op_ok(v, op, b):
    return {"lt": v < b, "lte": v <= b, "gt": v > b, "gte": v >= b}[op]


def normalize_id(pid):
    if isinstance(pid, str):
        return parse_uuid(pid)
    return pid


def check_sparse(vec, loc):
    """Qdrant's SparseVector validation (lib/sparse, 422)."""
    if len(vec["indices"]) != len(vec["values"]):
        raise validation_error(loc + ".values", "Validation error: must be the same length as indices [{}]")
    if len(set(vec["indices"])) != len(vec["indices"]):
        raise validation_error(loc + ".indices", "Validation error: must be unique [{}]")


def is_sparse(v):
    return isinstance(v, dict) and "indices" in v and "values" in v


def select_payload(payload, with_payload):
    if not with_payload:
        return None
    payload = payload or {}
    if with_payload is True:
        return payload
    if isinstance(with_payload, list):
        return {k: payload[k] for k in with_payload if k in payload}
    if "include" in with_payload:
        return {k: payload[k] for k in with_payload["include"] if k in payload}
    return {k: v for k, v in payload.items() if k not in with_payload["exclude"]}


def select_vector(vectors, with_vector):
    if not with_vector:
        return None
    names = list(vectors) if with_vector is True else [n for n in with_vector if n in vectors]
    out = {}
    for n in names:
        v = vectors[n]
        if is_sparse(v):
            pairs = sorted(zip(v["indices"], v["values"]))
            v = {"indices": [i for i, _ in pairs], "values": [x for _, x in pairs]}
        out[n] = v
    if "" in out and len(out) == 1:
        return out[""]
    return out


# ---------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------

DEFAULT_HNSW = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                "max_indexing_threads": 0, "on_disk": False}
DEFAULT_OPTIMIZER = {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                     "default_segment_number": 0, "max_segment_size": None, "memmap_threshold": None,
                     "indexing_threshold": 10000, "flush_interval_sec": 5,
                     "max_optimization_threads": None}
DEFAULT_WAL = {"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1}
SEGMENTS_COUNT = 2  # a fixed, plausible number: the double has no segments


class Collection:
    def __init__(self, name, body):
        self.name = name
        params = {"shard_number": body.get("shard_number") or 1,
                  "replication_factor": body.get("replication_factor") or 1,
                  "write_consistency_factor": body.get("write_consistency_factor") or 1,
                  "on_disk_payload": True if body.get("on_disk_payload") is None else body["on_disk_payload"]}
        vectors = body.get("vectors")
        params["vectors"] = vectors if vectors is not None else {}
        if body.get("sparse_vectors"):
            params["sparse_vectors"] = {n: {k: v for k, v in (p or {}).items() if v is not None}
                                        for n, p in body["sparse_vectors"].items()}
        hnsw = dict(DEFAULT_HNSW)
        hnsw.update({k: v for k, v in (body.get("hnsw_config") or {}).items() if v is not None})
        opt = dict(DEFAULT_OPTIMIZER)
        opt.update({k: v for k, v in (body.get("optimizers_config") or {}).items() if v is not None})
        wal = dict(DEFAULT_WAL)
        wal.update({k: v for k, v in (body.get("wal_config") or {}).items() if v is not None})
        self.config = {"params": params, "hnsw_config": hnsw, "optimizer_config": opt,
                       "wal_config": wal, "quantization_config": None,
                       "strict_mode_config": {"enabled": False}}
        if body.get("metadata") is not None:
            self.config["metadata"] = body["metadata"]
        self.points = {}  # key -> {"key", "vector": {name: v}, "payload", "version"}
        self.payload_indexes = {}  # field -> {"data_type", "params"}

    # vector configuration -------------------------------------------------
    def dense_config(self, name):
        v = self.config["params"]["vectors"]
        if "size" in v and "distance" in v:
            return v if name == "" else None
        return v.get(name)

    def sparse_config(self, name):
        return (self.config["params"].get("sparse_vectors") or {}).get(name)

    def to_state(self):
        return {"name": self.name, "config": self.config, "payload_indexes": self.payload_indexes,
                "points": [{**p, "key": list(p["key"])} for p in self.points.values()]}

    @classmethod
    def from_state(cls, st):
        c = cls.__new__(cls)
        c.name, c.config, c.payload_indexes = st["name"], st["config"], st["payload_indexes"]
        c.points = {}
        for p in st["points"]:
            p["key"] = tuple(p["key"])
            c.points[p["key"]] = p
        return c


# ---------------------------------------------------------------------------
# The double
# ---------------------------------------------------------------------------

# Short operation names, used in the request log and by fault "ops" filters.
OP_NAMES = {
    "root": "root", "readyz": "readyz", "healthz": "healthz", "livez": "livez",
    "get_collections": "list_collections", "get_collection": "get_collection",
    "create_collection": "create_collection", "delete_collection": "delete_collection",
    "collection_exists": "collection_exists",
    "create_field_index": "create_index", "delete_field_index": "delete_index",
    "upsert_points": "upsert", "delete_points": "delete_points", "query_points": "query",
    "count_points": "count", "scroll_points": "scroll", "get_point": "get_point",
    "get_points": "get_points", "update_aliases": "update_aliases",
    "get_collections_aliases": "list_aliases", "get_collection_aliases": "collection_aliases",
}
UPDATE_OPS = {"create_collection", "delete_collection", "create_index", "delete_index", "upsert",
              "delete_points", "update_aliases"}
WAL_DEFAULT_OPS = {"upsert", "delete_points", "create_index", "delete_index"}


class Double:
    def __init__(self, api_key=None, data_dir=None, check_responses=False, strict_fields=True,
                 spec=None):
        self.spec = spec or Spec()
        self.api_key = api_key
        self.data_dir = data_dir
        self.check_responses = check_responses
        self.strict_fields = strict_fields
        self.lock = threading.RLock()
        self.collections = {}
        self.aliases = {}  # alias name -> collection name (Qdrant resolves them in every collection path)
        self.op_seq = 0
        self.faults = {}
        self.requests = []
        self.violations = []
        missing = [op_id for op_id in ROUTES if op_id not in self.spec.path_of]
        if missing:
            raise RuntimeError("operations not in openapi.json: %s" % missing)
        self._load()

    # persistence ------------------------------------------------------------
    def _state_file(self):
        return os.path.join(self.data_dir, "qdrant-double-state.json") if self.data_dir else None

    def _load(self):
        path = self._state_file()
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                st = json.load(f)
            self.op_seq = st["op_seq"]
            self.collections = {c["name"]: Collection.from_state(c) for c in st["collections"]}
            self.aliases = st.get("aliases", {})

    def save(self):
        """Write the whole state (atomic rename) after a change, before answering."""
        path = self._state_file()
        if not path:
            return
        st = {"op_seq": self.op_seq, "collections": [c.to_state() for c in self.collections.values()],
              "aliases": self.aliases}
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(st, f)
        os.replace(tmp, path)

    # faults -----------------------------------------------------------------
    def set_fault(self, cmd):
        if not isinstance(cmd, dict) or "kind" not in cmd:
            raise ValueError("fault command must be an object with a kind")
        kind = cmd["kind"]
        allowed = {"wal_full": {"kind", "count", "ops"}, "hang": {"kind", "count", "seconds", "ops"},
                   "status": {"kind", "value", "collection", "optimizer_error"},
                   "readyz": {"kind", "code"}, "clear": {"kind"},
                   "garbage": {"kind", "count", "ops", "code", "body"}}
        if kind not in allowed:
            raise ValueError("unknown fault kind %r (one of %s)" % (kind, sorted(allowed)))
        extra = set(cmd) - allowed[kind]
        if extra:
            raise ValueError("unknown keys %s for fault %s" % (sorted(extra), kind))
        count = cmd.get("count")
        if count is not None and (not _is_int(None, count) or count < 1):
            raise ValueError("count must be a positive integer (omit it for 'until cleared')")
        ops = cmd.get("ops")
        if ops is not None:
            if not isinstance(ops, list) or not all(o in OP_NAMES.values() for o in ops):
                raise ValueError("ops must be a list of %s" % sorted(set(OP_NAMES.values())))
        with self.lock:
            if kind == "clear":
                self.faults = {}
            elif kind == "wal_full":
                ops = set(ops) if ops is not None else set(WAL_DEFAULT_OPS)
                if ops - UPDATE_OPS:
                    raise ValueError("wal_full only affects updates %s; reads keep working on a "
                                     "real server" % sorted(UPDATE_OPS))
                self.faults["wal_full"] = {"remaining": count, "ops": sorted(ops)}
            elif kind == "hang":
                s = cmd.get("seconds")
                if not _is_number(None, s) or s < 0:
                    raise ValueError("hang needs seconds >= 0")
                self.faults["hang"] = {"remaining": count, "seconds": s,
                                       "ops": sorted(ops) if ops is not None else None}
            elif kind == "status":
                if cmd.get("value") not in ("green", "yellow", "grey", "red"):
                    raise ValueError("status value must be green, yellow, grey or red")
                self.faults["status"] = {k: cmd.get(k) for k in ("value", "collection", "optimizer_error")}
            elif kind == "readyz":
                if cmd.get("code") not in (200, 503):
                    raise ValueError("readyz code must be 200 or 503")
                self.faults["readyz"] = {"code": cmd["code"]}
            elif kind == "garbage":
                code, body = cmd.get("code", 200), cmd.get("body", GARBAGE_BODY)
                if not _is_int(None, code) or not 200 <= code <= 599:
                    raise ValueError("garbage code must be an HTTP status 200..599")
                if not isinstance(body, str):
                    raise ValueError("garbage body must be a string")
                self.faults["garbage"] = {"remaining": count, "code": code, "body": body,
                                          "ops": sorted(ops) if ops is not None else None}

    def take_fault(self, kind, op):
        """Consume one use of a counted fault if it applies to op; return it or None."""
        with self.lock:
            f = self.faults.get(kind)
            if not f or (f.get("ops") is not None and op not in f["ops"]):
                return None
            if f["remaining"] is not None:
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    del self.faults[kind]
            return dict(f)

    def check_wal(self, op):
        if self.take_fault("wal_full", op):
            raise ApiError(500, WAL_FULL_ERROR)

    # logs -------------------------------------------------------------------
    def record(self, entry, violation):
        with self.lock:
            self.requests.append(entry)
            if violation:
                self.violations.append(violation)

    # collection helpers ------------------------------------------------------
    def coll(self, name):
        c = self.collections.get(self.aliases.get(name, name))
        if c is None:
            raise not_found_collection(name)
        return c

    def next_op(self):
        self.op_seq += 1
        return self.op_seq - 1


# ---------------------------------------------------------------------------
# Operation handlers: fn(double, path_params, query, body) -> result
# ---------------------------------------------------------------------------


def h_root(d, pp, q, body):
    return {"title": "qdrant - vector search engine", "version": QDRANT_VERSION}


def h_list_collections(d, pp, q, body):
    with d.lock:
        return {"collections": [{"name": n} for n in sorted(d.collections)]}


def h_collection_exists(d, pp, q, body):
    with d.lock:
        return {"exists": pp["collection_name"] in d.collections}


COLLECTION_NAME_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def h_create_collection(d, pp, q, body):
    name = pp["collection_name"]
    if not 1 <= len(name) <= 255 or COLLECTION_NAME_BAD.search(name) or name in (".", ".."):
        raise ApiError(422, "Validation error in path parameters: [name: collection name %r is "
                       "not a valid name]" % name, kind="validation")
    for unsupported_key in ("sharding_method", "quantization_config"):
        if body.get(unsupported_key) is not None:
            raise unsupported("collection option %s" % unsupported_key)
    vectors = body.get("vectors")
    if vectors is not None and "size" not in vectors:
        for vname in vectors:
            if vname in (body.get("sparse_vectors") or {}):
                raise wrong_input("Vector name %s is used for both dense and sparse vectors" % vname)
    with d.lock:
        if name in d.collections or name in d.aliases:
            raise ApiError(409, "Wrong input: Collection `%s` already exists!" % name)
        d.collections[name] = Collection(name, body)
        d.save()
    return True


def h_delete_collection(d, pp, q, body):
    with d.lock:
        name = pp["collection_name"]
        existed = d.collections.pop(name, None) is not None
        if existed:  # Qdrant drops the aliases of a deleted collection with it
            d.aliases = {a: c for a, c in d.aliases.items() if c != name}
            d.save()
    return existed


def h_update_aliases(d, pp, q, body):
    """POST /collections/aliases: the actions are applied all or none (atomic)."""
    with d.lock:
        aliases = dict(d.aliases)
        for act in body["actions"]:
            if "create_alias" in act:
                a = act["create_alias"]
                if a["collection_name"] not in d.collections:
                    raise not_found_collection(a["collection_name"])
                if a["alias_name"] in d.collections:
                    raise wrong_input("Collection `%s` already exists!" % a["alias_name"])
                aliases[a["alias_name"]] = a["collection_name"]
            elif "delete_alias" in act:
                name = act["delete_alias"]["alias_name"]
                if aliases.pop(name, None) is None:
                    raise ApiError(404, "Not found: Alias %s does not exist!" % name)
            else:
                a = act["rename_alias"]
                if a["old_alias_name"] not in aliases:
                    raise ApiError(404, "Not found: Alias %s does not exist!" % a["old_alias_name"])
                aliases[a["new_alias_name"]] = aliases.pop(a["old_alias_name"])
        d.aliases = aliases
        d.save()
    return True


def h_list_aliases(d, pp, q, body):
    with d.lock:
        return {"aliases": [{"alias_name": a, "collection_name": c} for a, c in sorted(d.aliases.items())]}


def h_collection_aliases(d, pp, q, body):
    with d.lock:
        name = pp["collection_name"]
        d.coll(name)
        return {"aliases": [{"alias_name": a, "collection_name": c}
                            for a, c in sorted(d.aliases.items()) if c == name]}


def collection_info(d, c):
    status = "green"
    optimizer_status = "ok"
    f = d.faults.get("status")
    if f and f.get("collection") in (None, c.name):
        status = f["value"]
        if f.get("optimizer_error"):
            optimizer_status = {"error": f["optimizer_error"]}
    schema = {}
    for field, idx in c.payload_indexes.items():
        info = {"data_type": idx["data_type"], "points": count_indexed(c, field, idx["data_type"])}
        if idx.get("params") is not None:
            info["params"] = idx["params"]
        schema[field] = info
    sparse_names = set(c.config["params"].get("sparse_vectors") or {})
    indexed = sum(1 for p in c.points.values() for n in p["vector"] if n in sparse_names)
    return {"status": status, "optimizer_status": optimizer_status,
            "indexed_vectors_count": indexed, "points_count": len(c.points),
            "segments_count": SEGMENTS_COUNT, "config": copy.deepcopy(c.config),
            "payload_schema": schema}


TYPE_OF_INDEX = {
    "keyword": lambda v: isinstance(v, str),
    "text": lambda v: isinstance(v, str),
    "uuid": lambda v: isinstance(v, str) and parse_uuid(v) is not None,
    "integer": lambda v: _is_int(None, v),
    "float": lambda v: _is_number(None, v),
    "bool": lambda v: isinstance(v, bool),
    "datetime": lambda v: isinstance(v, str) and parse_datetime(v) is not None,
    "geo": lambda v: isinstance(v, dict) and "lat" in v and "lon" in v,
}


def count_indexed(c, field, data_type):
    ok = TYPE_OF_INDEX[data_type]
    return sum(1 for p in c.points.values()
               if any(ok(v) for v in payload_values(p["payload"] or {}, field)))


def h_get_collection(d, pp, q, body):
    with d.lock:
        return collection_info(d, d.coll(pp["collection_name"]))


def update_result(op_id, q):
    wait = q.get("wait") is True
    return {"operation_id": op_id, "status": "completed" if wait else "acknowledged"}


def h_create_index(d, pp, q, body):
    schema = body.get("field_schema")
    if schema is None:
        # Qdrant infers the type from stored values; lucy should always say it.
        raise wrong_input("Can't auto-detect field type, please specify `field_schema` in the request")
    if isinstance(schema, str):
        data_type, params = schema, None
    else:
        data_type, params = schema["type"], {k: v for k, v in schema.items() if v is not None}
        if data_type == "text":
            tokenize("", params)  # unsupported options fail now, not at query time
    with d.lock:
        c = d.coll(pp["collection_name"])
        d.check_wal("create_index")
        c.payload_indexes[body["field_name"]] = {"data_type": data_type, "params": params}
        op_id = d.next_op()
        d.save()
    return update_result(op_id, q)


def h_delete_index(d, pp, q, body):
    with d.lock:
        c = d.coll(pp["collection_name"])
        d.check_wal("delete_index")
        c.payload_indexes.pop(pp["field_name"], None)
        op_id = d.next_op()
        d.save()
    return update_result(op_id, q)


def check_vector(c, name, v, loc):
    """Qdrant's checks of one named vector against the collection config."""
    if isinstance(v, dict) and not is_sparse(v):
        raise unsupported("inference objects (Document/Image/InferenceObject) as vectors")
    if is_sparse(v):
        check_sparse(v, loc)
        if c.sparse_config(name) is None:
            if c.dense_config(name) is not None:
                raise wrong_input("Conversion between sparse and regular vectors failed")
            raise wrong_input("Not existing vector name error: %s" % name)
        return
    if v and isinstance(v[0], list):
        raise unsupported("multivectors")
    dense = c.dense_config(name)
    if dense is None:
        if c.sparse_config(name) is not None:
            raise wrong_input("Conversion between sparse and regular vectors failed")
        raise wrong_input("Not existing vector name error: %s" % name)
    if len(v) != dense["size"]:
        raise wrong_input("Vector dimension error: expected dim: %d, got %d" % (dense["size"], len(v)))


def point_vectors(c, vector, loc):
    """{name: vector} for a VectorStruct, checked."""
    if isinstance(vector, list):
        named = {"": vector}
    elif isinstance(vector, dict) and not is_sparse(vector) and all(
            isinstance(x, (list, dict)) for x in vector.values()) and not (
            {"text", "model"} <= set(vector) or {"image", "model"} <= set(vector)
            or {"object", "model"} <= set(vector)):
        named = vector
    else:
        raise unsupported("inference objects (Document/Image/InferenceObject) as vectors")
    for name, v in named.items():
        check_vector(c, name, v, loc + ".vector.?")
    return named


def h_upsert(d, pp, q, body):
    for k in ("shard_key",):
        if body.get(k) is not None:
            raise unsupported("shard keys")
    if "points" in body:
        items = [(p["id"], p["vector"], p.get("payload")) for p in body["points"]]
        locs = ["points[%d]" % i for i in range(len(items))]
    else:
        b = body["batch"]
        vectors = b["vectors"]
        n = len(b["ids"])
        if isinstance(vectors, list):
            per_point = [v for v in vectors]
            if per_point and isinstance(per_point[0], dict):
                raise unsupported("inference objects (Document/Image/InferenceObject) as vectors")
        else:
            per_point = [{} for _ in range(n)]
            for name, vs in vectors.items():
                if len(vs) != n:
                    raise validation_error("batch", "number of vectors must be equal to number of ids")
                for i, v in enumerate(vs):
                    per_point[i][name] = v
        if len(per_point) != n:
            raise validation_error("batch", "number of vectors must be equal to number of ids")
        payloads = b.get("payloads")
        if payloads is not None and len(payloads) != n:
            raise validation_error("batch", "number of payloads must be equal to number of ids")
        items = [(b["ids"][i], per_point[i], payloads[i] if payloads else None) for i in range(n)]
        locs = ["batch[%d]" % i for i in range(n)]
    mode = body.get("update_mode") or "upsert"
    with d.lock:
        c = d.coll(pp["collection_name"])
        checked = [(point_key(normalize_id(pid)), point_vectors(c, vec, loc), payload)
                   for (pid, vec, payload), loc in zip(items, locs)]
        d.check_wal("upsert")
        op_id = d.next_op()
        flt = body.get("update_filter")
        fe = FilterEval(c)
        if flt:
            fe.check(flt)
        for key, vectors, payload in checked:
            old = c.points.get(key)
            if (mode == "insert_only" and old) or (mode == "update_only" and not old):
                continue
            if old and flt and not fe.matches(flt, old):
                continue
            c.points[key] = {"key": key, "vector": copy.deepcopy(vectors),
                             "payload": copy.deepcopy(payload) if payload is not None else {},
                             "version": op_id}
        d.save()
    return update_result(op_id, q)


def h_delete_points(d, pp, q, body):
    if body.get("shard_key") is not None:
        raise unsupported("shard keys")
    with d.lock:
        c = d.coll(pp["collection_name"])
        fe = FilterEval(c)
        if "filter" in body:
            fe.check(body["filter"])
        d.check_wal("delete_points")
        if "points" in body:
            for pid in body["points"]:
                c.points.pop(point_key(normalize_id(pid)), None)
        else:
            for key in [k for k, p in c.points.items() if fe.matches(body["filter"], p)]:
                del c.points[key]
        op_id = d.next_op()
        d.save()
    return update_result(op_id, q)


def record_out(p, with_payload, with_vector, score=None):
    out = {"id": point_id_out(p["key"])}
    if score is not None:
        out["version"] = p["version"]
        out["score"] = score
    pl = select_payload(p["payload"], with_payload)
    if pl is not None:
        out["payload"] = pl
    vec = select_vector(p["vector"], with_vector)
    if vec is not None:
        out["vector"] = vec
    return out


def sorted_points(c, flt):
    fe = FilterEval(c)
    if flt:
        fe.check(flt)
    return [p for _, p in sorted(c.points.items()) if fe.matches(flt, p)]


def idf(c, name, index):
    """Qdrant's idf for one sparse index: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    with_vec = [p["vector"][name] for p in c.points.values() if name in p["vector"]]
    n_total = len(with_vec)
    n = sum(1 for v in with_vec if any(i == index and x != 0 for i, x in zip(v["indices"], v["values"])))
    return math.log(1.0 + (n_total - n + 0.5) / (n + 0.5))


def dense_score(distance, a, b):
    if distance == "Dot":
        return sum(x * y for x, y in zip(a, b))
    if distance == "Cosine":
        na = math.sqrt(sum(x * x for x in a)) or 1.0
        nb = math.sqrt(sum(x * x for x in b)) or 1.0
        return sum(x * y for x, y in zip(a, b)) / (na * nb)
    if distance == "Euclid":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    return sum(abs(x - y) for x, y in zip(a, b))


def h_query(d, pp, q, body):
    for k in ("prefetch", "lookup_from", "shard_key"):
        if body.get(k) is not None:
            raise unsupported("query option %s" % k)
    query = body.get("query")
    if isinstance(query, dict) and "nearest" in query:
        if query.get("mmr") is not None:
            raise unsupported("MMR queries")
        query = query["nearest"]
    elif isinstance(query, dict) and not is_sparse(query):
        raise unsupported("query kind %s" % sorted(query)[0])
    limit = body.get("limit") or 10
    offset = body.get("offset") or 0
    with_payload = body.get("with_payload") or False
    with_vector = body.get("with_vector") or False
    using = body.get("using") or ""
    threshold = body.get("score_threshold")
    with d.lock:
        c = d.coll(pp["collection_name"])
        cands = sorted_points(c, body.get("filter"))
        if query is None:
            hits = [(0.0, p) for p in cands]
        else:
            if isinstance(query, (int, str)) and not isinstance(query, bool):
                src = c.points.get(point_key(normalize_id(query)))
                if src is None or using not in src["vector"]:
                    raise ApiError(404, "Not found: No point with id %s found" % query)
                query = src["vector"][using]
                cands = [p for p in cands if p["key"] != src["key"]]
            check_vector(c, using, query, "query")
            hits = []
            if is_sparse(query):
                cfg = c.sparse_config(using) or {}
                weights = dict(zip(query["indices"], query["values"]))
                if cfg.get("modifier") == "idf":
                    weights = {i: w * idf(c, using, i) for i, w in weights.items()}
                for p in cands:
                    v = p["vector"].get(using)
                    if v is None:
                        continue
                    shared = [(weights[i], x) for i, x in zip(v["indices"], v["values"]) if i in weights]
                    if shared:
                        hits.append((sum(w * x for w, x in shared), p))
                hits.sort(key=lambda h: -h[0])
            else:
                dist = c.dense_config(using)["distance"]
                for p in cands:
                    v = p["vector"].get(using)
                    if v is not None:
                        hits.append((dense_score(dist, query, v), p))
                hits.sort(key=lambda h: h[0] if dist in ("Euclid", "Manhattan") else -h[0])
            if threshold is not None:
                hits = [h for h in hits if h[0] >= threshold]
        hits = hits[offset:offset + limit]
        return {"points": [record_out(p, with_payload, with_vector, score) for score, p in hits]}


def h_count(d, pp, q, body):
    if body.get("shard_key") is not None:
        raise unsupported("shard keys")
    with d.lock:
        c = d.coll(pp["collection_name"])
        return {"count": len(sorted_points(c, body.get("filter")))}


def h_scroll(d, pp, q, body):
    for k in ("shard_key", "order_by"):
        if body.get(k) is not None:
            raise unsupported("scroll option %s" % k)
    limit = body.get("limit") or 10
    with_payload = True if body.get("with_payload") is None else body["with_payload"]
    with_vector = body.get("with_vector") or False
    with d.lock:
        c = d.coll(pp["collection_name"])
        pts = sorted_points(c, body.get("filter"))
        if body.get("offset") is not None:
            start = point_key(normalize_id(body["offset"]))
            pts = [p for p in pts if p["key"] >= start]
        page, rest = pts[:limit], pts[limit:]
        return {"points": [record_out(p, with_payload, with_vector) for p in page],
                "next_page_offset": point_id_out(rest[0]["key"]) if rest else None}


def h_get_point(d, pp, q, body):
    pid = pp["id"]
    with d.lock:
        c = d.coll(pp["collection_name"])
        p = c.points.get(point_key(pid))
        if p is None:
            raise ApiError(404, "Not found: No point with id %s found" % point_id_out(point_key(pid)))
        return record_out(p, True, True)


def h_get_points(d, pp, q, body):
    if body.get("shard_key") is not None:
        raise unsupported("shard keys")
    with_payload = True if body.get("with_payload") is None else body["with_payload"]
    with d.lock:
        c = d.coll(pp["collection_name"])
        out = []
        for pid in body["ids"]:
            p = c.points.get(point_key(normalize_id(pid)))
            if p is not None:
                out.append(record_out(p, with_payload, body.get("with_vector") or False))
        return out


# operationId (from openapi.json) -> handler.  The double refuses to start if
# an operationId here is not in the spec.
ROUTES = {
    "root": h_root,
    "readyz": None, "healthz": None, "livez": None,  # plain text, see Handler
    "get_collections": h_list_collections,
    "get_collection": h_get_collection,
    "create_collection": h_create_collection,
    "delete_collection": h_delete_collection,
    "collection_exists": h_collection_exists,
    "create_field_index": h_create_index,
    "delete_field_index": h_delete_index,
    "upsert_points": h_upsert,
    "delete_points": h_delete_points,
    "query_points": h_query,
    "count_points": h_count,
    "scroll_points": h_scroll,
    "get_point": h_get_point,
    "get_points": h_get_points,
    "update_aliases": h_update_aliases,
    "get_collections_aliases": h_list_aliases,
    "get_collection_aliases": h_collection_aliases,
}


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def strict_json_loads(raw):
    def pairs(items):
        seen = {}
        for k, v in items:
            if k in seen:
                raise ValueError("duplicate field `%s`" % k)
            seen[k] = v
        return seen

    def bad_constant(name):
        raise ValueError("invalid number %s" % name)

    return json.loads(raw, object_pairs_hook=pairs, parse_constant=bad_constant)


def coerce_query_value(raw, schema, spec):
    """Candidate typed values of a query-string value (serde_urlencoded rules)."""
    cands = [raw]
    if re.fullmatch(r"-?[0-9]+", raw):
        cands.append(int(raw))
    if raw in ("true", "false"):
        cands.append(raw == "true")
    if re.fullmatch(r"-?[0-9]+\.[0-9]*", raw):
        cands.append(float(raw))
    return cands


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stalls
    server_version = "qdrant-double/" + QDRANT_VERSION
    double = None  # set by make_server

    def log_message(self, fmt, *args):  # quiet; the request log is the record
        pass

    def do_GET(self):
        self._serve("GET")

    def do_PUT(self):
        self._serve("PUT")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_json(self, status, obj):
        self._send(status, json.dumps(obj, separators=(",", ":")))

    # control ----------------------------------------------------------------
    def _control(self, method, path, raw):
        d = self.double
        name = path[len("/__double__/"):]
        try:
            if name == "fault" and method == "POST":
                d.set_fault(strict_json_loads(raw or b"null"))
                return self._send_json(200, {"ok": True, "faults": d.faults})
            if name == "fault" and method == "GET":
                return self._send_json(200, d.faults)
            if name in ("violations", "requests") and method == "GET":
                with d.lock:
                    return self._send_json(200, list(getattr(d, name)))
            if name in ("violations", "requests") and method == "DELETE":
                with d.lock:
                    getattr(d, name).clear()
                return self._send_json(200, {"ok": True})
        except ValueError as e:
            return self._send_json(400, {"error": str(e)})
        return self._send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})

    # API ----------------------------------------------------------------------
    def _serve(self, method):
        t0 = time.monotonic()
        url = urlsplit(self.path)
        path = url.path
        raw = self._read_body()
        if path.startswith("/__double__/"):
            return self._control(method, path, raw)
        d = self.double
        match = d.spec.match(path)
        op_id = None
        op = None
        if match:
            op = match[1].get(method.lower())
            op_id = op.get("operationId") if op else None
        op_name = OP_NAMES.get(op_id, op_id or "unknown")
        hang = d.take_fault("hang", op_name)
        if hang:
            time.sleep(hang["seconds"])
        body = None
        status, payload, ctype, violation = 200, None, "application/json", None
        try:
            self._auth(path)
            if not match:
                raise ApiError(404, "Unknown route %s %s (not in Qdrant's OpenAPI spec)" % (method, path),
                               kind="unknown_route")
            if op is None:
                raise ApiError(405, "Method %s not allowed on %s" % (method, match[0]), kind="wrong_method")
            path_params = self._check_params(op, match[2], url.query)
            query = path_params.pop("__query__")
            if "requestBody" in op:
                body = self._check_body(op, raw)
            handler = ROUTES.get(op_id, "missing")
            if handler == "missing":
                raise unsupported("operation %s (%s %s)" % (op_id, method, match[0]))
            if handler is None:
                status, payload, ctype = self._health(op_id)
            else:
                result = handler(d, path_params, query, body if body is not None else {})
                answer = result
                if self._wrapped(op):  # most answers are {"result", "status", "time"}; GET / is not
                    answer = {"result": result, "status": "ok", "time": round(time.monotonic() - t0, 6)}
                payload = json.dumps(answer, separators=(",", ":"))
                if d.check_responses:
                    self._check_response(op, answer, method, path)
        except ApiError as e:
            status = e.status
            if e.text:
                payload, ctype = e.message, "text/plain"
            else:
                payload = json.dumps({"status": {"error": e.message}, "time": 0.0}, separators=(",", ":"))
            if e.kind or status in (400, 405, 422):
                violation = {"method": method, "path": self.path, "op": op_name,
                             "kind": e.kind or "rejected", "status": status, "error": e.message,
                             "body": body if body is not None else raw.decode("utf-8", "replace")[:2000]}
        except Exception as e:  # a bug in the double: answer 500 and make the test fail
            status = 500
            payload = json.dumps({"status": {"error": "Qdrant test double crashed: %r" % e}, "time": 0.0})
            violation = {"method": method, "path": self.path, "op": op_name, "kind": "double_bug",
                         "status": 500, "error": repr(e), "body": body}
        garbage = d.take_fault("garbage", op_name)
        if garbage:  # served (and applied) as usual, then the answer is replaced
            status, payload, ctype = garbage["code"], garbage["body"], "application/json"
        d.record({"method": method, "path": self.path, "op": op_name, "status": status,
                  "ms": round((time.monotonic() - t0) * 1000, 3), "body": body}, violation)
        self._send(status, payload, ctype)

    def _auth(self, path):
        key = self.double.api_key
        if key is None or path in OPEN_PATHS:
            return
        given = self.headers.get("api-key")
        if given is None:
            auth = self.headers.get("Authorization") or ""
            given = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if given is None:
            raise ApiError(401, AUTH_MISSING, text=True)
        if given != key:
            raise ApiError(401, AUTH_INVALID, text=True)

    def _health(self, op_id):
        if op_id == "readyz":
            code = (self.double.faults.get("readyz") or {}).get("code", 200)
            return code, ("all shards are ready" if code == 200 else "some shards are not ready"), "text/plain"
        return 200, "healthz check passed", "text/plain"

    def _check_params(self, op, path_values, query_string):
        d = self.double
        params = {p["name"]: p for p in op.get("parameters", [])}
        out = {}
        for name, value in path_values.items():
            schema = to_json_schema(params[name]["schema"], True)
            cands = [value] + ([int(value)] if re.fullmatch(r"[0-9]+", value) else [])
            good = [c for c in cands if not d.spec.errors(c, schema, True)]
            if not good:
                raise ApiError(400, "Format error in path parameters: %s: %r is not valid" % (name, value),
                               kind="path_param")
            v = good[-1]
            out[name] = normalize_id(v) if name == "id" else v
        query = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            p = params.get(name)
            if p is None or p.get("in") != "query":
                if d.strict_fields:
                    raise ApiError(400, "Unknown query parameter `%s` (Qdrant would ignore it; "
                                   "known: %s)" % (name, sorted(k for k, x in params.items()
                                                                if x.get("in") == "query")),
                                   kind="unknown_query_param")
                continue
            schema = to_json_schema(p["schema"], True)
            good = [c for c in coerce_query_value(value, schema, d.spec)
                    if not d.spec.errors(c, schema, True)]
            if not good:
                raise ApiError(400, "Query deserialize error: %s=%r does not match %s"
                               % (name, value, json.dumps(p["schema"])), kind="query_param")
            query[name] = good[-1]
        for name, p in params.items():
            if p.get("required") and p.get("in") == "query" and name not in query:
                raise ApiError(400, "Query deserialize error: missing field `%s`" % name, kind="query_param")
        out["__query__"] = query
        return out

    def _check_body(self, op, raw):
        d = self.double
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise ApiError(400, "Format error in JSON body: Content type error (got %r; send "
                           "Content-Type: application/json)" % ctype, kind="content_type")
        try:
            body = strict_json_loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "Format error in JSON body: %s" % e, kind="json")
        ptr = ["paths", self._spec_path(op), self.command.lower(), "requestBody", "content",
               "application/json", "schema"]
        errors = d.spec.errors(body, d.spec.schema(ptr, False), False)
        if errors:
            raise schema_error(errors, "JSON body", "schema")
        if d.strict_fields:
            errors = d.spec.errors(body, d.spec.schema(ptr, True), True)
            if errors:
                e = schema_error(errors, "JSON body", "unknown_field")
                e.message += " (Qdrant would silently ignore an unknown field; the double refuses it)"
                raise e
        self._semantic_checks(body)
        return body

    def _semantic_checks(self, body):
        """Checks Qdrant makes in its validators that the schema cannot express."""
        def walk(node, loc):
            if isinstance(node, dict):
                if is_sparse(node) and isinstance(node["indices"], list) and isinstance(node["values"], list):
                    check_sparse(node, loc)
                named = loc.endswith(".vector") and not is_sparse(node)
                for k, v in node.items():
                    if k in ("payload", "payloads", "metadata"):  # user data, not vectors
                        continue
                    # Qdrant names a named vector "?" in its messages (points[0].vector.?.values)
                    walk(v, loc + ".?" if named else ("%s.%s" % (loc, k) if loc else k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, "%s[%d]" % (loc, i))
        walk(body, "")

    def _spec_path(self, op):
        return self.double.spec.path_of[op["operationId"]]

    def _wrapped(self, op):
        schema = self.double.spec.resolve_raw(op["responses"]["200"]["content"]["application/json"]["schema"])
        return "result" in schema.get("properties", {})

    def _check_response(self, op, answer, method, path):
        d = self.double
        ptr = ["paths", self._spec_path(op), method.lower(), "responses", "200", "content",
               "application/json", "schema"]
        errors = d.spec.errors(answer, d.spec.schema(ptr, True), True)
        if errors:
            err = best_match(errors)
            with d.lock:
                d.violations.append({"method": method, "path": path, "op": OP_NAMES.get(op["operationId"]),
                                     "kind": "response", "status": 200,
                                     "error": "%s: %s" % (json_path(err.absolute_path), err.message[:400]),
                                     "body": answer})


def make_server(double, port, host="127.0.0.1"):
    handler = type("BoundHandler", (Handler,), {"double": double})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0 = pick a free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--api-key", default=None, help="require this api-key header (401 otherwise)")
    ap.add_argument("--data-dir", default=None, help="keep the state here so a restart keeps the points")
    ap.add_argument("--check-responses", action="store_true",
                    help="validate every 200 answer against the spec (a failure is a violation)")
    ap.add_argument("--lenient-fields", action="store_true",
                    help="accept unknown object fields and query parameters like Qdrant does")
    args = ap.parse_args(argv)
    if args.data_dir:
        os.makedirs(args.data_dir, exist_ok=True)
    double = Double(api_key=args.api_key, data_dir=args.data_dir,
                    check_responses=args.check_responses, strict_fields=not args.lenient_fields)
    server = make_server(double, args.port, args.host)
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
