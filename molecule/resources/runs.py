"""What a run of molecule/resources/run_playbook.yml left in the scenario's ephemeral folder."""

import json
import os

EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")


def output(run):
    """The run's output (stdout, then stderr), its lines unwrapped."""
    with open(os.path.join(EPHEMERAL, run + ".log")) as handle:
        return " ".join(handle.read().split())


def calls(run, server):
    """(tool, command) of every sacli and authcli call the run made on the server, in order."""
    path = os.path.join(EPHEMERAL, "%s-%s.jsonl" % (run, server))
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [(c["tool"], c["command"]) for c in map(json.loads, handle)]
