"""deploy_postauth.yml when things go wrong: a fault on every sacli command, a killed run, two runs at once,
and secrets hunted in every output and leftover file.

Every scenario deploys inventory A, then tries inventory B, which changes every kind of thing the
deploy manages (a key, the query file, the registrations, the script). Afterwards each server holds
either all of A or all of B, never a mix; a change that needs `start` is completed by the next run.
"""

import base64
import json
import os
import signal
import stat
import subprocess
import threading
import time
import uuid

import pytest
from conftest import ANSIBLE_BIN, REPO, recap, run_playbook, write_inventory
from test_deploy import DEPLOY, QUERY_KEY, SCRIPT_KEY, VARIABLES

AUDIT = os.path.join(REPO, "playbooks", "audit_postauth.yml")

# secrets made up per run, so that no file of a checkout holds them
RUN = uuid.uuid4().hex[:16]
DUO_KEY = "duo-skey-'\"$(id)-%s" % RUN
TOKEN = "endpoint-token-%s" % RUN
RADIUS = "radius-shared-%s" % RUN
BIND_PW = "bind-pw-'\"%s" % RUN
SEED = base64.b32encode(RUN.encode("ascii")).decode("ascii").rstrip("=")
ALICE_B = "00:11:22:33:44:77"
B = {
    "ovpnas_config_settings": dict(VARIABLES["ovpnas_config_settings"], **{"host.name": "vpn-b.example.com"}),
    "host_checker_apps": VARIABLES["host_checker_apps"] + [
        {"name": "CHROME", "regex": "^google chrome", "platform": "all"}],
    "post_auth_device_pinning_max_devices": 2,
    # what the script does changes too (the cases alone do not change it)
    "post_auth_device_pinning_exempt_users": ["breakglass"],
    "post_auth_device_pinning_registry": {"alice": [ALICE_B], "bob": ["00:11:22:33:44:88"]},
    "post_auth_policy_tests": [dict(VARIABLES["post_auth_policy_tests"][0],
                                    properties={"pvt_hw_addr": ALICE_B},
                                    client=dict(VARIABLES["post_auth_policy_tests"][0]["client"], hw_addr=ALICE_B))],
}


def write_vars(path, **changes):
    # every host in one batch, each failing on its own, and a failed start left pending (not restored: the
    # rollout's restore is tested in test_rollout.py)
    values = dict(VARIABLES, ovpnas_sacli_timeout=5, ovpnas_start_wait_timeout=8, ovpnas_serial=["100%"],
                  ovpnas_max_fail_percentage=100, rollout_restore=False)
    values.update(changes)
    path.write_text(json.dumps(values))
    return "@%s" % path


def deploy(inventory, extra, *options):
    result = run_playbook(DEPLOY, inventory, "-e", extra, *options)
    return result, recap(result.stdout)


def state(server):
    """What the deploy manages on one server."""
    config = server.config()
    props = server.userprops()
    return {
        "host.name": config.get("host.name"),
        "script": config.get(SCRIPT_KEY),
        "query": config.get(QUERY_KEY),
        "alice": (props.get("alice") or {}).get("pvt_hw_addr"),
        "bob": (props.get("bob") or {}).get("pvt_hw_addr"),
    }


def deploy_in_background(inventory, extra, *options, **popen):
    """Start deploy_postauth.yml in a process group of its own (stdout and stderr together); the Popen."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=ANSIBLE_BIN + os.pathsep + os.environ.get("PATH", ""))
    popen = dict(dict(start_new_session=True), **popen)
    return subprocess.Popen([os.path.join(ANSIBLE_BIN, "ansible-playbook"), "-i", inventory, DEPLOY, "-e", extra,
                             *options], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def fleet_with_a(make_fleet, tmp_path, hosts):
    fleet = make_fleet(hosts)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    a, b = write_vars(tmp_path / "a.json"), write_vars(tmp_path / "b.json", **B)
    result, _hosts = deploy(inventory, a)
    assert result.returncode == 0, result.stdout + result.stderr
    return fleet, inventory, a, b


def private_leftovers(server, *secrets):
    """Files of the server that hold a secret outside its databases and root-only (0700) folders."""
    found = []
    for folder, _dirs, names in os.walk(server.path):
        for name in names:
            path = os.path.join(folder, name)
            if path.startswith(os.path.join(server.path, "etc", "db")) or os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            if any(secret.encode("utf-8") in data for secret in secrets) and not root_only(path, server.path):
                found.append(path)
    return found


def root_only(path, top):
    """The file is 0600 or stricter and one of its folders up to ``top`` is 0700 or stricter."""
    if os.stat(path).st_mode & 0o077:
        return False
    folder = os.path.dirname(path)
    while folder.startswith(top) and folder != top:
        if not os.stat(folder).st_mode & 0o077:
            return True
        folder = os.path.dirname(folder)
    return False


# every sacli command the deploy runs, and the ways each can fail
BEFORE_APPLY = {
    "configquery-exit": ("configquery", dict(action="exit", rc=1, stderr="database is locked\n")),
    "configquery-garbage": ("configquery", dict(action="garbage")),
    "configquery-hang": ("configquery", dict(action="hang", seconds=30)),
    "second-configquery-exit": ("configquery", dict(action="exit", rc=1, after=1)),
    "userpropget-exit": ("userpropget", dict(action="exit", rc=2)),
    "userpropget-garbage": ("userpropget", dict(action="garbage")),
    # a write fails once (the undo that follows goes through); the order: users, keys, query file, script
    "userpropput-first": ("userpropput", dict(action="exit", rc=1, times=1)),
    "userpropput-second": ("userpropput", dict(action="exit", rc=1, after=1, times=1)),
    "configput-first": ("configput", dict(action="exit", rc=1, times=1)),
    "configput-query-file": ("configput", dict(action="exit", rc=1, after=1, times=1)),
    "configput-script": ("configput", dict(action="exit", rc=1, after=2, times=1)),
    "configput-garbage": ("configput", dict(action="garbage", after=2, times=1)),
    "configput-hang": ("configput", dict(action="hang", seconds=30, after=1, times=1)),
}
AT_APPLY = {
    "start-exit": ("start", dict(action="exit", rc=1)),
    "start-errors": ("start", dict(action="errors", errors={"web": [["error", "bind failed"]]})),
    # start answers, but a service never comes up
    "status-off": ("status", dict(action="off", services=["auth"])),
    "start-hang": ("start", dict(action="hang", seconds=30)),
}


def test_fault_matrix(make_fleet, tmp_path):
    """One server per fault, in one run: a fault before the apply leaves all of A; one at the apply leaves
    all of B, pending, and the next run starts it; nothing holding a secret is left in the open."""
    faults = dict(BEFORE_APPLY, **AT_APPLY)
    fleet, inventory, _a, b = fleet_with_a(make_fleet, tmp_path, len(faults))
    names = dict(zip(faults, sorted(fleet)))
    before = {name: state(server) for name, server in fleet.items()}
    at_apply = {}
    for fault, (command, spec) in faults.items():
        fleet[names[fault]].set_fault(command, **spec)

    result, hosts = deploy(inventory, b)
    assert result.returncode != 0
    for fault, name in names.items():
        server = fleet[name]
        assert hosts[name]["failed"] == 1, (fault, result.stdout)
        server.root.clear_faults()
        if fault in BEFORE_APPLY:
            assert state(server) == before[name], fault
            assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")), fault
        else:
            at_apply[fault] = state(server)
            assert at_apply[fault]["host.name"] == "vpn-b.example.com" and at_apply[fault]["alice"] == ALICE_B, fault
            assert os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")), fault
        assert private_leftovers(server, VARIABLES["ovpnas_config_settings"]["auth.ldap.0.bind_pw"]) == [], fault
        assert os.listdir(os.path.join(server.path, "etc", "ovpnas_fleet", "staging")) == [], fault
        server.reset_calls()

    again, hosts = deploy(inventory, b)
    assert again.returncode == 0, again.stdout + again.stderr
    wanted = state(fleet[names["configquery-exit"]])
    for fault, name in names.items():
        server = fleet[name]
        assert state(server) == wanted, fault
        assert server.commands().count("start") == 1, (fault, server.commands())
        assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")), fault
        server.reset_calls()
    assert wanted["alice"] == ALICE_B and wanted["query"].count("\n") == 3
    # a fault at the apply left all of B written: the next run only started
    assert all(written == wanted for written in at_apply.values()), at_apply

    third, hosts = deploy(inventory, b)
    assert third.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), third.stdout
    assert all(server.commands() == ["ConfigQuery", "UserPropGet"] for server in fleet.values())


def test_a_killed_run_is_completed_by_the_next(make_fleet, tmp_path):
    """SIGTERM to the whole run while a write hangs: the next run completes the change and starts."""
    fleet, inventory, _a, b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    server.set_fault("configput", action="hang", seconds=60, after=1)
    b_long = write_vars(tmp_path / "b-long.json", ovpnas_sacli_timeout=120, **B)
    proc = deploy_in_background(inventory, b_long)
    pending = os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")
    deadline = time.monotonic() + 120
    while not (os.path.exists(pending) and server.commands().count("ConfigPut") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=60)
    server.root.clear_faults()
    staging = os.path.join(server.path, "etc", "ovpnas_fleet", "staging")
    assert stat.S_IMODE(os.stat(staging).st_mode) == 0o700
    # the killed task's module file, with its arguments, is left behind; two minutes pass before the next run
    leftovers = module_files(server)
    assert leftovers, "the killed run left no module file"
    for path in leftovers:
        os.utime(path, (time.time() - 180,) * 2)
    server.reset_calls()

    result, _hosts = deploy(inventory, b)
    assert result.returncode == 0, result.stdout + result.stderr
    assert state(server)["alice"] == ALICE_B and state(server)["query"].count("\n") == 3
    assert server.commands().count("start") == 1
    assert not os.path.exists(pending) and os.listdir(staging) == []
    assert module_files(server) == [], "the next run removes what the killed one left"
    assert "module files that killed runs left" in result.stdout + result.stderr


def module_files(server):
    """Ansible's copies of the collection's modules, with their arguments, for ``server`` (its sacli path)."""
    found = []
    top = os.path.expanduser("~/.ansible/tmp")
    for folder in os.listdir(top) if os.path.isdir(top) else []:
        for name in os.listdir(os.path.join(top, folder)) if folder.startswith("ansible-tmp-") else []:
            path = os.path.join(top, folder, name)
            with open(path, "rb") as handle:
                if name.startswith("AnsiballZ_") and server.path.encode() in handle.read():
                    found.append(path)
    return found


def test_a_run_killed_during_start_leaves_the_change_to_its_gate(make_fleet, tmp_path):
    """SIGKILL to the whole run while the canary's start hangs: the start still ends (Ansible's worker outlives the
    run), but the change stays pending, ungated; the next run gates it, and restores it where the gate fails."""
    fleet, inventory, _a, _b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    a_script = state(server)["script"]
    server.set_password("alice", "alice-pw")
    # alice's laptop, registered in A; B registers another address, so B refuses her: a bad change
    canary = {"name": "alice's laptop", "user": "alice", "password": "alice-pw", "hw_addr": "00:11:22:33:44:55",
              "client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0", "UV_APPVER_DEFENDER": "4.18"}}
    b_gated = write_vars(tmp_path / "b-gated.json", ovpnas_sacli_timeout=120, ovpnas_start_wait_timeout=20,
                         rollout_restore=True, rollout_canary_logins=[canary], **B)
    server.set_fault("start", action="hang", seconds=8, times=1)
    server.reset_calls()
    proc = deploy_in_background(inventory, b_gated)
    deadline = time.monotonic() + 120
    # the clients are counted just before the start
    while "VPNSummary" not in server.commands():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    pending = os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")
    while "start" not in server.commands():
        assert time.monotonic() < deadline, "the start never ended"
        time.sleep(0.2)
    time.sleep(1)
    # the bad change is live, and not forgotten: its record stands, noted as started, never gated
    assert state(server)["script"] != a_script
    with open(pending) as handle:
        assert json.load(handle).get("started")
    assert server.commands("authcli") == []
    server.root.clear_faults()
    server.reset_calls()

    result, hosts = deploy(inventory, b_gated)
    assert result.returncode != 0 and hosts["as01"]["failed"] == 1, result.stdout
    assert "the previous configuration is live again" in " ".join(result.stdout.split()), result.stdout
    assert state(server)["script"] == a_script
    assert server.commands("authcli") == ["authenticate", "authenticate"], "gated, then gated again after the restore"
    assert not os.path.exists(pending), "the restore passed its gate"


# (signal, to the main process or its group, while what hangs): with the two tests above, every signal reaches
# both the main process and the group, during a write, the canary's start and its gate login
KILLS = [
    ("SIGINT", "main", "write"),
    ("SIGKILL", "group", "write"),
    ("SIGINT", "group", "start"),
    ("SIGTERM", "main", "start"),
    ("SIGTERM", "group", "gate"),
    ("SIGKILL", "main", "gate"),
]
HANGS = {
    "write": ("configput", dict(action="hang", seconds=8, after=1, times=1)),
    "start": ("start", dict(action="hang", seconds=8, times=1)),
    "gate": ("authcli", dict(action="hang", seconds=8, times=1)),
}


@pytest.mark.parametrize("name, target, phase", KILLS, ids=["-".join(kill) for kill in KILLS])
def test_a_killed_run_never_leaves_a_bad_change_live(make_fleet, tmp_path, name, target, phase):
    """A change the gate refuses, killed while something hangs: whatever survives the kill, the next run gates the
    change, finds it bad and restores the previous configuration whole; nothing stays pending."""
    fleet, inventory, _a, _b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    a_state = state(server)
    server.set_password("alice", "alice-pw")
    canary = {"name": "alice's laptop", "user": "alice", "password": "alice-pw", "hw_addr": "00:11:22:33:44:55",
              "client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0", "UV_APPVER_DEFENDER": "4.18"}}
    b_gated = write_vars(tmp_path / "b-gated.json", ovpnas_sacli_timeout=60, ovpnas_start_wait_timeout=20,
                         rollout_restore=True, rollout_canary_logins=[canary], **B)
    command, fault = HANGS[phase]
    server.set_fault(command, **fault)
    server.reset_calls()
    proc = deploy_in_background(inventory, b_gated)
    pending = os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")
    # a write hangs once the pending record is there; the start once the clients are counted; the gate's login once
    # the start has ended
    hanging = {"write": lambda: os.path.exists(pending) and "ConfigPut" in server.commands(),
               "start": lambda: "VPNSummary" in server.commands(),
               "gate": lambda: "start" in server.commands()}[phase]
    deadline = time.monotonic() + 120
    while not hanging():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    time.sleep(1.5)
    number = getattr(signal, name)
    if target == "group":
        os.killpg(proc.pid, number)
    else:
        os.kill(proc.pid, number)
    proc.communicate(timeout=120)
    # what outlives the kill (Ansible's worker, the module, sacli) ends by itself
    while any(server.path in text or "AnsiballZ_" in text for text in processes()):
        assert time.monotonic() < deadline, "something of the killed run never ended"
        time.sleep(0.5)
    server.root.clear_faults()
    server.reset_calls()

    result, hosts = deploy(inventory, b_gated)
    assert result.returncode != 0 and hosts["as01"]["failed"] == 1, result.stdout
    assert "the previous configuration is live again" in " ".join(result.stdout.split()), result.stdout
    assert state(server) == a_state
    assert not os.path.exists(pending)


def processes():
    """The command lines of the processes that can be read."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(os.path.join("/proc", pid, "cmdline"), "rb") as handle:
                found.append(handle.read().replace(b"\0", b" ").decode("utf-8", "replace"))
        except (OSError, ValueError):
            continue
    return found


def test_no_room_for_the_modules_on_the_server_changes_nothing(make_fleet, tmp_path):
    """Ansible's remote_tmp on a filesystem too small for the collection's modules: the run fails before any
    change; with room again, the next run makes the change."""
    fleet, inventory, _a, b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    a_state = state(server)
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0700", "tmpfs", str(remote_tmp)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("a filesystem cannot be mounted here: %s" % proc.stderr.strip())
    try:
        server.reset_calls()
        result, _hosts = deploy(inventory, b, "-e", "ansible_remote_tmp=%s" % remote_tmp)
    finally:
        subprocess.run(["umount", str(remote_tmp)], check=False)
    assert result.returncode != 0
    assert "No space left on device" in result.stdout + result.stderr, result.stdout
    assert server.commands() == [] and state(server) == a_state
    assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json"))

    result, _hosts = deploy(inventory, b)
    assert result.returncode == 0, result.stdout + result.stderr
    assert state(server)["alice"] == ALICE_B and server.commands().count("start") == 1


def test_a_restore_keeps_what_someone_changed_during_the_gate(make_fleet, tmp_path):
    """B refuses the canary; while its gate runs, someone sets alice's address (B wrote it) back to A's and gives bob
    (whom B created) a property. The restore takes back the rest of B, keeps bob, and says so."""
    fleet, inventory, _a, _b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    a_script = state(server)["script"]
    server.set_password("alice", "alice-pw")
    canary = {"name": "alice's laptop", "user": "alice", "password": "alice-pw", "hw_addr": "00:11:22:33:44:55",
              "client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0", "UV_APPVER_DEFENDER": "4.18"}}
    b_gated = write_vars(tmp_path / "b-gated.json", ovpnas_sacli_timeout=120, ovpnas_start_wait_timeout=20,
                         rollout_restore=True, rollout_canary_logins=[canary], **B)
    assert "bob" not in server.userprops()
    # the restore's read of the users (the second UserPropGet, after the converge's) takes a while: the edits land
    # between the gate and that read
    server.set_fault("userpropget", action="hang", seconds=6, after=1, times=1)
    server.reset_calls()
    proc = deploy_in_background(inventory, b_gated, text=True, start_new_session=False)
    deadline = time.monotonic() + 120
    while not server.commands("authcli"):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its gate"
        time.sleep(0.2)
    # (no read of the users here: it would be the UserPropGet that hangs)
    server.sacli("--user", "alice", "--key", "pvt_hw_addr", "--value", "00:11:22:33:44:55", "UserPropPut")
    server.sacli("--user", "bob", "--key", "prop_autologin", "--value", "true", "UserPropPut")
    out, _err = proc.communicate(timeout=300)

    text = " ".join(out.split())
    assert proc.returncode != 0, out
    # alice holds what she held before B: nothing to restore there, nothing kept
    assert "kept what was changed since: bob; started and gated again" in text, out
    assert "the previous configuration is live again" in text
    # B is taken back, but not what was changed since it was written
    assert state(server)["script"] == a_script
    bob = server.userprops()["bob"]
    assert bob["pvt_hw_addr"] == "00:11:22:33:44:88" and bob["prop_autologin"] == "true"
    assert state(server)["alice"] == "00:11:22:33:44:55"
    assert server.commands("authcli") == ["authenticate", "authenticate"], "gated, then gated again after the restore"


def test_a_change_whose_pending_record_was_removed_is_still_started_and_gated(make_fleet, tmp_path):
    """B's start fails and someone removes its pending record by hand: the database holds B, the server runs A. The
    audit sees it, and the next deploy starts and gates B instead of finding nothing to roll out."""
    fleet, inventory, _a, b = fleet_with_a(make_fleet, tmp_path, 1)
    server = fleet["as01"]
    server.set_fault("start", action="exit", rc=1, times=1)
    result, hosts = deploy(inventory, b)
    assert result.returncode != 0 and hosts["as01"]["failed"] == 1, result.stdout
    pending = os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json")
    os.unlink(pending)
    server.reset_calls()

    report_dir = tmp_path / "report"
    audit = run_playbook(AUDIT, inventory, "-e", b, "-e", "ovpnas_audit_dir=%s" % report_dir)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    with open(report_dir / "drift.json") as handle:
        entry = json.load(handle)["hosts"][0]
    assert entry["status"] == "drift", entry
    assert "not applied yet: a change of unknown date is waiting for sacli start" in entry["differs"]
    assert set(server.commands()) == {"ConfigQuery", "UserPropGet"} and not os.path.exists(pending), "it only reads"

    result, _hosts = deploy(inventory, b)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to roll out" not in result.stdout
    assert "is not what the last sacli start of this collection applied" in " ".join(result.stderr.split())
    commands = server.commands()
    assert [c for c in commands if c in ("ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel")] == []
    assert commands.count("start") == 1 and not os.path.exists(pending)

    server.reset_calls()
    result, _hosts = deploy(inventory, b)
    assert result.returncode == 0 and "Nothing to roll out" in result.stdout, result.stdout
    assert set(server.commands()) == {"ConfigQuery", "UserPropGet"}


# what a run that did not end with its change live says (and nothing else may fail it)
OVERTAKEN = ("changed after this run planned its change", "no longer holds this rollout's change",
             "has been applying its change on this server")


def test_two_runs_at_once_never_mix(make_fleet, tmp_path):
    """A and B at once on one server, three times: one waits for the other, and one inventory is live whole; a run
    that planned before the other wrote fails, saying so, and writes nothing."""
    fleet = make_fleet(3)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    # both inventories manage the same users, so that either one decides everything
    registry = dict(VARIABLES["post_auth_device_pinning_registry"], bob=["00:11:22:33:44:99"])
    a = write_vars(tmp_path / "a.json", post_auth_device_pinning_registry=registry)
    b = write_vars(tmp_path / "b.json", **B)
    for limit, extra in (("as01", a), ("as02", b)):
        result = run_playbook(DEPLOY, inventory, "-e", extra, "-l", limit)
        assert result.returncode == 0, result.stdout + result.stderr
    wanted = {a: state(fleet["as01"]), b: state(fleet["as02"])}
    for first, second in ((a, b), (b, a), (a, b)):
        runs = at_once(inventory, (first, second), "-l", "as03")
        now = state(fleet["as03"])
        matches = [extra for extra, value in wanted.items() if value == now]
        assert len(matches) == 1, {extra: sorted(k for k in now if now[k] != value[k])
                                   for extra, value in wanted.items()}
        # the run whose inventory is live ended green; the other either ran before it, or failed saying why
        winner = next(run for run in runs if run["extra"] == matches[0])
        assert winner["rc"] == 0, winner["output"]
        for run in runs:
            assert run["rc"] == 0 or any(text in " ".join(run["output"].split()) for text in OVERTAKEN), run["output"]
    assert not os.path.exists(os.path.join(fleet["as03"].path, "etc", "ovpnas_fleet", "pending_apply.json"))


def test_two_rollouts_at_once_end_whole_or_say_they_did_not(make_fleet, tmp_path):
    """Two rollouts of different inventories to the same three servers at once, canary first, in both orders: every
    server ends whole with one inventory; the last run to end green has its inventory live on every server; a run
    whose change was overtaken (planned before the other wrote, or written over after its gate) fails and says so."""
    rollout = dict(ovpnas_serial=[1, "25%", "100%"], ovpnas_max_fail_percentage=0, rollout_restore=True)
    registry = dict(VARIABLES["post_auth_device_pinning_registry"], bob=["00:11:22:33:44:99"])
    extras = {"a": write_vars(tmp_path / "a.json", post_auth_device_pinning_registry=registry, **rollout),
              "b": write_vars(tmp_path / "b.json", **dict(B, **rollout))}
    for order in ("ab", "ba"):
        # as04 and as05 show what A and B make of a server
        fleet = make_fleet(5)
        inventory = write_inventory(tmp_path / ("inventory-%s.json" % order), fleet)
        for limit, name in (("as04", "a"), ("as05", "b")):
            result = run_playbook(DEPLOY, inventory, "-e", extras[name], "-l", limit)
            assert result.returncode == 0, result.stdout + result.stderr
        wanted = {extras["a"]: state(fleet["as04"]), extras["b"]: state(fleet["as05"])}
        runs = at_once(inventory, [extras[name] for name in order], "-l", "as01,as02,as03")
        ends = {}
        for server in ("as01", "as02", "as03"):
            now = state(fleet[server])
            ends[server] = [extra for extra, value in wanted.items() if value == now]
            assert len(ends[server]) == 1, (server, now)
        for run in runs:
            assert run["rc"] == 0 or any(text in " ".join(run["output"].split()) for text in OVERTAKEN), run["output"]
        winners = [run for run in runs if run["rc"] == 0]
        if winners:
            last = max(winners, key=lambda run: run["ended"])
            assert all(extras == [last["extra"]] for extras in ends.values()), (order, ends)
        else:
            # both failed: each said why, and what each server holds is whole (above)
            assert len({tuple(value) for value in ends.values()}) == 2, (order, ends)
        for server in fleet.values():
            assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json"))


def at_once(inventory, extras, *options):
    """Start one deploy per extra vars file at the same moment; their exit codes, outputs and when each ended."""
    runs = []
    for extra in extras:
        proc = deploy_in_background(inventory, extra, *options, text=True, start_new_session=False)
        run = dict(extra=extra, proc=proc, rc=None, output=None, ended=None)
        run["reader"] = threading.Thread(target=lambda run=run: run.update(output=run["proc"].communicate()[0],
                                                                           ended=time.monotonic()))
        run["reader"].start()
        runs.append(run)
    for run in runs:
        run["reader"].join(600)
        assert not run["reader"].is_alive(), "a run did not end in 10 minutes"
        run["rc"] = run["proc"].returncode
    return runs


def test_no_secret_in_any_output_argv_log_or_file(make_fleet, tmp_path):
    """Every secret-bearing variable and key set; -vvv, --diff, --check --diff and a failing run."""
    fleet = make_fleet(3)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    settings = dict(VARIABLES["ovpnas_config_settings"], **{"auth.radius.0.secret": RADIUS,
                                                            "auth.ldap.0.bind_pw": BIND_PW})
    duo = dict(ovpnas_config_settings=settings, post_auth_policy_tests=[],
               post_auth_custom_auth=True, post_auth_custom_auth_url="https://auth.example.com/vpn",
               post_auth_custom_auth_token=TOKEN, post_auth_duo=True,
               post_auth_duo_api_host="api-12345678.duosecurity.com",
               post_auth_duo_integration_key="DIXXXXXXXXXXXXXXXXXX", post_auth_duo_secret_key=DUO_KEY)
    totp = dict(ovpnas_config_settings=settings, post_auth_policy_tests=[],
                post_auth_challenge=True, post_auth_challenge_totp_secrets={"alice": SEED})
    secrets = (BIND_PW, RADIUS, TOKEN, DUO_KEY, SEED, RUN)
    outputs = []
    for name, changes in (("duo", duo), ("totp", totp)):
        extra = write_vars(tmp_path / ("%s.json" % name), **changes)
        for options in (("--check", "--diff", "-vvv"), ("--diff", "-vvv"), ("--diff", "-vvv")):
            result, _hosts = deploy(inventory, extra, *options)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            outputs.append(result.stdout + result.stderr)
        # a failing run: the script's write fails on one server
        fleet["as02"].set_fault("configput", action="exit", rc=1, times=1, stderr="emulated\n")
        failing = dict(changes, post_auth_device_pinning_exempt_users=["breakglass"])
        failing = write_vars(tmp_path / ("%s-change.json" % name), **failing)
        result, hosts = deploy(inventory, failing, "--diff", "-vvv")
        assert result.returncode != 0 and hosts["as02"]["failed"] == 1, result.stdout[-3000:]
        outputs.append(result.stdout + result.stderr)
        fleet["as02"].root.clear_faults()
    for output in outputs:
        for secret in secrets:
            assert secret not in output, secret
    for server in fleet.values():
        with open(server.root.call_log) as handle:
            calls = handle.read()
        for secret in secrets:
            assert secret not in calls
        assert private_leftovers(server, *secrets) == []
    leftovers = []
    for folder in ("/tmp", os.path.expanduser("~/.ansible/tmp")):
        for top, _dirs, names in os.walk(folder):
            if top.startswith(str(tmp_path)):
                continue
            for name in names:
                path = os.path.join(top, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read(4 * 2**20)
                except OSError:
                    continue
                if any(secret.encode("utf-8") in data for secret in secrets[:5]):
                    leftovers.append(path)
    assert leftovers == []
