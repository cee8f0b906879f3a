"""Validation against OpenAI's published OpenAPI description (openapi.json here).

The document is OpenAPI 3.1 but still uses 3.0's `nullable: true` in places;
to_json_schema() rewrites it into JSON Schema 2020-12 once:
  * `nullable: true` beside `type` adds "null" to the type (and to an
    `enum`, which 3.0's nullable also widens);
  * `nullable: true` beside anything else ($ref, anyOf, ...) becomes
    anyOf[that, {"type": "null"}] (a sibling of $ref is otherwise ANDed).
`$ref`s resolve against the whole document, so a schema is named by its
components key: validate("CreateChatCompletionRequest", body) returns a list
of error strings (empty = valid).
"""
import functools
import json
import os

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_PATH = os.path.join(HERE, "openapi.json")


def to_json_schema(node):
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]  # 3.0: nullable admits null past an enum
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list):
            if "null" not in t:
                out["type"] = t + ["null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.lru_cache(maxsize=1)
def spec():
    with open(SPEC_PATH) as f:
        return to_json_schema(json.load(f))


@functools.lru_cache(maxsize=None)
def validator(name):
    doc = spec()
    if name not in doc["components"]["schemas"]:
        raise KeyError("no schema %s in openapi.json" % name)
    resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
    return jsonschema.Draft202012Validator({"$ref": "#/components/schemas/" + name},
                                           resolver=resolver,
                                           format_checker=jsonschema.FormatChecker())


def validate(name, instance):
    """Errors of instance against components.schemas[name], as strings."""
    errs = []
    for e in validator(name).iter_errors(instance):
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        errs.append("%s: %s" % (where, e.message[:300]))
    return errs
