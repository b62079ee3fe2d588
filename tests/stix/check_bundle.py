#!/usr/bin/env python3
"""Checks a STIX 2.1 bundle made by misp-domaintools with the OASIS stix2 library.

Usage: check_bundle.py BUNDLE.json

- stix2.parse(..., allow_custom=True) must accept the bundle and every object in it;
- every SCO id is recomputed by stix2 from the id-contributing property and must match;
- identity, relationship and indicator ids are recomputed with pycti's rules (UUIDv5 over the
  stix2-canonicalized name/class, type/source/target/start/stop, or pattern);
- an indicator's validity ends after it starts;
- ids are unique, references resolve inside the bundle, no relationship points at its source,
  and every object the enrichment created carries a TLP marking.

Prints a one-line JSON summary. Exit status: 0 valid, 1 invalid, 3 stix2 not installed.
"""

import json
import sys
import uuid
from datetime import datetime

try:
    import stix2
    from stix2.canonicalization.Canonicalize import canonicalize
except ImportError:
    print("stix2-missing: python3 -m pip install stix2")
    sys.exit(3)

NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
OCTI_SCO = "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"
TLP_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}
SCO_CLASSES = {
    "domain-name": (stix2.DomainName, "value"),
    "ipv4-addr": (stix2.IPv4Address, "value"),
    "ipv6-addr": (stix2.IPv6Address, "value"),
    "email-addr": (stix2.EmailAddress, "value"),
    "autonomous-system": (stix2.AutonomousSystem, "number"),
}


def pycti_id(prefix, data):
    return prefix + "--" + str(uuid.uuid5(NAMESPACE, canonicalize(data, utf8=False)))


def naive(timestamp):
    """pycti hashes datetime.isoformat() of the parsed time: no zone designator."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").isoformat()


def relationship_id(obj):
    data = {
        "relationship_type": obj["relationship_type"],
        "source_ref": obj["source_ref"],
        "target_ref": obj["target_ref"],
    }
    if "start_time" in obj:
        data["start_time"] = naive(obj["start_time"])
        if "stop_time" in obj:
            data["stop_time"] = naive(obj["stop_time"])
    return pycti_id("relationship", data)


def main(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    errors = []
    parsed = stix2.parse(text, allow_custom=True)
    if not isinstance(parsed, stix2.v21.Bundle):
        errors.append("not a STIX 2.1 bundle: %r" % type(parsed))
    raw = json.loads(text)
    objects = raw.get("objects", [])
    if len(parsed.objects) != len(objects):
        errors.append("stix2 kept %d of %d objects" % (len(parsed.objects), len(objects)))
    ids = [obj.get("id") for obj in objects]
    if len(set(ids)) != len(ids):
        errors.append("duplicate ids")
    known = set(ids)
    types = {}
    recomputed = 0
    for obj in objects:
        kind = obj.get("type")
        types[kind] = types.get(kind, 0) + 1
        oid = obj.get("id")
        if kind in SCO_CLASSES:
            cls, key = SCO_CLASSES[kind]
            expected = cls(**{key: obj[key]}).id
            recomputed += 1
            if expected != oid:
                errors.append("%s: stix2 computes %s" % (oid, expected))
            extension = obj.get("extensions", {}).get(OCTI_SCO, {})
            author = extension.get("created_by_ref")
            if author is not None:
                if author not in known:
                    errors.append("%s: author %s not in the bundle" % (oid, author))
                if not obj.get("object_marking_refs"):
                    errors.append("%s: created without a marking" % oid)
            if "x_opencti_score" in obj:
                errors.append("%s: the score belongs in OpenCTI's extension only" % oid)
            if extension and extension.get("extension_type") != "property-extension":
                errors.append("%s: OpenCTI's extension is not a property-extension" % oid)
        elif kind == "identity":
            expected = pycti_id(
                "identity",
                {"name": obj["name"].lower().strip(), "identity_class": obj["identity_class"]},
            )
            recomputed += 1
            if expected != oid:
                errors.append("%s: pycti computes %s" % (oid, expected))
        elif kind == "relationship":
            expected = relationship_id(obj)
            recomputed += 1
            if expected != oid:
                errors.append("%s: pycti computes %s" % (oid, expected))
            for ref in ("source_ref", "target_ref", "created_by_ref"):
                if obj.get(ref) not in known:
                    errors.append("%s: %s %s not in the bundle" % (oid, ref, obj.get(ref)))
            if obj["source_ref"] == obj["target_ref"]:
                errors.append("%s: relationship to itself" % oid)
            if not obj.get("object_marking_refs"):
                errors.append("%s: relationship without a marking" % oid)
        elif kind == "indicator":
            expected = pycti_id("indicator", {"pattern": obj["pattern"].strip()})
            recomputed += 1
            if expected != oid:
                errors.append("%s: pycti computes %s" % (oid, expected))
            if obj.get("created_by_ref") not in known:
                errors.append("%s: author %s not in the bundle" % (oid, obj.get("created_by_ref")))
            if not obj.get("object_marking_refs"):
                errors.append("%s: indicator without a marking" % oid)
            if "x_opencti_score" in obj:
                errors.append("%s: the score belongs in OpenCTI's extension only" % oid)
            parsed_indicator = next(o for o in parsed.objects if o.id == oid)
            until = parsed_indicator.get("valid_until")
            if until is not None and until <= parsed_indicator.valid_from:
                errors.append("%s: valid_until is not after valid_from" % oid)
        else:
            errors.append("%s: unexpected type %s" % (oid, kind))
        for marking in obj.get("object_marking_refs", []):
            if marking not in TLP_IDS:
                errors.append("%s: unknown marking %s" % (oid, marking))
    summary = {
        "valid": not errors,
        "objects": len(objects),
        "types": types,
        "ids_recomputed": recomputed,
        "stix2": stix2.__version__,
        "errors": errors,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0 if not errors else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1]))
    except Exception as error:  # stix2 refusing the bundle is a finding, not a crash
        print(json.dumps({"valid": False, "errors": ["%s: %s" % (type(error).__name__, error)]}))
        sys.exit(1)
