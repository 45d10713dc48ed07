#!/usr/bin/env python3
"""Convert the Kubernetes OpenAPI v2 spec (swagger.json) into kubeconform JSON schemas.

Input: ``api/openapi-spec/swagger.json`` of the ``k8s.io/kubernetes`` Go module
(the official spec of that release). Output directory layout is kubeconform's
default ``{kind}{-group}-{version}.json`` (for example ``deployment-apps-v1.json``,
``service-v1.json``) plus one shared ``_definitions.json`` that the per-kind files
reference with ``$ref``.

The transformations are the ones kubeconform's own schema builds apply
(instrumenta/openapi2jsonschema with ``--kubernetes --expanded --strict``):
IntOrString becomes string|integer, Quantity becomes string|number, ``kind`` and
``apiVersion`` are pinned per kind, every object with ``properties`` forbids
unknown fields (``additionalProperties: false``; this is what ``-strict`` means),
and optional scalar fields also accept ``null``. Nothing is added by hand.

Usage: k8s_openapi2jsonschema.py SWAGGER_JSON OUTPUT_DIR
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

DEFS_FILE = "_definitions.json"


def strict(node):
    """Set ``additionalProperties: false`` on every object schema that lists properties."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def nullable_optional(schema: dict) -> None:
    """Let optional properties with a scalar ``type`` also be ``null`` (API servers accept it)."""
    if not isinstance(schema, dict):
        return
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if name not in required and isinstance(prop.get("type"), str) and prop["type"] != "null":
            prop["type"] = [prop["type"], "null"]
        nullable_optional(prop)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            nullable_optional(schema[key])


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's schema file name for one group/version/kind."""
    suffix = f"-{group.split('.')[0].lower()}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def convert(swagger: dict, out: Path) -> int:
    """Write ``_definitions.json`` and one file per kind; return the number of kinds."""
    defs = copy.deepcopy(swagger["definitions"])
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "oneOf": [{"type": "string"}, {"type": "integer"}]
    }
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]
    }
    for schema in defs.values():
        nullable_optional(schema)
    strict(defs)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEFS_FILE).write_text(json.dumps({"definitions": defs}))
    n = 0
    for name, schema in swagger["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk["group"], gvk["version"], gvk["kind"]
            props = schema.get("properties", {})
            if "kind" not in props or "apiVersion" not in props:
                continue  # list/option types without a kind field are not documents
            api_version = f"{group}/{version}" if group else version
            doc = {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "allOf": [
                    {"$ref": f"{DEFS_FILE}#/definitions/{name}"},
                    {
                        "properties": {
                            "apiVersion": {"enum": [api_version]},
                            "kind": {"enum": [kind]},
                        },
                        "required": ["apiVersion", "kind"],
                    },
                ],
            }
            (out / file_name(group, version, kind)).write_text(json.dumps(doc))
            n += 1
    return n


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    n = convert(json.loads(Path(argv[1]).read_text()), Path(argv[2]))
    print(f"wrote {n} kind schemas to {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
