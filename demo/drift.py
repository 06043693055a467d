"""Show what the drift audit found (`make demo`), and check it names exactly the expected hosts.

    python3 demo/drift.py REPORT.json HOST...
"""

import json
import os
import sys

path, expected = sys.argv[1], sys.argv[2:]
with open(path) as handle:
    report = json.load(handle)
print("  %(hosts)d hosts: %(in_sync)d in sync, %(drift)d drifting, %(unreachable)d not read, %(standby)d standby"
      % report["totals"])
for host in report["hosts"]:
    if host["status"] != "in_sync":
        script = host["post_auth"]
        print("  %s: %s; differs: %s; live script %s (seal %s), expected %s" % (
            host["host"], host["status"], ", ".join(host["differs"]), (script["live_sha256"] or "-")[:12],
            "intact" if script["sealed"] else "broken", (script["expected_sha256"] or "-")[:12]))
        for line in script.get("differing_lines") or []:
            print("    %s" % line)
html = os.path.realpath(os.path.join(os.path.dirname(path), "drift.html"))
print("  The report: %s (and drift.md, drift.json)" % html)
found = [host["host"] for host in report["hosts"] if host["status"] != "in_sync"]
if found != expected:
    sys.exit("the audit names %s, not %s" % (", ".join(found) or "no host", ", ".join(expected)))
