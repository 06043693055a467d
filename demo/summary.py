"""Print the rollout's plan and its summary of each batch from a log of ansible-playbook (`make demo`).

    python3 demo/summary.py LOG [all|last|total]

The summary task prints a list of lines as YAML under `msg:`; this reads them back as they were.
"""

import re
import sys
import textwrap

import yaml

log = sys.argv[1]
which = sys.argv[2] if len(sys.argv) > 2 else "all"
with open(log) as handle:
    text = handle.read()
TASKS = r"TASK \[(?:[\w.]+ : )?(?:Say what the rollout will do|Summarize the batch)[^\n]*\n"
blocks = re.findall(TASKS + r"[^\n]*=> *\n((?:    [^\n]*\n)+)", text)
batches = [yaml.safe_load(textwrap.dedent(block))["msg"] for block in blocks]
for lines in batches if which == "all" else batches[-1:]:
    for line in lines if which != "total" else lines[-1:]:
        print("  " + line)
