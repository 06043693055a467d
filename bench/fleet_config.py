"""Benchmark: five configuration keys on a fleet of emulated servers, three ways, in one run.

For each approach a fresh fleet is installed, the playbook runs twice (converge, then steady
state) and every sacli call on every host is counted from the emulator's call logs. Wall
times are compared as ratios against the baselines measured in the same run.

    .venv/bin/python bench/fleet_config.py [--hosts 10] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "emulator"))

from asemu.root import Root  # noqa: E402

SETTINGS = {
    "host.name": "vpn.example.com",
    "vpn.client.routing.reroute_gw": False,
    "vpn.client.routing.reroute_dns": True,
    "vpn.server.daemon.tcp.n_daemons": 2,
    "vpn.server.routing.private_access": "nat",
}
APPROACHES = (
    ("peer_naive", "every key written and a restart on every run"),
    ("peer_compare", "one ConfigQuery per key, write on difference, restart on change"),
    ("ovpnas_fleet", "ovpnas.fleet.sacli_config + sacli_start handler"),
)


def install_fleet(base, hosts):
    fleet = {}
    for index in range(1, hosts + 1):
        name = "as%02d" % index
        path = os.path.join(base, name)
        subprocess.run([os.path.join(REPO, "tests", "emulator", "install"), path], check=True, capture_output=True)
        fleet[name] = Root(path)
    inventory = os.path.join(base, "inventory.json")
    with open(inventory, "w") as handle:
        json.dump({"fleet": {
            "hosts": {n: {"sacli_path": os.path.join(r.path, "scripts", "sacli")} for n, r in fleet.items()},
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "bench_settings": SETTINGS},
        }}, handle)
    return fleet, inventory


def run_playbook(name, inventory):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORKS="10",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    started = time.monotonic()
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
         os.path.join(HERE, "playbooks", name + ".yml")],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (name, proc.stdout, proc.stderr))
    return elapsed


def calls(fleet):
    counts = {}
    for root in fleet.values():
        for call in root.calls():
            counts[call["command"]] = counts.get(call["command"], 0) + 1
        os.remove(root.call_log)
    return counts


def measure(name, hosts, rounds):
    runs = {"converge": [], "steady": []}
    counts = {}
    for _round in range(rounds):
        base = tempfile.mkdtemp(prefix="bench-%s-" % name)
        try:
            fleet, inventory = install_fleet(base, hosts)
            for phase in ("converge", "steady"):
                runs[phase].append(run_playbook(name, inventory))
                counts[phase] = calls(fleet)
        finally:
            shutil.rmtree(base)
    return {
        phase: {
            "seconds_median": round(statistics.median(runs[phase]), 3),
            "sacli_calls_per_host": round(sum(counts[phase].values()) / hosts, 2),
            "starts_per_host": round(counts[phase].get("start", 0) / hosts, 2),
            "calls": counts[phase],
        }
        for phase in runs
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "fleet_config.json"))
    args = parser.parse_args()

    results = {name: measure(name, args.hosts, args.rounds) for name, _desc in APPROACHES}
    ours = results["ovpnas_fleet"]
    report = {"hosts": args.hosts, "keys": len(SETTINGS), "rounds": args.rounds, "results": results, "ratios": {}}
    for baseline in ("peer_naive", "peer_compare"):
        for phase in ("converge", "steady"):
            base = results[baseline][phase]
            report["ratios"]["%s/%s" % (baseline, phase)] = {
                "time": round(ours[phase]["seconds_median"] / base["seconds_median"], 2),
                "sacli_calls": round(ours[phase]["sacli_calls_per_host"] / base["sacli_calls_per_host"], 2),
            }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)

    print("%d hosts, %d keys, median of %d rounds" % (args.hosts, len(SETTINGS), args.rounds))
    print("%-14s %-9s %8s %12s %8s" % ("approach", "run", "seconds", "calls/host", "starts"))
    for name, _desc in APPROACHES:
        for phase in ("converge", "steady"):
            row = results[name][phase]
            print("%-14s %-9s %8.2f %12.1f %8.1f" % (
                name, phase, row["seconds_median"], row["sacli_calls_per_host"], row["starts_per_host"]))
    print("ovpnas_fleet against the baselines (ours / theirs):")
    for key, ratio in report["ratios"].items():
        print("  %-22s time %.2f  sacli calls %.2f" % (key, ratio["time"], ratio["sacli_calls"]))


if __name__ == "__main__":
    main()
