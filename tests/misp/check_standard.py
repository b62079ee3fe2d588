"""Loads a misp_standard answer with PyMISP, as misp-modules' own modules build theirs.

Usage: check_standard.py ANSWERS.json, a list of {"answer": <a /query reply>, "input_uuid"}.
Every object is loaded with strict template
validation (its template is found by name in PyMISP's bundled misp-objects, its version must
be that template's, required and requiredOneOf relations present, single-valued relations
once, no relation the template lacks) and every attribute through MISPAttribute (type and category known to PyMISP's
describeTypes). Prints a JSON summary; exits 1 with the findings otherwise, 3 without PyMISP.
"""

import json
import logging
import sys

try:
    import pymisp
    from pymisp import MISPAttribute, MISPEvent, MISPObject
except ImportError:
    sys.exit(3)  # not installed: the caller decides whether that is a failure


class Warnings(logging.Handler):
    """PyMISP only logs some refusals (an object_relation its template lacks): keep them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check(answer: dict, input_uuid: str) -> tuple[list[str], MISPEvent]:
    results = answer["results"]
    problems = []
    event = MISPEvent()
    uuids = {input_uuid}
    for attribute in results.get("Attribute", []):
        a = MISPAttribute()
        try:
            a.from_dict(**attribute)
        except Exception as error:  # PyMISP raises its own error types
            problems.append(f"attribute {attribute.get('value')!r}: {error}")
            continue
        uuids.add(a.uuid)
        event.add_attribute(**a)
    for raw in results.get("Object", []):
        try:
            o = MISPObject(raw["name"], strict=True)
            o.from_dict(**raw)
            o.to_dict(strict=True)
        except Exception as error:
            problems.append(f"object {raw.get('name')} {raw.get('uuid')}: {error}")
            continue
        if o.uuid != raw["uuid"] or o.template_uuid != raw["template_uuid"]:
            problems.append(f"object {raw['name']}: uuid or template uuid not kept")
        uuids.add(o.uuid)
        uuids.update(a.uuid for a in o.attributes)
        event.add_object(o)
    for o in event.objects:
        for reference in o.references:
            if reference.referenced_uuid not in uuids:
                problems.append(f"reference to nothing: {reference.referenced_uuid}")
    return problems, event


def main() -> int:
    warnings = Warnings()
    logging.getLogger("pymisp").addHandler(warnings)
    with open(sys.argv[1], encoding="utf-8") as f:
        answers = json.load(f)
    problems = []
    objects = attributes = 0
    for n, item in enumerate(answers):
        found, event = check(item["answer"], item["input_uuid"])
        found.extend(f"PyMISP: {message}" for message in warnings.messages)
        warnings.messages.clear()
        problems.extend(f"answer {n}: {p}" for p in found)
        objects += len(event.objects)
        attributes += len(event.attributes)
    if problems:
        print("\n".join(problems))
        return 1
    print(json.dumps({"pymisp": pymisp.__version__, "answers": len(answers),
                      "objects": objects, "attributes": attributes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
