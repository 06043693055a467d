"""The post_auth role (after the host_checker role) on emulated servers: four runs, refusals, removal."""

import glob
import hashlib
import json
import os
import sys

import pytest
from conftest import REPO, recap, run_playbook, write_inventory

PLAYBOOK = os.path.join(REPO, "tests", "integration", "playbooks", "post_auth.yml")
PYTHONS = sorted(glob.glob(os.path.join(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"),
                                        "versions", "3.*", "bin", "python3")))
SCRIPT_KEY = "auth.module.post_auth_script"

ALL_CAPABILITIES = {
    "post_auth_python": sys.executable,
    "post_auth_validate_interpreters": PYTHONS,
    "host_checker_apps": [
        {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    ],
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_rules": [
        {"name": "admins", "ldap_groups": ["cn=vpn-admins,ou=groups,dc=example,dc=com"], "group": "admins"},
        {"radius_attribute": "Class", "radius_values": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_default_group": "everyone",
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "manual",
    "post_auth_device_pinning_registry": {"alice": ["00-11-22-33-44-55"]},
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {
            "name": "alice, admin, registered laptop, current Firefox",
            "user": "alice",
            "auth_method": "ldap",
            "ldap": {"groups": ["cn=vpn-admins,ou=groups,dc=example,dc=com"]},
            "properties": {"pvt_hw_addr": "00:11:22:33:44:55"},
            "client": {"hw_addr": "00:11:22:33:44:55", "platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0"}},
            "expect": {"status": "SUCCEED", "group": "admins"},
        },
        {
            "name": "an unregistered device is refused",
            "user": "alice",
            "client": {"hw_addr": "00:11:22:33:44:66", "platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0"}},
            "expect": {"status": "FAIL", "client_reason": "not registered"},
        },
    ],
}


def scenario(tmp_path, make_fleet, variables, hosts=1):
    tmp_path.mkdir(parents=True, exist_ok=True)
    fleet = make_fleet(hosts)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    return fleet, inventory, "@%s" % extra


def live_script(server):
    return server.config().get(SCRIPT_KEY)


def test_four_runs_with_every_capability(tmp_path, make_fleet):
    fleet, inventory, extra = scenario(tmp_path, make_fleet, ALL_CAPABILITIES, hosts=2)

    check = run_playbook(PLAYBOOK, inventory, "-e", extra, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "+# ovpnas.fleet.features: group_mapping, device_pinning, host_checker" in check.stdout
    for server in fleet.values():
        # the reads, and the clients the handler's start would drop (the one handler gates the roles' changes too)
        assert set(server.commands()) == {"ConfigQuery", "UserPropGet", "VPNSummary"}, "check mode wrote something"
        assert live_script(server) is None
        server.reset_calls()

    real = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert real.returncode == 0, real.stdout + real.stderr
    for server in fleet.values():
        commands = server.commands()
        # the query file (host_checker role), then the script; one start for both, then the gate
        assert commands.count("ConfigPut") == 2 and commands.count("start") == 1, commands
        assert commands[commands.index("start"):].count("status") >= 1, commands
        assert server.config()["vpn.client.app_verify"].splitlines() == ["all:FIREFOX=^mozilla firefox"]
        script = live_script(server)
        assert "# ovpnas.fleet.features: group_mapping, device_pinning, host_checker" in script
        assert server.userprops()["alice"]["pvt_hw_addr"] == "00:11:22:33:44:55"
        assert json.loads(server.sacli("status").stdout)["errors"] == {}
        server.reset_calls()

    for mode in ((), ("--check",)):
        again = run_playbook(PLAYBOOK, inventory, "-e", extra, *mode)
        assert again.returncode == 0, again.stdout + again.stderr
        assert all(r["changed"] == 0 for r in recap(again.stdout).values()), again.stdout
        for server in fleet.values():
            # one read per role: playbooks/deploy_postauth.yml reads once for both (tests/integration/test_deploy.py)
            assert sorted(server.commands()) == ["ConfigQuery", "ConfigQuery", "UserPropGet"], mode
            server.reset_calls()


def test_header_carries_version_and_settings_sha(tmp_path, make_fleet):
    fleet, inventory, extra = scenario(tmp_path, make_fleet, {"post_auth_device_pinning": True})
    assert run_playbook(PLAYBOOK, inventory, "-e", extra).returncode == 0
    server = fleet["as01"]
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        version = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("version:"))
    script = live_script(server)
    assert "# ovpnas.fleet.version: %s\n" % version in script
    sha = script.split("# ovpnas.fleet.settings_sha256: ", 1)[1].split("\n", 1)[0]
    assert len(sha) == 64 and int(sha, 16) >= 0

    # the same settings give the same sha on another server; a different setting another sha
    for index, (variables, same) in enumerate([
        ({"post_auth_device_pinning": True}, True),
        ({"post_auth_device_pinning": True, "post_auth_device_pinning_max_devices": 2}, False),
    ]):
        other, other_inventory, other_extra = scenario(tmp_path / str(index), make_fleet, variables)
        assert run_playbook(PLAYBOOK, other_inventory, "-e", other_extra).returncode == 0
        assert (sha in live_script(other["as01"])) is same


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"post_auth_group_mapping": True, "post_auth_group_mapping_rules": [{"group": "x"}]},
         "post_auth_group_mapping_rules[0]: needs at least one of ldap_groups, saml_groups, custom_auth_groups, "
         "radius_attribute"),
        ({"post_auth_device_pinning": True, "post_auth_device_pinning_max_devices": 11},
         "post_auth_device_pinning_max_devices: must be a number from 1 to 10"),
        ({"post_auth_device_pinning": True, "post_auth_device_pinning_registry": {"bob": ["not-a-mac"]}},
         "post_auth_device_pinning_registry.bob[0]"),
        ({"post_auth_device_pinning_mode": "sometimes"}, "post_auth_device_pinning_mode"),
        ({"post_auth_host_checker": True, "post_auth_host_checker_apps": [{"name": "FIRE-FOX", "regex": "x"}]},
         "post_auth_host_checker_apps[0].name"),
    ],
    ids=["rule-without-criterion", "max-devices", "registry-address", "argument-spec-choice", "app-name"],
)
def test_bad_input_fails_before_any_sacli_call(tmp_path, make_fleet, variables, message):
    fleet, inventory, extra = scenario(tmp_path, make_fleet, variables)
    result = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert fleet["as01"].commands() == []


def test_failing_policy_case_keeps_the_previous_script(tmp_path, make_fleet):
    fleet, inventory, extra = scenario(tmp_path, make_fleet, {"post_auth_device_pinning": True})
    assert run_playbook(PLAYBOOK, inventory, "-e", extra).returncode == 0
    server = fleet["as01"]
    before = live_script(server)
    server.reset_calls()

    broken = dict(ALL_CAPABILITIES, post_auth_policy_tests=[{
        "name": "bob must get in without a hardware address",
        "user": "bob",
        "client": {"platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0"}},
        "expect": {"status": "SUCCEED"},
    }])
    (tmp_path / "vars.json").write_text(json.dumps(broken))
    result = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert result.returncode != 0
    assert "bob must get in without a hardware address: status FAIL, expected SUCCEED" in result.stdout
    assert live_script(server) == before
    # the host_checker role ran first and loaded its query file; the script was not loaded, nothing started
    assert server.commands().count("ConfigPut") == 1 and "start" not in server.commands()


def test_policy_cases_run_on_the_oldest_python(tmp_path, make_fleet):
    """The harness and every capability of the script run on Python 3.6, not only compile."""
    py36 = [p for p in PYTHONS if "/3.6" in p]
    if not py36:
        pytest.skip("no Python 3.6 here")
    variables = dict(ALL_CAPABILITIES, post_auth_python=py36[0])
    fleet, inventory, extra = scenario(tmp_path, make_fleet, variables)
    result = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert result.returncode == 0, result.stdout
    assert fleet["as01"].commands().count("ConfigPut") == 2


def test_absent_removes_the_script_with_a_backup(tmp_path, make_fleet):
    fleet, inventory, extra = scenario(tmp_path, make_fleet, {"post_auth_device_pinning": True})
    assert run_playbook(PLAYBOOK, inventory, "-e", extra).returncode == 0
    server = fleet["as01"]
    before = live_script(server)
    (tmp_path / "vars.json").write_text(json.dumps({"post_auth_state": "absent"}))
    server.reset_calls()
    result = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert result.returncode == 0, result.stdout
    assert live_script(server) is None
    assert server.commands().count("ConfigDel") == 1 and server.commands().count("start") == 1
    backups = glob.glob(os.path.join(server.path, "etc", "ovpnas_fleet", "backups", "*.py"))
    assert len(backups) == 1
    with open(backups[0], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(before.encode()).hexdigest()
    server.reset_calls()
    again = run_playbook(PLAYBOOK, inventory, "-e", extra)
    assert again.returncode == 0 and server.commands() == ["ConfigQuery"]
