#!/usr/bin/env python3
"""Runs schemathesis (every check) against one Baton service with the operations that
docs/openapi.yaml tags with that service: the document is cut down to them (other services'
methods on a shared path are not this service's, so `Allow` is checked against its own).

  schemathesis_check.py SERVICE URL API_KEY [MAX_EXAMPLES] [SEED] [--skip "METHOD /path"]...

Exits with schemathesis's status (0: no failure)."""
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

arguments = sys.argv[1:]
skipped = set()
while "--skip" in arguments:
    at = arguments.index("--skip")
    skipped.add(arguments[at + 1])
    del arguments[at:at + 2]
service, url, key = arguments[0], arguments[1], arguments[2]
examples = arguments[3] if len(arguments) > 3 else "25"
seed = arguments[4] if len(arguments) > 4 else "1"
docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")
with open(os.path.join(docs, "openapi.yaml")) as f:
    document = yaml.safe_load(f)

paths = {}
for path, item in document["paths"].items():
    kept = {k: v for k, v in item.items()
            if k not in ("get", "put", "post", "delete", "patch") or (service in v.get("tags", []) and f"{k.upper()} {path}" not in skipped)}
    if any(k in kept for k in ("get", "put", "post", "delete", "patch")):
        paths[path] = kept
document["paths"] = paths
if not paths:
    sys.exit(f"no operation of docs/openapi.yaml is tagged {service}")

work = tempfile.mkdtemp(prefix=f"schemathesis-{service}-")
shutil.copy(os.path.join(docs, "asyncapi.yaml"), work)
with open(os.path.join(work, "openapi.yaml"), "w") as f:
    yaml.safe_dump(document, f, sort_keys=False, allow_unicode=True)
print(f"{service}: {sum(len([m for m in i if m in ('get', 'put', 'post', 'delete')]) for i in paths.values())} operations", flush=True)
result = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", os.path.join(work, "openapi.yaml"), "--url", url,
                         "--checks", "all", "-H", f"Authorization: Bearer {key}", "--max-examples", examples, "--seed", seed,
                         "--no-color", "--report-dir", os.path.join(work, "report")], cwd=work,
                        env=dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)))
sys.exit(result.returncode)
