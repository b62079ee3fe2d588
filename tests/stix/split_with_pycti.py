#!/usr/bin/env python3
"""Splits a STIX bundle with pycti's own splitter, as pycti does before publishing bundles to
the push queue (OpenCTIStix2Splitter.split_bundle_with_expectations).

Usage: split_with_pycti.py BUNDLE.json

Prints {"expectations": n, "bundles": [bundle, ...]} (each bundle parsed JSON).
Exit status: 0, or 3 when pycti is not installed.
"""

import json
import sys

try:
    from pycti.utils.opencti_stix2_splitter import OpenCTIStix2Splitter
except ImportError:
    print("pycti-missing: python3 -m pip install pycti")
    sys.exit(3)

with open(sys.argv[1], encoding="utf-8") as handle:
    text = handle.read()
expectations, _, bundles = OpenCTIStix2Splitter().split_bundle_with_expectations(text)
print(json.dumps({"expectations": expectations, "bundles": [json.loads(b) for b in bundles]}))
