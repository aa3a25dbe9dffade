"""The published JSON Schema of the policy file, generated from the pydantic model.

Regenerate the committed copy after changing any section: ``python -m policies.file.schema``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from policies.file.document import PolicyFile

SCHEMA_PATH = Path(__file__).with_name("policy-file.schema.json")
SCHEMA_ID = "https://mlgate.dev/schemas/policy-file-v1.json"


def policy_file_schema() -> dict:
    """The JSON Schema (draft 2020-12) describing a valid policy file."""
    schema = PolicyFile.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The schema as the committed file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(policy_file_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema next to this module (or to the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMA_PATH
    target.write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
