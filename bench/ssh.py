"""Benchmark: the no-op deploy over SSH, on the two servers of the Molecule scenario `ssh`.

The hosts are Podman containers running sshd (tests/bin/molecule converge --scenario-name ssh);
Ansible logs in as the unprivileged user `ansible` with key authentication and pipelining, and
becomes root with sudo, as it does on servers. In one run, alternating, REPEAT times each:

- empty: a play with no task (what loading the inventory and starting a play costs);
- floor: bench/playbooks/floor.yml, one ConfigQuery per host, the least any tool that checks the
  server can do;
- ours: playbooks/deploy_postauth.yml with nothing to change;
- ours, no pipelining: the same with ansible_ssh_pipelining=false (each module copied over SFTP
  first, the way Ansible runs without it).

The medians are reported, with every sacli call counted from the servers' call logs. The table
is printed; bench/results/ssh.json is written. The containers are destroyed at the end.

    .venv/bin/python bench/ssh.py [--repeat 5]
"""

import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUNNER = os.path.join(REPO, "tests", "bin", "molecule")
SERVERS = ("ovpnas-ssh-bookworm", "ovpnas-ssh-trixie")
CALLS = "/usr/local/openvpn_as/log/calls.jsonl"
SACLI = "/usr/local/openvpn_as/scripts/sacli"
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(REPO, "molecule", "images", "containers.conf"),
           PATH=os.path.join(REPO, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""))
VARIANTS = {
    "empty": (os.path.join(HERE, "playbooks", "empty.yml"), []),
    "floor": (os.path.join(HERE, "playbooks", "floor.yml"), ["-e", "ovpnas_sacli_path=" + SACLI]),
    "ours": (os.path.join(REPO, "playbooks", "deploy_postauth.yml"), []),
    "ours, no pipelining": (os.path.join(REPO, "playbooks", "deploy_postauth.yml"),
                            ["-e", "ansible_ssh_pipelining=false"]),
}


def inventory():
    """The inventory Molecule wrote for the scenario (its ephemeral folder, the newest if several)."""
    found = glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.ssh/inventory"))
    if not found:
        raise SystemExit("no inventory of the ssh scenario: did its converge run?")
    return max(found, key=os.path.getmtime)


def podman(*args):
    return subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True, check=True).stdout


def calls():
    """sacli and authcli calls per server since the last clear, then clear."""
    made = {}
    for server in SERVERS:
        out = podman("exec", server, "sh", "-c", "cat %s 2>/dev/null; rm -f %s" % (CALLS, CALLS))
        made[server] = [json.loads(line)["command"] for line in out.splitlines()]
    return made


def run(variant, hosts):
    playbook, extra = VARIANTS[variant]
    env = dict(ENV, ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), MOLECULE_PROJECT_DIRECTORY=REPO)
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", "-i", hosts, playbook, *extra], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (variant, proc.stdout, proc.stderr))
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return wall, changed, calls()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    try:
        subprocess.run([RUNNER, "converge", "--scenario-name", "ssh"], cwd=REPO, env=ENV, check=True,
                       stdout=subprocess.DEVNULL)
        hosts = inventory()
        calls()
        walls = {variant: [] for variant in VARIANTS}
        made = {}
        for _round in range(options.repeat):
            for variant in VARIANTS:
                wall, changed, per_server = run(variant, hosts)
                if changed:
                    raise SystemExit("%s changed something: not a no-op" % variant)
                walls[variant].append(wall)
                made[variant] = per_server
    finally:
        subprocess.run([RUNNER, "destroy", "--scenario-name", "ssh"], cwd=REPO, env=ENV, check=False,
                       stdout=subprocess.DEVNULL)
    median = {variant: statistics.median(values) for variant, values in walls.items()}
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "processor": platform.processor()},
        "servers": len(SERVERS),
        "repeat": options.repeat,
        "variants": {variant: {"walls": walls[variant], "median": median[variant],
                               "calls_per_server": made[variant]} for variant in VARIANTS},
        "ratios": {
            "ours/floor": median["ours"] / median["floor"],
            "(ours-empty)/(floor-empty)": (median["ours"] - median["empty"]) / (median["floor"] - median["empty"]),
            "no pipelining/ours": median["ours, no pipelining"] / median["ours"],
        },
    }
    print("%-22s %9s  %s" % ("variant", "median s", "sacli/authcli calls per server"))
    for variant in VARIANTS:
        print("%-22s %9.2f  %s" % (variant, median[variant], made[variant][SERVERS[0]]))
    for name, value in results["ratios"].items():
        print("%-28s %.2f" % (name, value))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "ssh.json"), "w") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
