"""Validate a CycloneDX 1.6 JSON BOM against the official schema, strictly.

The schema is the one cyclonedx-python-lib ships (bom-1.6.schema.json, with the spdx, jsf
and cryptography-defs schemas it references), checked by its JsonStrictValidator: no member
the schema does not define, and jsonschema's format checks (date-time, iri-reference, ...).

Usage: check_cyclonedx.py BOM.json
Prints "valid CycloneDX 1.6 (cyclonedx-python-lib VERSION)" and exits 0, or prints every
error on stderr and exits 1.
"""

import importlib.metadata
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    errors = list(errors or [])
    if errors:
        for e in errors:
            print(f"invalid: {e.data.message} at {list(e.data.absolute_path)}", file=sys.stderr)
        sys.exit(1)
    version = importlib.metadata.version("cyclonedx-python-lib")
    print(f"valid CycloneDX 1.6 (cyclonedx-python-lib {version})")


if __name__ == "__main__":
    main()
