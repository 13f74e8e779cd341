"""The reference JSON Schema implementation (python-jsonschema), for
tests/tests/body_schema.rs: reads {"cases": [[schema, instance], ...]} on stdin and
prints [valid, ...], one verdict per case, each by the draft the schema's `$schema`
names, else 2020-12 (as trigger.schema reads it); `format` is an annotation.

An import that fails is an error (exit 1), never a skip: scripts/test installs it.
"""

import json
import sys

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

cases = json.load(sys.stdin)["cases"]
verdicts = []
for schema, instance in cases:
    cls = validator_for(schema, default=Draft202012Validator)
    verdicts.append(cls(schema).is_valid(instance))
json.dump(verdicts, sys.stdout)
