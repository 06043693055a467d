"""playbooks/deploy_postauth.yml and the host_checker role: one read per equal host, the difference elsewhere."""

import json
import os
import sys

from conftest import REPO, recap, run_playbook, write_inventory

DEPLOY = os.path.join(REPO, "playbooks", "deploy_postauth.yml")
PLAYBOOKS = os.path.join(REPO, "tests", "integration", "playbooks")
SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
BIND_PW = "bind-pw-'\"$(id)"

VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "ovpnas_config_settings": {"host.name": "vpn.example.com", "vpn.client.routing.reroute_gw": False,
                               "auth.ldap.0.bind_pw": BIND_PW},
    "host_checker_apps": [
        {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
        {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True},
    ],
    "post_auth_python": sys.executable,
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "manual",
    "post_auth_device_pinning_registry": {"alice": ["00:11:22:33:44:55"]},
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {"name": "alice on her laptop", "user": "alice", "properties": {"pvt_hw_addr": "00:11:22:33:44:55"},
         "client": {"hw_addr": "00:11:22:33:44:55", "platform": "win",
                    "info": {"UV_APPVER_FIREFOX": "128.0", "UV_APPVER_DEFENDER": "4.18"}},
         "expect": {"status": "SUCCEED"}},
    ],
}


def fleet_and_vars(make_fleet, tmp_path, hosts=3, **changes):
    fleet = make_fleet(hosts)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    return fleet, inventory, write_vars(tmp_path, **changes)


def write_vars(tmp_path, name="vars.json", **changes):
    path = tmp_path / name
    path.write_text(json.dumps(dict(VARIABLES, **changes)))
    return "@%s" % path


def deploy(inventory, extra, *options, playbook=DEPLOY):
    result = run_playbook(playbook, inventory, "-e", extra, *options)
    return result, recap(result.stdout)


def reset(fleet):
    for server in fleet.values():
        server.reset_calls()


def test_first_run_check_then_real_then_one_read_per_host(make_fleet, tmp_path):
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path)

    check, hosts = deploy(inventory, extra, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    # the converge task and the start it would run
    assert all(r["changed"] == 2 for r in hosts.values()), check.stdout
    assert "+all:FIREFOX=^mozilla firefox" in check.stdout and "+win:DEFENDER=^microsoft defender" in check.stdout
    for server in fleet.values():
        # the plan's read (the script's identity is not live), then the rollout's, with the rendered script; and
        # the clients a restart would drop are counted
        assert server.commands() == ["ConfigQuery"] * 2 + ["UserPropGet", "VPNSummary"], "check mode wrote"
    reset(fleet)

    real, hosts = deploy(inventory, extra, "--diff")
    assert real.returncode == 0, real.stdout + real.stderr
    for name, server in fleet.items():
        commands = server.commands()
        assert commands[:3] == ["ConfigQuery"] * 2 + ["UserPropGet"], name
        # the plan's read, the converge's, and the end's, which finds that the change is still what is live
        assert commands.count("ConfigQuery") == 3 and commands[-1] == "ConfigQuery", name
        assert commands.count("start") == 1 and commands.count("UserPropGet") == 1, name
        assert [c for c in commands if c in WRITES] == ["UserPropPut"] * 2 + ["ConfigPut"] * 5, name
        config = server.config()
        assert config[QUERY_KEY].splitlines() == ["all:FIREFOX=^mozilla firefox", "win:DEFENDER=^microsoft defender"]
        assert "# ovpnas.fleet.features: device_pinning, host_checker" in config[SCRIPT_KEY]
        assert server.userprops()["alice"]["pvt_hw_addr"] == "00:11:22:33:44:55"
    reset(fleet)

    for options in ((), ("--check", "--diff")):
        again, hosts = deploy(inventory, extra, *options)
        assert again.returncode == 0, again.stdout + again.stderr
        assert all(r["changed"] == 0 and r["failed"] == 0 for r in hosts.values()), again.stdout
        for name, server in fleet.items():
            assert server.commands() == ["ConfigQuery", "UserPropGet"], (name, options)
        reset(fleet)

    for output in (check.stdout, real.stdout, check.stderr, real.stderr):
        assert BIND_PW not in output and "bind-pw" not in output


def test_one_read_without_registrations(make_fleet, tmp_path):
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path, hosts=2, post_auth_device_pinning_mode="auto",
                                             post_auth_device_pinning_registry={}, post_auth_policy_tests=[])
    assert deploy(inventory, extra)[0].returncode == 0
    reset(fleet)
    result, hosts = deploy(inventory, extra)
    assert result.returncode == 0 and all(r["changed"] == 0 for r in hosts.values())
    assert all(server.commands() == ["ConfigQuery"] for server in fleet.values())


def test_only_the_host_that_differs_changes(make_fleet, tmp_path):
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path)
    assert deploy(inventory, extra)[0].returncode == 0
    drifted = fleet["as02"]
    drifted.sacli("--key", SCRIPT_KEY, "--value", "def post_auth(a, b, authret, c):\n    return authret\n", "ConfigPut")
    reset(fleet)

    check, hosts = deploy(inventory, extra, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert {name: r["changed"] for name, r in hosts.items()} == {"as01": 0, "as02": 2, "as03": 0}
    assert "-def post_auth(a, b, authret, c):" in check.stdout
    reset(fleet)

    real, hosts = deploy(inventory, extra)
    assert real.returncode == 0, real.stdout + real.stderr
    assert {name: r["changed"] for name, r in hosts.items()} == {"as01": 0, "as02": 2, "as03": 0}
    commands = drifted.commands()
    assert [c for c in commands if c in WRITES] == ["ConfigPut"] and commands.count("start") == 1
    assert fleet["as01"].commands() == fleet["as03"].commands() == ["ConfigQuery", "UserPropGet"]
    assert drifted.config()[SCRIPT_KEY] == fleet["as01"].config()[SCRIPT_KEY]


def test_an_edited_script_under_its_header_is_replaced(make_fleet, tmp_path):
    """The identity in the header is trusted only under an intact seal: an edit anywhere is found and undone."""
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path, hosts=2)
    assert deploy(inventory, extra)[0].returncode == 0
    edited = fleet["as02"]
    wanted = edited.config()[SCRIPT_KEY]
    assert "\n# ovpnas.fleet.identity: " in wanted and wanted.splitlines()[-1].startswith("# ovpnas.fleet.sha256: ")
    edited.sacli("--key", SCRIPT_KEY, "--value", wanted.replace("return run_chain(", "return authret or run_chain("),
                 "ConfigPut")
    reset(fleet)

    result, hosts = deploy(inventory, extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {name: r["changed"] for name, r in hosts.items()} == {"as01": 0, "as02": 2}
    assert [c for c in edited.commands() if c in WRITES] == ["ConfigPut"]
    assert edited.config()[SCRIPT_KEY] == wanted


def test_policy_without_its_query_file_is_refused(make_fleet, tmp_path):
    apps = VARIABLES["host_checker_apps"]
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path, hosts=1, host_checker_apps=apps[:1],
                                             post_auth_host_checker_apps=apps, post_auth_policy_tests=[])
    result, _hosts = deploy(inventory, extra)
    assert result.returncode != 0
    assert "checks DEFENDER (win), which the query file (vpn.client.app_verify) does not list" in result.stdout
    server = fleet["as01"]
    assert server.commands() == ["ConfigQuery"] * 2 + ["UserPropGet"]
    assert QUERY_KEY not in server.config() and SCRIPT_KEY not in server.config()


def test_roles_alone_share_one_handler_and_module_defaults(make_fleet, tmp_path):
    """Both roles change a host and notify: the host starts once; sacli_path comes from module_defaults."""
    fleet = make_fleet(2)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    extra = write_vars(tmp_path)
    playbook = os.path.join(PLAYBOOKS, "post_auth.yml")
    result, _hosts = deploy(inventory, extra, playbook=playbook)
    assert result.returncode == 0, result.stdout + result.stderr
    for server in fleet.values():
        assert server.commands().count("start") == 1
        assert server.config()[QUERY_KEY].startswith("all:FIREFOX=")
    reset(fleet)

    absent = write_vars(tmp_path, "absent.json", host_checker_state="absent", post_auth_state="absent")
    result, _hosts = deploy(inventory, absent, playbook=playbook)
    assert result.returncode == 0, result.stdout + result.stderr
    for server in fleet.values():
        config = server.config()
        assert QUERY_KEY not in config and SCRIPT_KEY not in config
        assert [c for c in server.commands() if c in WRITES] == ["ConfigDel", "ConfigDel"]
        assert server.commands().count("start") == 1


def test_the_compose_facts_load_the_script_the_deploy_loads(make_fleet, tmp_path):
    """tasks_from: compose renders, seals and identifies the script exactly as the deploy's action does."""
    fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path, hosts=2)
    by_facts = run_playbook(os.path.join(PLAYBOOKS, "compose_fact.yml"), inventory, "-e", extra, "-l", "as01")
    assert by_facts.returncode == 0, by_facts.stdout + by_facts.stderr
    result = run_playbook(DEPLOY, inventory, "-e", extra, "-l", "as02")
    assert result.returncode == 0, result.stdout + result.stderr
    assert fleet["as01"].config() == fleet["as02"].config()
    assert fleet["as01"].userprops()["alice"] == fleet["as02"].userprops()["alice"]
    reset(fleet)
    again, hosts = deploy(inventory, extra)
    assert again.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), again.stdout
    assert all(server.commands() == ["ConfigQuery", "UserPropGet"] for server in fleet.values())


def test_check_mode_knows_the_query_file_an_earlier_role_removes(make_fleet, tmp_path):
    """host_checker_state: absent before a policy that needs the file: check mode refuses as the real run does."""
    fleet = make_fleet(1)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    playbook = os.path.join(PLAYBOOKS, "post_auth.yml")
    assert deploy(inventory, write_vars(tmp_path), playbook=playbook)[0].returncode == 0
    absent = write_vars(tmp_path, "absent.json", host_checker_state="absent", post_auth_device_pinning_max_devices=3)
    message = "checks FIREFOX (all), DEFENDER (win), which the query file (vpn.client.app_verify) does not list"
    for options in (("--check",), ()):
        result, hosts = deploy(inventory, absent, *options, playbook=playbook)
        assert result.returncode != 0 and hosts["as01"]["failed"] == 1, (options, result.stdout)
        assert message in result.stdout, (options, result.stdout)


def test_bad_query_file_entries_fail_before_any_change(make_fleet, tmp_path):
    fleet = make_fleet(1)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    cases = [
        ([{"name": "FIRE FOX", "regex": "x"}], "host_checker_apps[0].name: must be letters, digits and underscores"),
        ([{"name": "A", "regex": "x", "platform": "linux"}], "host_checker_apps[0].platform: must be win, mac or all"),
        ([{"name": "A", "regex": "(x"}], "host_checker_apps[0].regex: is not a regular expression"),
        ([{"name": "A", "regex": "x"}, {"name": "A", "regex": "y", "platform": "mac"}],
         "host_checker_apps[1]: lists A again for mac"),
    ]
    for index, (apps, message) in enumerate(cases):
        extra = write_vars(tmp_path, "bad%d.json" % index, host_checker_apps=apps, post_auth_host_checker=False)
        result, _hosts = deploy(inventory, extra, playbook=os.path.join(PLAYBOOKS, "post_auth.yml"))
        assert result.returncode != 0
        assert message in result.stdout, result.stdout
        assert fleet["as01"].commands() == []


def test_failed_start_is_never_forgotten(make_fleet, tmp_path):
    """start fails (exit, reported errors, a service that stays off): every later run starts again until it works."""
    faults = [dict(action="exit", rc=1, times=1), dict(action="errors", errors={"web": [["error", "bind failed"]]},
                                                       times=1)]
    for index, fault in enumerate(faults):
        (tmp_path / str(index)).mkdir()
        # a failed start left pending, not restored (the rollout's restore is tested in test_rollout.py)
        fleet, inventory, extra = fleet_and_vars(make_fleet, tmp_path / str(index), hosts=1, rollout_restore=False)
        server = fleet["as01"]
        server.set_fault("start", **fault)
        first, hosts = deploy(inventory, extra)
        assert first.returncode != 0 and hosts["as01"]["failed"] == 1, first.stdout
        assert SCRIPT_KEY in server.config()
        reset(fleet)

        second, hosts = deploy(inventory, extra)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "was never applied" in second.stdout + second.stderr
        assert [c for c in server.commands() if c in WRITES] == [] and server.commands().count("start") == 1
        reset(fleet)

        third, hosts = deploy(inventory, extra)
        assert third.returncode == 0 and hosts["as01"]["changed"] == 0, third.stdout
        assert server.commands() == ["ConfigQuery", "UserPropGet"]
