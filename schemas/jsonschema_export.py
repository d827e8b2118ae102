"""Export each contract as a JSON Schema file for consumers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "json"


def render(name: str) -> str:
    schema = EVENT_TYPES[name].model_json_schema()
    attributes = schema.get("properties", {}).get("attributes")
    if attributes:  # names outside the pattern are invalid, as in the model
        for option in attributes["anyOf"]:
            if option.get("type") == "object":
                option["additionalProperties"] = False
    schema["$id"] = f"https://sentinel.dev/schemas/{name}.v1.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(target: Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<Event>.v1.json`` per contract into ``target``; return the paths written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EVENT_TYPES:
        path = target / f"{name}.v1.json"
        path.write_text(render(name))
        written.append(path)
    return written
