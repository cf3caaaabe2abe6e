"""The spec's JSON Schema: pydantic's, plus what the registries know (attention names and options).

Editors (e.g. the YAML language server) can validate and complete spec files with it.
"""
from __future__ import annotations

from typing import Any

from nasgraph import __version__, attention
from nasgraph.spec.schema import Spec

SCHEMA_ID = "urn:nasgraph:spec:v1"


def _candidate_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """A candidate: a registered name, or {name: {options}} with that type's own options."""
    options: dict[str, Any] = {}
    for name in attention.names():
        sub = attention.get(name).Config.model_json_schema()
        defs.update(sub.pop("$defs", {}))
        options[name] = {"anyOf": [sub, {"type": "null"}]}
    return {
        "description": "An attention type: a name, or a one-key mapping {name: {options}}.",
        "anyOf": [
            {"type": "string", "enum": attention.names()},
            {"type": "object", "properties": options, "additionalProperties": False,
             "minProperties": 1, "maxProperties": 1},
        ],
    }


def _task_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """The task: one registered kind's own options, selected by `kind`."""
    from nasgraph import tasks

    kinds = []
    for kind in tasks.kinds():
        sub = tasks.get(kind).Config.model_json_schema()
        defs.update(sub.pop("$defs", {}))
        sub["properties"]["kind"] = {"const": kind}
        sub["required"] = sorted(set(sub.get("required", [])) | {"kind"})
        kinds.append(sub)
    return {"description": "The task: `kind` plus that kind's own options.", "oneOf": kinds}


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a spec file."""
    schema = Spec.model_json_schema()
    defs = schema["$defs"]
    defs["AttentionCandidate"] = _candidate_schema(defs)
    candidate = {"$ref": "#/$defs/AttentionCandidate"}
    for key in ("candidates", "heads"):
        defs["AttentionSpec"]["properties"][key]["anyOf"][0]["items"] = candidate
    shorthand = {"anyOf": [{"$ref": "#/$defs/AttentionSpec"}, candidate,
                           {"type": "array", "items": candidate, "minItems": 1}, {"type": "null"}],
                 "default": None,
                 "description": "An attention spec, or a shorthand: a type, a list of candidate types."}
    for owner in ("ModelSpec", "LayerSpec"):
        defs[owner]["properties"]["attention"] = shorthand
    schema["properties"]["task"] = _task_schema(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "nasgraph spec",
        "description": f"A nasgraph {__version__} spec file: name, task, model, search, train, export, "
                       "bench. See docs/spec.md.",
        **{k: v for k, v in schema.items() if k != "title"},
    }
