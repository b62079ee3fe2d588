#!/usr/bin/env python3
"""Validates STIX 2.1 bundles with the OASIS stix2-validator in strict mode.

Usage: validate_strict.py BUNDLE.json...

Strict mode turns every warning into an error. One check is disabled: 103 ("id should be a
UUIDv4"): pycti's and STIX 2.1's deterministic ids are UUIDv5 by design, and must stay so for
OpenCTI to merge a second enrichment with the first.

Prints a one-line JSON summary {"valid": bool, "results": [{file, valid, errors, warnings}]}.
Exit status: 0 all valid, 1 some invalid, 3 stix2-validator not installed.
"""

import json
import sys

try:
    from stix2validator import ValidationOptions, validate_file
except ImportError:
    print("stix2-validator-missing: python3 -m pip install stix2-validator")
    sys.exit(3)


def main(paths):
    options = ValidationOptions(version="2.1", strict=True, disabled="103")
    results = []
    for path in paths:
        result = validate_file(path, options)
        errors, warnings = [], []
        for object_result in result.object_results:
            errors += [f"{object_result.object_id}: {e.message}" for e in object_result.errors]
            warnings += [f"{object_result.object_id}: {w.message}" for w in object_result.warnings]
        results.append({"file": path, "valid": bool(result.is_valid), "errors": errors,
                        "warnings": warnings})
    valid = all(r["valid"] for r in results)
    print(json.dumps({"valid": valid, "results": results}))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
