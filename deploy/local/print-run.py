"""Prints a run document (GET /api/v1/runs/{id}) read from standard input."""
import json
import sys

run = json.load(sys.stdin)
print("run %s  job %s@%s  status %s" % (run["id"], run["jobId"], run["jobVersion"], run["status"]))
print("output: %s" % json.dumps(run.get("output")))
if run.get("error"):
    print("error: %s" % run["error"])
print("tasks:")
for task in run["tasks"]:
    print("  - %r: %s, attempts %d, output %s" % (task["key"], task["status"], task["attempts"], json.dumps(task.get("output"))))
print("logs:")
for line in run["logs"]:
    print("  - [%s] %s" % (line["level"], line["message"]))
