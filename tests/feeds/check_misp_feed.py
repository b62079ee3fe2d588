"""Checks a MISP feed directory the way MISP reads it, with PyMISP: every manifest entry is an
event that MISPEvent.load accepts, manifest and events agree, and hashes.csv lists exactly
md5(value),event_uuid for every attribute. Prints a JSON summary; exit 3 if PyMISP is missing."""

import hashlib
import json
import sys
from pathlib import Path

try:
    from pymisp import MISPEvent
except ImportError:
    sys.exit(3)


def check(directory: Path) -> dict:
    problems = []
    manifest = json.loads((directory / "manifest.json").read_text())
    expected_hashes = set()
    attributes = 0
    for uuid, entry in manifest.items():
        event = MISPEvent()
        event.load(json.loads((directory / f"{uuid}.json").read_text()))
        if event.uuid != uuid:
            problems.append(f"{uuid}: event uuid {event.uuid}")
        if event.Orgc.name != entry["Orgc"]["name"] or event.Orgc.uuid != entry["Orgc"]["uuid"]:
            problems.append(f"{uuid}: Orgc differs from the manifest")
        if event.info != entry["info"] or str(event.date) != entry["date"]:
            problems.append(f"{uuid}: info/date differ from the manifest")
        if int(event.timestamp.timestamp()) != int(entry["timestamp"]):
            problems.append(f"{uuid}: timestamp differs from the manifest")
        if sorted(t.name for t in event.tags) != sorted(t["name"] for t in entry["Tag"]):
            problems.append(f"{uuid}: tags differ from the manifest")
        for attribute in event.attributes:
            attributes += 1
            if attribute.type not in ("domain", "hostname", "ip-dst"):
                problems.append(f"{uuid}: attribute type {attribute.type}")
            expected_hashes.add((hashlib.md5(attribute.value.encode()).hexdigest(), uuid))
    lines = [l for l in (directory / "hashes.csv").read_text().splitlines() if l]
    hashes = {tuple(line.split(",", 1)) for line in lines}
    if len(lines) != len(hashes):
        problems.append("hashes.csv has duplicate lines")
    if hashes != expected_hashes:
        problems.append(
            f"hashes.csv disagrees with the events: {len(hashes - expected_hashes)} extra, "
            f"{len(expected_hashes - hashes)} missing"
        )
    return {"valid": not problems, "events": len(manifest), "attributes": attributes,
            "problems": problems[:20]}


if __name__ == "__main__":
    summary = check(Path(sys.argv[1]))
    print(json.dumps(summary))
    sys.exit(0 if summary["valid"] else 1)
