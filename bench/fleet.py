"""Benchmark: a post-auth rollout to fleets of 10, 50 and 200 emulated servers, and its no-op on 1000.

For each fleet size N of --sizes (10, 50, 200 by default), in one run:

- empty: bench/playbooks/empty.yml, a play with no task, on the fleet ours deploys (before its first run):
  the fixed cost of a run;
- ours: playbooks/deploy_postauth.yml with a realistic inventory (three configuration keys, group
  mapping, device pinning (automatic registration), a host-checker policy and its query file,
  policy cases), run first (fresh fleet), noop (nothing changed), change (max devices 2 -> 3);
- floor: bench/playbooks/floor.yml, one ConfigQuery per host, on the fleet ours deployed; its no-op runs
  and those of ours alternate, three of each, and the medians are reported;
- baseline: bench/baselines/peer_deploy.yml on a second fresh fleet, the way existing roles work
  (copy the files, one `ConfigQuery | jq` per managed key, ConfigPut on difference, `sacli start`
  handler), deploying the script and query file that ours loaded (read back from ours' first
  server after its first and its change run); first, noop, change (the new script).

For each N of --noop-sizes (1000 by default), the no-op only, after the full sizes: empty, then the
no-op runs of ours and of the floor alternating as above, on a fleet of N servers seeded in the state a
deploy of ours leaves, without a first rollout on N servers:

- the seed is a copy of the first server of ours' fleet at the smallest full size, taken after its
  no-op runs (the databases under etc/db, the collection's etc/ovpnas_fleet, the emulator's state),
  with the sacli calls its no-op made; without full sizes, a one-server fleet is deployed for it;
- each of the N roots is a copy of the seed's tree: installing a root with tests/emulator/install
  starts a Python process (about 0.1 s a root), a copy with its rewrites takes about 5 ms (5 s for
  1000 roots). What is a server's own is then rewritten: host.name in config.db (the inventory sets
  it per host, so a copied value would make the no-op write), and in the JSON files of etc/emulator
  and etc/ovpnas_fleet (the hashes of what the last start applied, the undo record of the last
  change) every string equal to the seed's folder, name, host.name or the sha256 of its host.name;
  the seed's server log and call log are not kept;
- the no-op of ours must make on every seeded server the sacli calls it made on the seed's server
  (one ConfigQuery), or the benchmark stops: a server that the seeding left different would be
  written to, and the run would not measure a no-op.

Every sacli call is counted from the emulator's call logs (cleared between runs). Every run also
reports the controller's peak memory (peak_rss_mib): the largest resident set of any single process
of the ansible-playbook run (the main process, its forked workers, the modules they run and the sacli
calls of the local connection), in MiB. fleet.py starts ansible-playbook and reaps it with
os.wait4(), whose resource usage is that of the child and of every descendant reaped by its parent:
its ru_maxrss is the largest of their peak resident sets (KiB on Linux), for this run alone, unlike
getrusage(RUSAGE_CHILDREN), which keeps the largest over all runs so far. A process left to be reaped
by init would not count; Ansible waits for its workers and the commands they run. The no-op rows give
the largest of their three runs.

The table is printed; bench/results/fleet.json and bench/results/fleet.png are written. A full run
takes about an hour and a half on two cores.

    .venv/bin/python bench/fleet.py [--sizes 10,50,200] [--noop-sizes 1000]
"""

import argparse
import concurrent.futures
import hashlib
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
# fleet sizes of the no-op alone, seeded from a deployed server
NOOP_SIZES = (1000,)
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
# ru_maxrss is in KiB on Linux, in bytes on macOS
RSS_PER_MIB = 2.0**20 if sys.platform == "darwin" else 2.0**10

# The change run of ours: one variable that changes the script.
CHANGE = {"post_auth_device_pinning_max_devices": 3}

APPS = [
    {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "min_version": "4.18", "required": True},
]
# host.name is the server's own: a seeded fleet writes it into each root
HOST_NAME = "{{ inventory_hostname }}.vpn.example.com"
ADMINS = "cn=vpn-admins,ou=groups,dc=example,dc=com"
CONTRACTORS = "cn=contractors,ou=groups,dc=example,dc=com"
INVENTORY_VARS = {
    "ovpnas_become": False,
    "ovpnas_config_settings": {
        "host.name": HOST_NAME,
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
    "noop_no_write_no_start_one_read": (
        "ours noop: 0 writes, 0 starts and 1 sacli call (the read) per host, at every N (no-op sizes included)"),
    "noop_within_1.3x_floor": "ours noop wall <= 1.3 x floor noop wall, at every N (no-op sizes included)",
    "noop_3x_faster_than_baseline": "baseline noop wall >= 3 x ours noop wall, at every full size",
    "first_no_slower_than_baseline": "ours first wall <= baseline first wall, at every full size",
    "one_start_per_changed_host": (
        "ours first and change (every host changes): each host ran sacli start exactly once, at every full size"),
    "flat_cost_per_host": (
        "ours noop cost per host, (wall - wall of an empty play on the same inventory) / N, at the largest N "
        "(no-op sizes included) is within 1.5 x its value at the smallest N"
    ),
}


# --- fleets -------------------------------------------------------------------------------


def host_names(n):
    return ["as%03d" % index for index in range(1, n + 1)]


def host_name(name):
    """The host.name the inventory gives the host ``name``."""
    return HOST_NAME.replace("{{ inventory_hostname }}", name)


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def install_fleet(base, n):
    """N emulator roots under base, and a JSON inventory reaching them with the local connection."""
    names = host_names(n)
    install = os.path.join(REPO, "tests", "emulator", "install")

    def one(name):
        subprocess.run([install, os.path.join(base, name)], check=True, capture_output=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, names))
    fleet = {name: Root(os.path.join(base, name)) for name in names}
    return fleet, write_inventory(base, fleet)


def write_inventory(base, fleet):
    """A JSON inventory reaching the roots of fleet with the local connection."""
    inventory = os.path.join(base, "inventory.json")
    group_vars = dict(INVENTORY_VARS, ansible_connection="local", ansible_python_interpreter=sys.executable,
                      post_auth_python=sys.executable)
    with open(inventory, "w") as handle:
        json.dump({"openvpn_as": {
            "hosts": {name: {"ovpnas_sacli_path": os.path.join(root.path, "scripts", "sacli")}
                      for name, root in fleet.items()},
            "vars": group_vars,
        }}, handle, indent=1)
    return inventory


def keep_seed(root, commands, path):
    """A copy of a deployed server's root to seed fleets from, and the sacli commands of its no-op."""
    shutil.copytree(root.path, path, symlinks=True)
    return {"path": path, "origin": root.path, "name": os.path.basename(root.path), "noop_commands": commands}


def deploy_seed(base):
    """The seed, when no full size deployed one: a one-server fleet that ours deploys, then its no-op."""
    fleet, inventory = install_fleet(os.path.join(base, "seed-fleet"), 1)
    name, root = next(iter(fleet.items()))
    run_playbook("ours", inventory)
    count_calls(fleet)
    run_playbook("ours", inventory)
    seed = keep_seed(root, count_calls(fleet)[name]["commands"], os.path.join(base, "seed"))
    shutil.rmtree(os.path.dirname(root.path))
    return seed


def rewrite_strings(value, mapping, prefix):
    """value (parsed JSON) with each string found in mapping replaced, and a leading prefix[0] by prefix[1]."""
    if isinstance(value, dict):
        return {key: rewrite_strings(item, mapping, prefix) for key, item in value.items()}
    if isinstance(value, list):
        return [rewrite_strings(item, mapping, prefix) for item in value]
    if isinstance(value, str):
        if value in mapping:
            return mapping[value]
        if value.startswith(prefix[0] + os.sep):
            return prefix[1] + value[len(prefix[0]):]
    return value


def rewrite_json_files(folder, mapping, prefix):
    """Apply rewrite_strings to every JSON file under folder; other files are left as they are."""
    for directory, _dirs, files in os.walk(folder):
        for file_name in files:
            path = os.path.join(directory, file_name)
            try:
                with open(path) as handle:
                    data = json.load(handle)
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            rewritten = rewrite_strings(data, mapping, prefix)
            if rewritten != data:
                # the file keeps its mode; its readers parse it, so the indentation need not be kept
                with open(path, "w") as handle:
                    json.dump(rewritten, handle, sort_keys=True)


def seed_fleet(base, n, seed):
    """N roots under base, each a copy of the seed's with what is the server's own rewritten; and an inventory."""
    seed_host = config_value(Root(seed["path"]), "host.name")
    fleet = {}
    for name in host_names(n):
        path = os.path.join(base, name)
        shutil.copytree(seed["path"], path, symlinks=True)
        root = fleet[name] = Root(path)
        host = host_name(name)
        with Store(root.config_db) as store:
            store.put("Default", "host.name", host)
        mapping = {seed["origin"]: path, seed["name"]: name, seed_host: host, sha256(seed_host): sha256(host)}
        for folder in (root.private, os.path.join(root.etc, "ovpnas_fleet")):
            rewrite_json_files(folder, mapping, (seed["origin"], path))
        for log in (root.log_file, root.call_log):
            if os.path.exists(log):
                os.remove(log)
        root.log("install", "emulated Access Server copied from %s into %s" % (seed["origin"], path))
    return fleet, write_inventory(base, fleet)


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
            "commands": commands,
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
    """Wall time and peak memory (MiB) of one ansible-playbook run; a non-zero exit aborts the benchmark.

    The peak is ru_maxrss of os.wait4(): the largest peak resident set of the process and of the
    descendants it and they reaped, for this run alone (see the module's docstring).
    """
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, "--forks", str(FORKS), PLAYBOOKS[variant]]
    if extra_vars:
        argv[1:1] = ["-e", json.dumps(extra_vars)]
    # files, not pipes: the process is reaped with wait4 without reading its output meanwhile
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            for handle, tail in ((stdout, 20000), (stderr, 5000)):
                handle.seek(0)
                sys.stderr.write(handle.read().decode("utf-8", "replace")[-tail:])
            raise SystemExit("%s failed (rc %d): %s" % (variant, proc.returncode, " ".join(argv)))
    return elapsed, usage.ru_maxrss / RSS_PER_MIB


def record(rows, n, variant, run, wall, per_host, peak_rss):
    hosts = len(per_host)
    row = {
        "n": n, "variant": variant, "run": run, "wall_s": round(wall, 2),
        "sacli_calls_per_host": round(sum(h["calls"] for h in per_host.values()) / hosts, 2),
        "writes_per_host": round(sum(h["writes"] for h in per_host.values()) / hosts, 2),
        "starts_per_host": round(sum(h["starts"] for h in per_host.values()) / hosts, 2),
        "peak_rss_mib": round(peak_rss, 1),
    }
    rows.append(row)
    print("  %-8s %-6s %8.2f s  calls %5.2f  writes %5.2f  starts %4.2f  peak RSS %7.1f MiB" % (
        variant, run, wall, row["sacli_calls_per_host"], row["writes_per_host"], row["starts_per_host"],
        row["peak_rss_mib"]), flush=True)
    return {name: h["starts"] for name, h in per_host.items()}


def measure_empty(n, rows, fleet, inventory):
    """The empty play: the fixed cost of a run on this inventory."""
    wall, peak_rss = run_playbook("empty", inventory)
    record(rows, n, "empty", "noop", wall, count_calls(fleet), peak_rss)


def measure_noops(n, rows, fleet, inventory, seed=None):
    """The no-op of ours and the floor's, interleaved REPEAT times each; medians of the walls, largest peaks.

    Returns the sacli calls of the last no-op of ours per host. With seed (a seeded fleet), every host's
    calls in every no-op of ours must be those the seed's server made in its no-op.
    """
    walls, peaks, calls = {"ours": [], "floor": []}, {"ours": [], "floor": []}, {}
    for _round in range(REPEAT):
        for variant in walls:
            wall, peak_rss = run_playbook(variant, inventory)
            walls[variant].append(wall)
            peaks[variant].append(peak_rss)
            calls[variant] = count_calls(fleet)
            if seed is not None and variant == "ours":
                differ = sorted(name for name, h in calls[variant].items()
                                if h["commands"] != seed["noop_commands"])
                if differ:
                    raise SystemExit("the no-op on the seeded fleet of %d made other sacli calls than on the seed's "
                                     "server (%s) on %d hosts, e.g. %s: %s" % (
                                         n, ", ".join(seed["noop_commands"]), len(differ), differ[0],
                                         ", ".join(calls[variant][differ[0]]["commands"]) or "none"))
    starts = record(rows, n, "ours", "noop", statistics.median(walls["ours"]), calls["ours"], max(peaks["ours"]))
    record(rows, n, "floor", "noop", statistics.median(walls["floor"]), calls["floor"], max(peaks["floor"]))
    return starts, calls["ours"]


def measure(n, rows, base, seeds):
    """Every variant and run at one fleet size; returns what the targets need beyond the rows.

    The first server of ours' fleet, after the no-op runs, is kept in seeds unless it holds a seed already.
    """
    extra = {"n": n}
    print("N=%d" % n, flush=True)
    ours_fleet, ours_inventory = install_fleet(os.path.join(base, "ours-%d" % n), n)
    measure_empty(n, rows, ours_fleet, ours_inventory)

    files = os.path.join(base, "files-%d" % n)
    os.makedirs(files)
    starts = {}
    for run in RUNS["ours"]:
        if run == "noop":
            # the no-op and the floor, interleaved on the same fleet: the median of REPEAT runs each
            starts[run], calls = measure_noops(n, rows, ours_fleet, ours_inventory)
            if not seeds:
                name = next(iter(ours_fleet))
                seeds.append(keep_seed(ours_fleet[name], calls[name]["commands"], os.path.join(base, "seed")))
            continue
        wall, peak_rss = run_playbook("ours", ours_inventory, CHANGE if run == "change" else None)
        starts[run] = record(rows, n, "ours", run, wall, count_calls(ours_fleet), peak_rss)
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
        wall, peak_rss = run_playbook("baseline", peer_inventory, files_vars)
        record(rows, n, "baseline", run, wall, count_calls(peer_fleet), peak_rss)
    with open(os.path.join(files, "change.post_auth.py")) as handle:
        loaded = handle.read()
    if same_on_every_host(peer_fleet, SCRIPT_KEY) != loaded:
        raise SystemExit("the baseline did not load the script ours loaded")
    shutil.rmtree(os.path.dirname(peer_fleet[next(iter(peer_fleet))].path))
    return extra


def measure_noop_only(n, rows, base, seeds):
    """The empty play and the no-op runs of ours and the floor on a fleet of n servers seeded from seeds[0].

    Returns the seconds that seeding the fleet took.
    """
    print("N=%d (no-op only, seeded)" % n, flush=True)
    if not seeds:
        seeds.append(deploy_seed(base))
    started = time.monotonic()
    fleet, inventory = seed_fleet(os.path.join(base, "noop-%d" % n), n, seeds[0])
    seeding = time.monotonic() - started
    print("  seeded %d roots in %.2f s" % (n, seeding), flush=True)
    measure_empty(n, rows, fleet, inventory)
    measure_noops(n, rows, fleet, inventory, seeds[0])
    shutil.rmtree(os.path.join(base, "noop-%d" % n))
    return seeding


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


def ratios(rows, full, everything):
    """Wall-time ratios per N: ours against the floor at every size, against the baseline at the full sizes."""
    return {
        "ours_noop_over_floor_noop": {str(n): round(wall(rows, n, "ours", "noop") / wall(rows, n, "floor", "noop"), 2)
                                      for n in everything},
        "baseline_noop_over_ours_noop": {
            str(n): round(wall(rows, n, "baseline", "noop") / wall(rows, n, "ours", "noop"), 2) for n in full},
        "ours_first_over_baseline_first": {
            str(n): round(wall(rows, n, "ours", "first") / wall(rows, n, "baseline", "first"), 2) for n in full},
    }


def every(values, test):
    """Whether test holds for every value; None (not measured) when there is none."""
    values = list(values)
    return all(test(value) for value in values) if values else None


def targets(rows, full, everything, extras, ratio):
    def row(n, variant, run):
        return next(r for r in rows if (r["n"], r["variant"], r["run"]) == (n, variant, run))

    counts = ("sacli_calls_per_host", "writes_per_host", "starts_per_host")
    noop = {str(n): {k: row(n, "ours", "noop")[k] for k in counts} for n in everything}
    starts = {str(e["n"]): e["ours_starts"] for e in extras}
    empty = {str(n): wall(rows, n, "empty", "noop") for n in everything}
    per_host = {str(n): round((wall(rows, n, "ours", "noop") - empty[str(n)]) / n, 4) for n in everything}
    small, large = str(min(everything)), str(max(everything))
    flat = per_host[large] <= 1.5 * per_host[small] if len(everything) > 1 else None
    values = {
        "noop_no_write_no_start_one_read": (
            every(noop.values(),
                  lambda v: v == {"sacli_calls_per_host": 1, "writes_per_host": 0, "starts_per_host": 0}),
            noop),
        "noop_within_1.3x_floor": (
            every(ratio["ours_noop_over_floor_noop"].values(), lambda v: v <= 1.3),
            ratio["ours_noop_over_floor_noop"]),
        "noop_3x_faster_than_baseline": (
            every(ratio["baseline_noop_over_ours_noop"].values(), lambda v: v >= 3),
            ratio["baseline_noop_over_ours_noop"]),
        "first_no_slower_than_baseline": (
            every(ratio["ours_first_over_baseline_first"].values(), lambda v: v <= 1),
            ratio["ours_first_over_baseline_first"]),
        "one_start_per_changed_host": (
            every((v for s in starts.values() for v in s.values()), lambda v: v == [1]),
            {n: {run: "starts per host: %s" % ", ".join(map(str, v)) for run, v in s.items()}
             for n, s in starts.items()}),
        "flat_cost_per_host": (flat, {
            "ours_noop_s_per_host_after_empty_run": per_host,
            "empty_run_wall_s": empty,
            "largest_over_smallest": round(per_host[large] / per_host[small], 2) if per_host[small] > 0 else None,
            "ours_noop_over_floor_noop": ratio["ours_noop_over_floor_noop"],
        }),
    }
    return {name: {"holds": values[name][0], "definition": TARGETS[name], "values": values[name][1]}
            for name in TARGETS}


def plot(rows, full, everything, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"ours": "tab:blue", "floor": "tab:gray", "baseline": "tab:red"}
    labels = {"ours": "ours (deploy_postauth.yml)", "floor": "floor (one ConfigQuery)",
              "baseline": "baseline (peer role)"}
    fig, axis = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for variant in VARIANTS:
        # the no-op of ours and of the floor is measured at the no-op sizes too
        sizes = full if variant == "baseline" else everything
        if sizes:
            axis.plot(sizes, [wall(rows, n, variant, "noop") for n in sizes], marker="o", color=colors[variant],
                      label="%s, no-op" % labels[variant])
        if "first" in RUNS[variant] and full:
            axis.plot(full, [wall(rows, n, variant, "first") for n in full], marker="s", linestyle="--",
                      color=colors[variant], label="%s, first rollout" % labels[variant])
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks(list(everything))
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
    columns = ("N", "variant", "run", "wall s", "calls/host", "writes/host", "starts/host", "peak RSS MiB")
    print("\n%5s  %-8s %-6s %9s %11s %11s %11s %13s" % columns)
    for row in rows:
        print("%5d  %-8s %-6s %9.2f %11.2f %11.2f %11.2f %13.1f" % (
            row["n"], row["variant"], row["run"], row["wall_s"], row["sacli_calls_per_host"],
            row["writes_per_host"], row["starts_per_host"], row["peak_rss_mib"]))
    print()
    for name, values in ratio.items():
        print("%-32s %s" % (name, "  ".join("N=%s: %.2f" % item for item in values.items())))
    print()
    for name, result in target.items():
        print("%-34s %s" % (name, {True: "holds", False: "does not hold", None: "not measured"}[result["holds"]]))


def parse_sizes(text):
    return sorted({int(size) for size in text.split(",") if size.strip()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="fleet sizes of every variant and run, comma-separated (default: %(default)s)")
    parser.add_argument("--noop-sizes", default=",".join(map(str, NOOP_SIZES)),
                        help="fleet sizes of the no-op alone (empty, ours, floor) on a seeded fleet, comma-separated;"
                             " empty for none (default: %(default)s)")
    parser.add_argument("--output", default=os.path.join(RESULTS, "fleet.json"))
    parser.add_argument("--plot", default=os.path.join(RESULTS, "fleet.png"))
    args = parser.parse_args()
    full = parse_sizes(args.sizes)
    # a size measured in full has its no-op measured already
    noop_only = [n for n in parse_sizes(args.noop_sizes) if n not in full]
    everything = sorted(full + noop_only)
    if not everything:
        parser.error("no fleet size to measure")

    subprocess.run([os.path.join(REPO, "tests", "bin", "system-packages"), "jq"], check=True)
    # other work on the machine slows every variant: the report says how busy it was
    load_start = os.getloadavg()[0]
    rows, extras, seeds, seeding = [], [], [], {}
    started = time.monotonic()
    base = tempfile.mkdtemp(prefix="bench-fleet-")
    try:
        for n in full:
            extras.append(measure(n, rows, base, seeds))
        for n in noop_only:
            seeding[str(n)] = round(measure_noop_only(n, rows, base, seeds), 2)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ratio = ratios(rows, full, everything)
    target = targets(rows, full, everything, extras, ratio)
    report = {"machine": machine(), "load_average": {"start": load_start, "end": os.getloadavg()[0]},
              "duration_s": round(time.monotonic() - started), "sizes": {"full": full, "noop_only": noop_only},
              "seeding_s": seeding, "runs": rows, "ratios": ratio, "targets": target}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    plot(rows, full, everything, args.plot)
    print_table(rows, ratio, target)
    if extras:
        print("\nquery file of the baseline: %s" % extras[-1]["query_file_source"])
    for n, seconds in seeding.items():
        print("fleet of %s seeded in %.2f s" % (n, seconds))
    print("took %d s; wrote %s and %s" % (report["duration_s"], args.output, args.plot))


if __name__ == "__main__":
    main()
