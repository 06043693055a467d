"""Benchmark: a post-auth rollout to fleets of 10, 50 and 200 emulated servers, against a floor and a peer role.

For each fleet size N, in one run:

- ours: playbooks/deploy_postauth.yml with a realistic inventory (three configuration keys, group
  mapping, device pinning (automatic registration), a host-checker policy and its query file,
  policy cases), run first (fresh fleet), noop (nothing changed), change (max devices 2 -> 3);
- floor: bench/playbooks/floor.yml, one ConfigQuery per host, on the fleet ours deployed; its no-op runs
  and those of ours alternate, three of each, and the medians are reported;
- baseline: bench/baselines/peer_deploy.yml on a second fresh fleet, the way existing roles work
  (copy the files, one `ConfigQuery | jq` per managed key, ConfigPut on difference, `sacli start`
  handler), deploying the script and query file that ours loaded (read back from ours' first
  server after its first and its change run); first, noop, change (the new script).

Every sacli call is counted from the emulator's call logs (cleared between runs). The table is
printed; bench/results/fleet.json and bench/results/fleet.png are written.

    .venv/bin/python bench/fleet.py [--sizes 10,50,200]
"""

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from asemu.root import Root
from asemu.store import Store

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

FORKS = 10
# no-op runs of ours and of the floor, interleaved; the median of each is reported
REPEAT = 3
SIZES = (10, 50, 200)
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"

PLAYBOOKS = {
    "ours": os.path.join(REPO, "playbooks", "deploy_postauth.yml"),
    "floor": os.path.join(HERE, "playbooks", "floor.yml"),
    "baseline": os.path.join(HERE, "baselines", "peer_deploy.yml"),
    "empty": os.path.join(HERE, "playbooks", "empty.yml"),
}
VARIANTS = ("ours", "floor", "baseline")
RUNS = {"ours": ("first", "noop", "change"), "floor": ("noop",), "baseline": ("first", "noop", "change")}

# The change run of ours: one variable that changes the script.
CHANGE = {"post_auth_device_pinning_max_devices": 3}

APPS = [
    {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "min_version": "4.18", "required": True},
]
ADMINS = "cn=vpn-admins,ou=groups,dc=example,dc=com"
CONTRACTORS = "cn=contractors,ou=groups,dc=example,dc=com"
INVENTORY_VARS = {
    "ovpnas_become": False,
    "ovpnas_config_settings": {
        "host.name": "{{ inventory_hostname }}.vpn.example.com",
        "vpn.client.routing.reroute_gw": False,
        "vpn.server.daemon.tcp.n_daemons": 2,
    },
    # one list for the query file (host_checker role) and the policy (post_auth role)
    "host_checker_apps": APPS,
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["ldap", "saml"],
    "post_auth_group_mapping_rules": [
        {"name": "administrators", "ldap_groups": [ADMINS], "saml_groups": ["vpn-admins"], "group": "admins",
         "properties": {"prop_autologin": False}},
        {"name": "contractors expire after 8 hours", "ldap_groups": [CONTRACTORS], "saml_groups": ["contractors"],
         "group": "contractors", "properties": {"prop_expire": 28800, "prop_deny_web": True}},
    ],
    "post_auth_group_mapping_default_group": "users",
    "post_auth_device_pinning": True,
    # each device registers itself on first use (auto mode): no registry, so the no-op is one read
    "post_auth_device_pinning_mode": "auto",
    "post_auth_device_pinning_max_devices": 2,
    "post_auth_device_pinning_exempt_users": ["breakglass"],
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {"name": "an admin on a registered laptop", "user": "alice", "auth_method": "ldap",
         "ldap": {"groups": [ADMINS], "api": "ldap3"},
         "properties": {"pvt_hw_addr": "00:11:22:33:44:55", "pvt_hw_addr2": "00:11:22:33:44:66"},
         "client": {"hw_addr": "00:11:22:33:44:66", "platform": "win",
                    "info": {"UV_APPVER_FIREFOX": "128.0.3", "UV_APPVER_DEFENDER": "4.18.24090"}},
         "expect": {"status": "SUCCEED", "group": "admins"}},
        {"name": "a contractor's fourth device is refused", "user": "bob", "auth_method": "saml",
         "saml_attr": {"groups": ["contractors"]},
         "properties": {"pvt_hw_addr": "00:11:22:33:44:77", "pvt_hw_addr2": "00:11:22:33:44:78",
                        "pvt_hw_addr3": "00:11:22:33:44:79"},
         "client": {"hw_addr": "00:11:22:33:44:57", "platform": "mac", "info": {"UV_APPVER_FIREFOX": "128.0.3"}},
         "expect": {"status": "FAIL", "client_reason": "not registered"}},
        {"name": "an old Firefox is refused", "user": "carol", "auth_method": "ldap", "ldap": {"groups": []},
         "properties": {"pvt_hw_addr": "00:11:22:33:44:88"},
         "client": {"hw_addr": "00:11:22:33:44:88", "platform": "mac", "info": {"UV_APPVER_FIREFOX": "102.9"}},
         "expect": {"status": "FAIL", "client_reason": "FIREFOX must be updated to version 115.0"}},
    ],
}

TARGETS = {
    "noop_no_write_no_start_one_read": "ours noop: 0 writes, 0 starts and 1 sacli call (the read) per host, at every N",
    "noop_within_1.3x_floor": "ours noop wall <= 1.3 x floor noop wall, at every N",
    "noop_3x_faster_than_baseline": "baseline noop wall >= 3 x ours noop wall, at every N",
    "first_no_slower_than_baseline": "ours first wall <= baseline first wall, at every N",
    "one_start_per_changed_host": "ours first and change (every host changes): each host ran sacli start exactly once",
    "flat_cost_per_host": (
        "ours noop cost per host, (wall - wall of an empty play on the same inventory) / N, at the largest N "
        "is within 1.5 x its value at the smallest N"
    ),
}


# --- fleets -------------------------------------------------------------------------------


def install_fleet(base, n):
    """N emulator roots under base, and a JSON inventory reaching them with the local connection."""
    names = ["as%03d" % index for index in range(1, n + 1)]
    install = os.path.join(REPO, "tests", "emulator", "install")

    def one(name):
        subprocess.run([install, os.path.join(base, name)], check=True, capture_output=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, names))
    fleet = {name: Root(os.path.join(base, name)) for name in names}
    inventory = os.path.join(base, "inventory.json")
    group_vars = dict(INVENTORY_VARS, ansible_connection="local", ansible_python_interpreter=sys.executable,
                      post_auth_python=sys.executable)
    with open(inventory, "w") as handle:
        json.dump({"openvpn_as": {
            "hosts": {name: {"ovpnas_sacli_path": os.path.join(root.path, "scripts", "sacli")}
                      for name, root in fleet.items()},
            "vars": group_vars,
        }}, handle, indent=1)
    return fleet, inventory


def config_value(root, key):
    """A key of the Default profile, read from config.db directly (no sacli call to count)."""
    with Store(root.config_db) as store:
        return store.get("Default", key)


def same_on_every_host(fleet, key):
    values = {config_value(root, key) for root in fleet.values()}
    if len(values) != 1:
        raise SystemExit("%s differs between the servers of the fleet" % key)
    return values.pop()


def query_file(apps):
    """The host-checker query file, for when the collection did not load one (`PLATFORM:NAME=REGEX`)."""
    return "".join("%s:%s=%s\n" % (app.get("platform", "all"), app["name"], app["regex"]) for app in apps)


def count_calls(fleet):
    """sacli calls, writes and starts per host from the call logs, which are then removed."""
    per_host = {}
    for name, root in fleet.items():
        commands = [call["command"] for call in root.calls() if call["tool"] == "sacli"]
        per_host[name] = {
            "calls": len(commands),
            "writes": sum(1 for command in commands if command in WRITES),
            "starts": sum(1 for command in commands if command.lower() == "start"),
            "reads": sum(1 for command in commands if command in ("ConfigQuery", "UserPropGet")),
        }
        if os.path.exists(root.call_log):
            os.remove(root.call_log)
    return per_host


# --- runs ---------------------------------------------------------------------------------


def run_playbook(variant, inventory, extra_vars=None):
    """Wall time of one ansible-playbook run; a non-zero exit aborts the benchmark with its output."""
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, "--forks", str(FORKS), PLAYBOOKS[variant]]
    if extra_vars:
        argv[1:1] = ["-e", json.dumps(extra_vars)]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-5000:])
        raise SystemExit("%s failed (rc %d): %s" % (variant, proc.returncode, " ".join(argv)))
    return elapsed


def record(rows, n, variant, run, wall, per_host):
    hosts = len(per_host)
    row = {
        "n": n, "variant": variant, "run": run, "wall_s": round(wall, 2),
        "sacli_calls_per_host": round(sum(h["calls"] for h in per_host.values()) / hosts, 2),
        "writes_per_host": round(sum(h["writes"] for h in per_host.values()) / hosts, 2),
        "starts_per_host": round(sum(h["starts"] for h in per_host.values()) / hosts, 2),
    }
    rows.append(row)
    print("  %-8s %-6s %8.2f s  calls %5.2f  writes %5.2f  starts %4.2f" % (
        variant, run, wall, row["sacli_calls_per_host"], row["writes_per_host"], row["starts_per_host"]), flush=True)
    return {name: h["starts"] for name, h in per_host.items()}


def measure(n, rows, base):
    """Every variant and run at one fleet size; returns what the targets need beyond the rows."""
    extra = {"n": n}
    print("N=%d" % n, flush=True)
    ours_fleet, ours_inventory = install_fleet(os.path.join(base, "ours-%d" % n), n)

    extra["empty_wall_s"] = round(run_playbook("empty", ours_inventory), 2)
    count_calls(ours_fleet)
    print("  %-8s %-6s %8.2f s" % ("empty", "noop", extra["empty_wall_s"]), flush=True)

    files = os.path.join(base, "files-%d" % n)
    os.makedirs(files)
    starts = {}
    for run in RUNS["ours"]:
        if run == "noop":
            # the no-op and the floor, interleaved on the same fleet: the median of REPEAT runs each
            walls, calls = {"ours": [], "floor": []}, {}
            for _round in range(REPEAT):
                for variant in walls:
                    walls[variant].append(run_playbook(variant, ours_inventory))
                    calls[variant] = count_calls(ours_fleet)
            starts[run] = record(rows, n, "ours", run, statistics.median(walls["ours"]), calls["ours"])
            record(rows, n, "floor", "noop", statistics.median(walls["floor"]), calls["floor"])
            continue
        wall = run_playbook("ours", ours_inventory, CHANGE if run == "change" else None)
        starts[run] = record(rows, n, "ours", run, wall, count_calls(ours_fleet))
        if run in ("first", "change"):
            script = same_on_every_host(ours_fleet, SCRIPT_KEY)
            query = same_on_every_host(ours_fleet, QUERY_KEY)
            if script is None:
                raise SystemExit("ours loaded no post-auth script")
            extra["query_file_source"] = "read back from ours" if query is not None else "rendered by bench/fleet.py"
            for name, text in (("post_auth.py", script), ("appver.txt", query or query_file(APPS))):
                with open(os.path.join(files, "%s.%s" % (run, name)), "w") as handle:
                    handle.write(text)
    extra["ours_starts"] = {run: sorted(set(starts[run].values())) for run in ("first", "change")}

    shutil.rmtree(os.path.dirname(ours_fleet[next(iter(ours_fleet))].path))

    peer_fleet, peer_inventory = install_fleet(os.path.join(base, "baseline-%d" % n), n)
    for run in RUNS["baseline"]:
        source = "change" if run == "change" else "first"
        files_vars = {"peer_script_src": os.path.join(files, source + ".post_auth.py"),
                      "peer_query_src": os.path.join(files, source + ".appver.txt")}
        wall = run_playbook("baseline", peer_inventory, files_vars)
        record(rows, n, "baseline", run, wall, count_calls(peer_fleet))
    with open(os.path.join(files, "change.post_auth.py")) as handle:
        loaded = handle.read()
    if same_on_every_host(peer_fleet, SCRIPT_KEY) != loaded:
        raise SystemExit("the baseline did not load the script ours loaded")
    shutil.rmtree(os.path.dirname(peer_fleet[next(iter(peer_fleet))].path))
    return extra


# --- report -------------------------------------------------------------------------------


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2.0**30
    return "%s, %d cores, %.1f GiB, Python %s" % (model, os.cpu_count() or 0, memory, platform.python_version())


def wall(rows, n, variant, run):
    for row in rows:
        if (row["n"], row["variant"], row["run"]) == (n, variant, run):
            return row["wall_s"]
    raise KeyError((n, variant, run))


def ratios(rows, sizes):
    return {
        "ours_noop_over_floor_noop": {str(n): round(wall(rows, n, "ours", "noop") / wall(rows, n, "floor", "noop"), 2)
                                      for n in sizes},
        "baseline_noop_over_ours_noop": {
            str(n): round(wall(rows, n, "baseline", "noop") / wall(rows, n, "ours", "noop"), 2) for n in sizes},
        "ours_first_over_baseline_first": {
            str(n): round(wall(rows, n, "ours", "first") / wall(rows, n, "baseline", "first"), 2) for n in sizes},
    }


def targets(rows, sizes, extras, ratio):
    def row(n, variant, run):
        return next(r for r in rows if (r["n"], r["variant"], r["run"]) == (n, variant, run))

    counts = ("sacli_calls_per_host", "writes_per_host", "starts_per_host")
    noop = {str(n): {k: row(n, "ours", "noop")[k] for k in counts} for n in sizes}
    starts = {str(e["n"]): e["ours_starts"] for e in extras}
    per_host = {str(e["n"]): round((wall(rows, e["n"], "ours", "noop") - e["empty_wall_s"]) / e["n"], 4)
                for e in extras}
    small, large = str(min(sizes)), str(max(sizes))
    flat = per_host[large] <= 1.5 * per_host[small] if len(sizes) > 1 else None
    values = {
        "noop_no_write_no_start_one_read": (
            all(v == {"sacli_calls_per_host": 1, "writes_per_host": 0, "starts_per_host": 0} for v in noop.values()),
            noop),
        "noop_within_1.3x_floor": (
            all(v <= 1.3 for v in ratio["ours_noop_over_floor_noop"].values()), ratio["ours_noop_over_floor_noop"]),
        "noop_3x_faster_than_baseline": (
            all(v >= 3 for v in ratio["baseline_noop_over_ours_noop"].values()),
            ratio["baseline_noop_over_ours_noop"]),
        "first_no_slower_than_baseline": (
            all(v <= 1 for v in ratio["ours_first_over_baseline_first"].values()),
            ratio["ours_first_over_baseline_first"]),
        "one_start_per_changed_host": (
            all(v == [1] for s in starts.values() for v in s.values()),
            {n: {run: "starts per host: %s" % ", ".join(map(str, v)) for run, v in s.items()}
             for n, s in starts.items()}),
        "flat_cost_per_host": (flat, {
            "ours_noop_s_per_host_after_empty_run": per_host,
            "empty_run_wall_s": {str(e["n"]): e["empty_wall_s"] for e in extras},
            "largest_over_smallest": round(per_host[large] / per_host[small], 2) if per_host[small] > 0 else None,
            "ours_noop_over_floor_noop": ratio["ours_noop_over_floor_noop"],
        }),
    }
    return {name: {"holds": values[name][0], "definition": TARGETS[name], "values": values[name][1]}
            for name in TARGETS}


def plot(rows, sizes, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"ours": "tab:blue", "floor": "tab:gray", "baseline": "tab:red"}
    labels = {"ours": "ours (deploy_postauth.yml)", "floor": "floor (one ConfigQuery)",
              "baseline": "baseline (peer role)"}
    fig, axis = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for variant in VARIANTS:
        axis.plot(sizes, [wall(rows, n, variant, "noop") for n in sizes], marker="o", color=colors[variant],
                  label="%s, no-op" % labels[variant])
        if "first" in RUNS[variant]:
            axis.plot(sizes, [wall(rows, n, variant, "first") for n in sizes], marker="s", linestyle="--",
                      color=colors[variant], label="%s, first rollout" % labels[variant])
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(list(sizes))
    axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.set_xlabel("servers in the fleet (N, log scale)")
    axis.set_ylabel("wall time of the run (s, log scale)")
    axis.set_title("Post-auth rollout, %d forks, emulated servers" % FORKS)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(rows, ratio, target):
    columns = ("N", "variant", "run", "wall s", "calls/host", "writes/host", "starts/host")
    print("\n%5s  %-8s %-6s %9s %11s %11s %11s" % columns)
    for row in rows:
        print("%5d  %-8s %-6s %9.2f %11.2f %11.2f %11.2f" % (
            row["n"], row["variant"], row["run"], row["wall_s"], row["sacli_calls_per_host"],
            row["writes_per_host"], row["starts_per_host"]))
    print()
    for name, values in ratio.items():
        print("%-32s %s" % (name, "  ".join("N=%s: %.2f" % item for item in values.items())))
    print()
    for name, result in target.items():
        print("%-34s %s" % (name, {True: "holds", False: "does not hold", None: "not measured"}[result["holds"]]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="fleet sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--output", default=os.path.join(RESULTS, "fleet.json"))
    parser.add_argument("--plot", default=os.path.join(RESULTS, "fleet.png"))
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})

    subprocess.run([os.path.join(REPO, "tests", "bin", "system-packages"), "jq"], check=True)
    # other work on the machine slows every variant: the report says how busy it was
    load_start = os.getloadavg()[0]
    rows, extras = [], []
    base = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        for n in sizes:
            extras.append(measure(n, rows, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ratio = ratios(rows, sizes)
    target = targets(rows, sizes, extras, ratio)
    report = {"machine": machine(), "load_average": {"start": load_start, "end": os.getloadavg()[0]},
              "runs": rows, "ratios": ratio, "targets": target}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    plot(rows, sizes, args.plot)
    print_table(rows, ratio, target)
    print("\nquery file of the baseline: %s" % extras[-1]["query_file_source"])
    print("wrote %s and %s" % (args.output, args.plot))


if __name__ == "__main__":
    main()
