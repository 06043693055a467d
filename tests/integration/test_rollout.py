"""The rollout on ten emulated servers: canary first, health gate, restore, clusters, removal, audit."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ANSIBLE_BIN, REPO, install_server, recap, run_playbook

DEPLOY = os.path.join(REPO, "playbooks", "deploy_postauth.yml")
REMOVE = os.path.join(REPO, "playbooks", "remove_postauth.yml")
AUDIT = os.path.join(REPO, "playbooks", "audit_postauth.yml")
SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
CANARY_PW = "canary-pw-'\"$(id)"
HOSTS = ["as%02d" % i for i in range(1, 11)]
CLUSTER = ["as09", "as10"]


def firefox(min_version):
    return [{"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": min_version,
             "required": True}]


VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "ovpnas_start_wait_timeout": 20,
    "host_checker_apps": firefox("115.0"),
    "post_auth_python": sys.executable,
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {"name": "a current Firefox", "user": "alice",
         "client": {"platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0.3"}}, "expect": {"status": "SUCCEED"}},
        {"name": "an old Firefox", "user": "bob",
         "client": {"platform": "mac", "info": {"UV_APPVER_FIREFOX": "102.9"}},
         "expect": {"status": "FAIL", "client_reason": "FIREFOX must be updated"}},
    ],
    # the canary laptop runs Firefox 128.0: a minimum of 128.0.1 passes the cases above and locks it out
    "rollout_canary_logins": [
        {"name": "canary laptop", "user": "canary", "password": CANARY_PW,
         "client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0"}, "expect": {"status": "SUCCEED"}},
    ],
}


@pytest.fixture
def fleet(tmp_path):
    """Ten emulated servers: as01..as08 on their own, as09 and as10 one cluster sharing a configuration database."""
    servers = {}
    for name in HOSTS:
        options = ("--cluster-db", str(tmp_path / "cluster-db")) if name in CLUSTER else ()
        servers[name] = install_server(tmp_path / "fleet" / name, "--vpn-clients", "4", *options)
        servers[name].set_password("canary", CANARY_PW)
        servers[name].reset_calls()
    hosts = {name: {"sacli_path": server.sacli_path} for name, server in servers.items()}
    for name in CLUSTER:
        hosts[name]["ovpnas_cluster"] = "c1"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    return servers, str(inventory)


def play(tmp_path, inventory, playbook=DEPLOY, *options, **changes):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(dict(VARIABLES, **changes)))
    result = run_playbook(playbook, inventory, "-e", "@%s" % path, *options)
    return result, recap(result.stdout)


def text(result):
    """The output with the callback's line wrapping undone."""
    return " ".join(result.stdout.replace("'", " ").split())


def reset(servers):
    for server in servers.values():
        server.reset_calls()


def scripts(servers):
    return {name: server.config().get(SCRIPT_KEY) for name, server in servers.items()}


def first_change(server):
    """When the rollout first wrote to or started the server (the plan's read comes before, on every server)."""
    calls = [c for c in server.root.calls() if c["command"] in WRITES | {"start"}]
    return min(c["time"] for c in calls) if calls else None


def test_bad_canary_logins_of_any_server_stop_the_rollout_before_any_read(fleet, tmp_path):
    servers, inventory = fleet
    # the logins as a group variable, and some servers' own (a host variable wins over a group variable)
    with open(inventory) as handle:
        data = json.load(handle)
    data["fleet"]["vars"]["rollout_canary_logins"] = VARIABLES["rollout_canary_logins"]
    bad = {"as04": [{"user": ["canary"], "password": CANARY_PW}],
           "as06": [{"user": "canary", "pasword": CANARY_PW}],
           "as07": [{"user": "--user=root", "password": CANARY_PW}],
           "as08": [{"user": "canary", "password": CANARY_PW + "\n"}],
           "as09": [{"user": "canary", "password": CANARY_PW + "\n"}]}
    for name, logins in bad.items():
        data["fleet"]["hosts"][name]["rollout_canary_logins"] = logins
    with open(inventory, "w") as handle:
        json.dump(data, handle)
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({k: v for k, v in VARIABLES.items() if k != "rollout_canary_logins"}))

    result = run_playbook(DEPLOY, inventory, "-e", "@%s" % path)

    assert result.returncode != 0, result.stdout
    out = text(result)
    for message in ("rollout_canary_logins[0].user: must be a string, not a list (as04)",
                    "rollout_canary_logins[0]: pasword is not a field",
                    "login 1 ( --user=root ): user starts with - , which a command would read as an option (as07)",
                    "login 1 ( canary ): password must not contain control characters (as08, as09)"):
        assert message in out, out
    assert CANARY_PW not in result.stdout + result.stderr
    # nothing was read, written or started anywhere
    for name, server in servers.items():
        assert server.commands() == [], name
        assert server.commands("authcli") == [], name


def test_a_vaulted_canary_password_is_checked_and_typed(fleet, tmp_path):
    servers, inventory = fleet
    secret = tmp_path / "vault-password"
    secret.write_text("fleet-vault-pw\n")
    vaulted = subprocess.run(
        [os.path.join(ANSIBLE_BIN, "ansible-vault"), "encrypt_string", "--vault-password-file", str(secret),
         "--name", "password", "--", CANARY_PW], capture_output=True, text=True, check=True).stdout
    with open(inventory) as handle:
        data = json.load(handle)
    hosts = {name: dict(data["fleet"]["hosts"][name]) for name in ("as01", "as02")}
    lines = ["fleet:", "  vars:"] + ["    %s: %s" % (k, json.dumps(v)) for k, v in data["fleet"]["vars"].items()]
    lines += ["    rollout_canary_logins:", "      - name: canary laptop", "        user: canary",
              "        client_info: %s" % json.dumps(VARIABLES["rollout_canary_logins"][0]["client_info"])]
    lines += ["        " + line for line in vaulted.splitlines()]
    lines += ["  hosts:"] + ["    %s: %s" % (name, json.dumps(host)) for name, host in hosts.items()]
    yaml_inventory = tmp_path / "inventory.yml"
    yaml_inventory.write_text("\n".join(lines) + "\n")
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({k: v for k, v in VARIABLES.items() if k != "rollout_canary_logins"}))

    result = run_playbook(DEPLOY, str(yaml_inventory), "-e", "@%s" % path, "--vault-password-file", str(secret))

    assert result.returncode == 0, result.stdout + result.stderr
    assert CANARY_PW not in result.stdout + result.stderr
    for name in ("as01", "as02"):
        # the gate typed the decrypted password, and the login passed
        assert servers[name].commands("authcli") == ["authenticate"], name
        assert servers[name].config().get(SCRIPT_KEY), name


def test_first_rollout_canary_first_one_start_per_host_then_nothing(fleet, tmp_path):
    servers, inventory = fleet
    result, hosts = play(tmp_path, inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # three batches, the canary alone first
    assert re.findall(r"Batch (\d) of 3 \(([^)]*)\)", out) == [
        ("1", "as01"), ("2", "as02, as03"), ("3", ", ".join(HOSTS[3:]))]
    canary_start = next(c for c in servers["as01"].root.calls() if c["command"] == "start")["time"]
    # the canary was started and gated before anything was written anywhere else
    canary_gate = servers["as01"].calls("authcli")[0]["time"]
    assert all(first_change(servers[name]) >= max(canary_start, canary_gate) for name in HOSTS[1:])
    assert "Total after batch 3 of 3: 10 of 10 hosts reached (9 changed, 1 cluster node)" in out

    for name, server in servers.items():
        commands = server.commands()
        assert commands.count("start") == 1, name
        # the gate ran on every node, cluster nodes included
        assert server.commands("authcli") == ["authenticate"], name
        assert "VPNSummary" in commands, name
    # the cluster: one write, from its first node; its other node only started
    assert [c for c in servers["as09"].commands() if c in WRITES] == ["ConfigPut", "ConfigPut"]
    assert [c for c in servers["as10"].commands() if c in WRITES] == []
    assert "ConfigQuery" not in servers["as10"].commands()
    assert len(set(scripts(servers).values())) == 1
    # the restart cost is shown: what start restarted and the clients connected before
    assert re.search(r"as01 +- +changed +[0-9a-f]{12} +[a-z, ]+ +4 +passed", out), out
    assert CANARY_PW not in out + result.stderr

    reset(servers)
    again, hosts = play(tmp_path, inventory)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in hosts.values()), again.stdout
    for name, server in servers.items():
        assert server.commands() == ([] if name == "as10" else ["ConfigQuery"]), name
        assert server.commands("authcli") == []


def test_the_roles_write_a_cluster_once_and_start_each_node_once(fleet, tmp_path):
    """A user's play of the roles (no rollout plan): the cluster's writer writes, and its handler starts each node."""
    servers, inventory = fleet
    roles = os.path.join(REPO, "tests", "integration", "playbooks", "post_auth.yml")
    result, hosts = play(tmp_path, inventory, roles, "--limit", ",".join(CLUSTER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c for c in servers["as09"].commands() if c in WRITES] == ["ConfigPut", "ConfigPut"]
    assert [c for c in servers["as10"].commands() if c in WRITES | {"ConfigQuery"}] == []
    for name in CLUSTER:
        assert servers[name].commands().count("start") == 1, name
        assert servers[name].commands("authcli") == ["authenticate"], name
    assert hosts["as09"]["changed"] >= 1 and hosts["as10"]["changed"] == 0, result.stdout

    reset(servers)
    again, hosts = play(tmp_path, inventory, roles, "--limit", ",".join(CLUSTER))
    assert again.returncode == 0, again.stdout + again.stderr
    assert servers["as09"].commands() == ["ConfigQuery", "ConfigQuery"]
    assert servers["as10"].commands() == []


def test_a_failing_canary_is_restored_and_no_other_host_is_touched(fleet, tmp_path):
    servers, inventory = fleet
    assert play(tmp_path, inventory)[0].returncode == 0
    before = scripts(servers)
    reset(servers)

    bad, hosts = play(tmp_path, inventory, host_checker_apps=firefox("128.0.1"))
    assert bad.returncode != 0
    assert hosts["as01"]["failed"] == 1, bad.stdout
    assert all(r["failed"] == 0 and r["changed"] == 0 for name, r in hosts.items() if name != "as01"), bad.stdout
    out = text(bad)
    assert 'canary login "canary laptop" returned FAIL' in out
    assert "the previous configuration is live again on as01" in out
    assert re.search(r"\(restored [^;)]+; started and gated again\)", out), out
    assert "kept what was changed since" not in out
    assert "the rollout stops here, 9 hosts not reached" in out
    canary = servers["as01"].commands()
    assert canary.count("start") == 2 and servers["as01"].commands("authcli") == ["authenticate"] * 2
    # the plan read the others once (the cluster once, from its writer); nothing else happened there
    for name in HOSTS[1:]:
        assert servers[name].commands() == ([] if name == "as10" else ["ConfigQuery"]), name
        assert servers[name].commands("authcli") == [], name
    assert scripts(servers) == before
    # the restored host is consistent: the next run with the good inventory changes nothing
    reset(servers)
    good, hosts = play(tmp_path, inventory)
    assert good.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), good.stdout


def test_a_fault_in_the_second_batch_restores_that_host_and_stops(fleet, tmp_path):
    servers, inventory = fleet
    assert play(tmp_path, inventory)[0].returncode == 0
    old = scripts(servers)["as01"]
    servers["as03"].set_fault("start", action="errors", errors={"auth": [["error", "emulated failure"]]}, times=1)
    reset(servers)

    # a newer minimum the canary laptop meets
    result, hosts = play(tmp_path, inventory, host_checker_apps=firefox("116.0"))
    assert result.returncode != 0
    assert hosts["as03"]["failed"] == 1 and hosts["as02"]["failed"] == 0, result.stdout
    assert "as03: sacli start failed" in text(result)
    untouched = [name for name in HOSTS[3:] if servers[name].commands() == ([] if name == "as10" else ["ConfigQuery"])
                 and servers[name].commands("authcli") == []]
    live = scripts(servers)
    new = live["as01"]
    assert new != old and live["as02"] == new
    assert live["as03"] == old, "the failed host keeps its previous script"
    assert untouched == HOSTS[3:], {name: servers[name].commands() for name in HOSTS[3:]}
    assert all(live[name] == old for name in HOSTS[3:])


def test_check_mode_predicts_the_real_run(fleet, tmp_path):
    servers, inventory = fleet
    assert play(tmp_path, inventory)[0].returncode == 0
    servers["as04"].sacli("--key", QUERY_KEY, "--value", "all:CHROME=^google chrome", "ConfigPut")
    servers["as07"].sacli("--key", "vpn.client.routing.inter_client", "--value", "true", "ConfigPut")
    changes = dict(ovpnas_config_settings={"vpn.client.routing.inter_client": False})
    reset(servers)

    check, predicted = play(tmp_path, inventory, DEPLOY, "--check", "--diff", **changes)
    assert check.returncode == 0, check.stdout + check.stderr
    assert all(c not in WRITES | {"start"} for s in servers.values() for c in s.commands())
    real, done = play(tmp_path, inventory, DEPLOY, "--diff", **changes)
    assert real.returncode == 0, real.stdout + real.stderr
    changed = {name for name, r in done.items() if r["changed"]}
    assert changed == {name for name, r in predicted.items() if r["changed"]}
    # as07 only differed in the key every host now sets; the others had it right already
    assert changed == {"as04", "as07"}
    assert [n for n, s in servers.items() if "start" in s.commands()] == ["as04", "as07"]


def test_the_audit_names_exactly_the_hosts_that_drift(fleet, tmp_path):
    servers, inventory = fleet
    assert play(tmp_path, inventory)[0].returncode == 0
    # one character of the script on as05, the query file on as10 (a cluster node: its cluster drifts)
    script = servers["as05"].config()[SCRIPT_KEY]
    servers["as05"].sacli("--key", SCRIPT_KEY, "--value", script.replace("SUCCEED", "SUCCEEd", 1), "ConfigPut")
    servers["as10"].sacli("--key", QUERY_KEY, "--value", "all:FIREFOX=^firefox", "ConfigPut")
    reset(servers)
    report_dir = tmp_path / "report"

    result, _hosts = play(tmp_path, inventory, AUDIT, ovpnas_audit_dir=str(report_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "drift.json").read_text())
    drift = sorted(h["host"] for h in report["hosts"] if h["status"] == "drift")
    assert drift == ["as05", "as09", "as10"]
    assert report["totals"] == {"hosts": 10, "in_sync": 7, "drift": 3, "unreachable": 0, "standby": 0}
    as05 = next(h for h in report["hosts"] if h["host"] == "as05")
    assert as05["differs"] == [SCRIPT_KEY] and not as05["post_auth"]["match"]
    assert as05["post_auth"]["live_header"]["generator"] == "ovpnas.fleet" and not as05["post_auth"]["sealed"]
    in_sync = next(h for h in report["hosts"] if h["host"] == "as01")
    assert in_sync["post_auth"]["applied"] and in_sync["post_auth"]["sealed"]
    assert in_sync["post_auth"]["live_sha256"] == in_sync["post_auth"]["expected_sha256"]
    for name in ("drift.md", "drift.html"):
        text = (report_dir / name).read_text()
        assert "as05" in text and "as10" in text
    # one read per host, and nothing written anywhere
    for name, server in servers.items():
        assert server.commands() == ["ConfigQuery"], name

    failing, _hosts = play(tmp_path, inventory, AUDIT, ovpnas_audit_dir=str(report_dir),
                           ovpnas_audit_fail_on_drift=True)
    assert failing.returncode != 0 and "drift on as05, as09, as10" in failing.stdout


def test_removal_leaves_no_key_behind(fleet, tmp_path):
    servers, inventory = fleet
    assert play(tmp_path, inventory)[0].returncode == 0
    reset(servers)
    result, hosts = play(tmp_path, inventory, REMOVE, ovpnas_remove_app_verify=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, server in servers.items():
        config = server.config()
        assert SCRIPT_KEY not in config and QUERY_KEY not in config, name
        assert server.commands().count("start") == 1, name
    assert [c for c in servers["as10"].commands() if c in WRITES] == []
    reset(servers)
    again, hosts = play(tmp_path, inventory, REMOVE, ovpnas_remove_app_verify=True)
    assert again.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), again.stdout


def test_a_standby_node_is_reported_and_skipped(fleet, tmp_path):
    servers, inventory = fleet
    servers["as06"].settings(standby=True)
    result, hosts = play(tmp_path, inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hosts["as06"]["failed"] == 0 and hosts["as06"]["skipped"] >= 1
    assert "Standby (no services run there), skipped: as06" in text(result)
    assert "Rolling out to 9 of 10 servers" in text(result)
    assert servers["as06"].commands() == ["ConfigQuery"] and "start" not in servers["as06"].commands()


def test_a_cluster_whose_writer_is_a_standby_is_written_from_its_next_node(fleet, tmp_path):
    """as09, the cluster's chosen writer, runs no services: as10 writes the cluster's database, is started and gated;
    the next run reads the cluster once, from as10."""
    servers, inventory = fleet
    servers["as09"].settings(standby=True)
    result, hosts = play(tmp_path, inventory, DEPLOY, "--limit", ",".join(CLUSTER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Standby (no services run there), skipped: as09" in text(result)
    assert "start" not in servers["as09"].commands()
    assert [c for c in servers["as10"].commands() if c in WRITES], result.stdout
    assert servers["as10"].commands().count("start") == 1 and servers["as10"].commands("authcli") == ["authenticate"]
    assert SCRIPT_KEY in servers["as10"].config()

    reset(servers)
    again, hosts = play(tmp_path, inventory, DEPLOY, "--limit", ",".join(CLUSTER))
    assert again.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), again.stdout
    assert servers["as10"].commands() == ["ConfigQuery"] and servers["as09"].commands() == ["ConfigQuery"]


@pytest.mark.parametrize("mistake", ["one-server-twice", "not-one-cluster"])
def test_inventory_mistakes_about_databases_stop_the_rollout_before_any_change(fleet, tmp_path, mistake):
    """One server under two inventory names (each with its own host.name), or two servers declared one cluster:
    the plan stops the rollout before anything is written anywhere."""
    servers, inventory = fleet
    with open(inventory) as handle:
        data = json.load(handle)
    hosts = data["fleet"]["hosts"]
    if mistake == "one-server-twice":
        hosts["as01-again"] = dict(hosts["as01"], ovpnas_config_settings={"host.name": "other.example.com"})
        expected = "as01, as01-again use one configuration database"
    else:
        hosts["as02"]["ovpnas_cluster"] = hosts["as03"]["ovpnas_cluster"] = "c2"
        expected = "cluster c2: its nodes use different configuration databases"
    with open(inventory, "w") as handle:
        json.dump(data, handle)
    result, _hosts = play(tmp_path, inventory)
    assert result.returncode != 0
    assert expected in text(result), result.stdout
    for name, server in servers.items():
        assert [c for c in server.commands() if c in WRITES | {"start"}] == [], name
