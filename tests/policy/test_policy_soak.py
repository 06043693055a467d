"""The soak against real directory logins: a group-mapping change that locks out RADIUS or LDAP users.

Two emulated servers, as the collection finds them (no post-auth script yet), with the FreeRADIUS and
slapd of conftest.py configured but local authentication the configured method: the canary login of
the gate is a local one. Simulated clients (asemu.traffic) log in to the canary as01 throughout each
test: local users and a population of directory users who log in with --auth-method radius or ldap
against the real servers. Each change passes its policy cases and the canary login, but refuses a
share of the directory logins; the soak (6 seconds) catches it from the log database, the previous
state of as01 is live again, and as02 is read once and never written.
"""

import json
import os
import re
import sys
import time

from policy import ADMINS_DN, USERS_DN, fleet

from asemu.testing import Traffic

DEPLOY = os.path.join(fleet.REPO, "playbooks", "deploy_postauth.yml")
SCRIPT_KEY = "auth.module.post_auth_script"
HOSTS = ["as01", "as02"]
CANARY_PW = "canary-soak-pw"
SOAK = 6
ENGINEERING_DN = "cn=engineering,ou=groups,dc=example,dc=com"

VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "post_auth_python": sys.executable,
    "rollout_canary_logins": [
        {"name": "canary laptop", "user": "canary", "password": CANARY_PW,
         "client_info": {"IV_PLAT": "win"}, "expect": {"status": "SUCCEED"}},
    ],
    "rollout_soak": SOAK,
    "rollout_soak_poll_interval": 1,
    "rollout_soak_lag": 2,
    "rollout_soak_min_logins": 20,
    "rollout_soak_max_failure_rise": 10,
}

# RADIUS users get the contractors group from their Class, and RADIUS logins that match no rule are
# refused: the cases below pass (a contractor, a stranger, a local login), but no user of
# fixtures/radius-users has Class "contractors", so every real RADIUS login is refused
RADIUS_LOCKOUT = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["radius"],
    "post_auth_group_mapping_rules": [
        {"name": "contractors", "radius_attribute": "Class", "radius_values": ["contractors"],
         "group": "contractors"},
    ],
    "post_auth_group_mapping_deny_unmatched": True,
    "post_auth_group_mapping_radius_framed_ip": False,
    "post_auth_policy_tests": [
        {"name": "a contractor gets the contractors group", "user": "dan", "auth_method": "radius",
         "radius_reply": {"Class": ["contractors"]}, "expect": {"status": "SUCCEED", "group": "contractors"}},
        {"name": "a RADIUS user of another class is refused", "user": "mallory", "auth_method": "radius",
         "radius_reply": {"Class": ["guests"]}, "expect": {"status": "FAIL"}},
        {"name": "local logins are not mapped", "user": "canary", "expect": {"status": "SUCCEED"}},
    ],
}

# meant to refuse a suspended group, the deny rule names engineering: its cases (admins and users get
# their groups, a local login passes) do not see that bob, of engineering, is refused
LDAP_LOCKOUT = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["ldap"],
    "post_auth_group_mapping_rules": [
        {"name": "suspended", "ldap_groups": [ENGINEERING_DN], "deny": True},
        {"name": "administrators", "ldap_groups": ["vpn-admins"], "group": "admins"},
        {"name": "users", "ldap_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_policy_tests": [
        {"name": "an admin gets the admins group", "user": "alice", "auth_method": "ldap",
         "ldap": {"groups": [ADMINS_DN, USERS_DN], "api": "ldap3"},
         "expect": {"status": "SUCCEED", "group": "admins"}},
        {"name": "a user gets the users group", "user": "frank", "auth_method": "ldap",
         "ldap": {"groups": [USERS_DN], "api": "ldap3"}, "expect": {"status": "SUCCEED", "group": "users"}},
        {"name": "local logins are not mapped", "user": "canary", "expect": {"status": "SUCCEED"}},
    ],
}

# the RADIUS users of fixtures/radius-users that FreeRADIUS accepts (eve it rejects), each listed 8 times:
# 24 of the 32 members (75%) log in over RADIUS, 8 are local users
RADIUS_USERS = ["alice", "bob", "carol"]
RADIUS_TRAFFIC = ["--users", "8", "--rate", "20", "--new-device-rate", "0"]
# the LDAP users of the directory, bob (engineering) listed 12 times, each other one twice: bob makes half
# of the 24 members, 6 of them local users
LDAP_WEIGHTS = {"alice": 2, "bob": 12, "carol": 2, "Dave": 2}
LDAP_TRAFFIC = ["--users", "6", "--rate", "20", "--new-device-rate", "0"]

OVERALL = re.compile(r"all logins: failures rose from ([\d.]+)% to ([\d.]+)% \(\+([\d.]+) points; "
                     r"(\d+) of (\d+) logins failed\)")
SUMMARY = re.compile(r"as01: soak of 6 s FAILED; before the change (\d+) logins, ([\d.]+)% failed; "
                     r"after it (\d+) logins, ([\d.]+)% failed")


def make_fleet(tmp_path, prepare):
    """Two emulated servers, each prepared for directory logins with local authentication configured;
    {name: config} as read before the rollout."""
    servers, before = {}, {}
    for name in HOSTS:
        server = servers[name] = fleet.install_server(tmp_path / "fleet" / name, "--log-lag", "1")
        prepare(server)
        # the directory's configure() makes its method the configured one: local again, for the canary
        server.sacli("--key", "auth.module.type", "--value", "local", "ConfigPut")
        server.set_password("canary", CANARY_PW)
        before[name] = server.config()
        assert SCRIPT_KEY not in before[name]
        assert before[name]["auth.module.type"] == "local"
        server.reset_calls()
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {
        "hosts": {name: {"sacli_path": server.sacli_path} for name, server in servers.items()},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    return servers, str(inventory), before


def population(tmp_path, entries):
    path = tmp_path / "population.json"
    path.write_text(json.dumps(entries))
    return str(path)


def play(tmp_path, inventory, **changes):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(dict(VARIABLES, **changes)))
    started = time.monotonic()
    result = fleet.run_playbook(DEPLOY, inventory, "-e", "@%s" % path)
    result.seconds = time.monotonic() - started
    return result


def text(result):
    """The output with the callback's line wrapping and YAML quoting undone (a quoted reason keeps its quotes)."""
    return " ".join(result.stdout.replace('"', " ").replace("''", "'").split())


def warm_up():
    """The soak's baseline is the canary's logins of as long before its change: let the clients log in so long."""
    time.sleep(SOAK)


def assert_taken_back(result, servers, before):
    """The soak failed on as01: its state before the run is live again; as02 was read once, to plan."""
    out = text(result)
    assert result.returncode != 0, out[-3000:]
    assert "the previous configuration is live again on as01" in out, out[-3000:]
    assert fleet.recap(result.stdout)["as01"]["failed"] == 1
    commands = servers["as01"].commands()
    # started with the change, then again with the previous state
    assert commands.count("start") == 2, commands
    assert servers["as01"].config() == before["as01"]
    assert servers["as02"].commands() == ["ConfigQuery"]
    assert servers["as02"].config() == before["as02"]
    assert servers["as02"].calls("logdba") == []
    summary = SUMMARY.search(out)
    assert summary, out[-3000:]
    # before the change the directory logins got in: only background noise (mistyped passwords) failed
    assert int(summary.group(1)) >= 20 and float(summary.group(2)) < 15, summary.group(0)
    assert int(summary.group(3)) >= 20 and float(summary.group(4)) > 30, summary.group(0)
    # the rollout's failure: why the soak failed, then what it took back
    failure = re.search(r"Action failed: as01: the soak failed: (.*?); the previous configuration is live again", out)
    assert failure, out[-3000:]
    return failure.group(1)


def test_a_radius_only_lockout_is_caught_by_the_soak(tmp_path, freeradius):
    servers, inventory, before = make_fleet(tmp_path, freeradius.configure)
    members = population(tmp_path, [{"user": user, "password": freeradius.users[user], "method": "radius"}
                                    for user in RADIUS_USERS for _copy in range(8)])
    with Traffic([servers["as01"]], *RADIUS_TRAFFIC, "--population", members) as traffic:
        warm_up()
        result = play(tmp_path, inventory, **RADIUS_LOCKOUT)
    failure = assert_taken_back(result, servers, before)
    assert freeradius.secret not in result.stdout

    # the rise of all logins: three in four log in over RADIUS, and each of those is refused
    overall = OVERALL.search(failure)
    assert overall, failure[:3000]
    assert float(overall.group(1)) < 10 and float(overall.group(2)) > 40, overall.group(0)
    # the refusals' reason, new since the change, once: the script names each user in it, the soak names none
    assert re.search(r"error 'group_mapping: <user> \(radius\) matched no group mapping rule' is new: [\d.]+% of "
                     r"logins \(\+[\d.]+ points; ", failure), failure[:3000]
    assert not any(user in failure for user in RADIUS_USERS), failure[:3000]

    radius = traffic.summary["per_method"]["radius"]
    local = traffic.summary["per_method"]["local"]
    assert radius["succeeded"] >= 50 and radius["failed"] >= 20, radius
    # local users got in throughout, the change's time included (3% mistype their password)
    assert local["failed"] <= max(3, local["logins"] // 10), local


def test_an_ldap_group_lockout_is_caught_by_the_soak(tmp_path, slapd):
    servers, inventory, before = make_fleet(tmp_path, slapd.configure)
    members = population(tmp_path, [{"user": user, "password": slapd.users[user][0], "method": "ldap"}
                                    for user, copies in sorted(LDAP_WEIGHTS.items()) for _copy in range(copies)])
    with Traffic([servers["as01"]], *LDAP_TRAFFIC, "--population", members) as traffic:
        warm_up()
        result = play(tmp_path, inventory, **LDAP_LOCKOUT)
    failure = assert_taken_back(result, servers, before)
    assert slapd.bind_pw not in result.stdout

    reason = "error 'group_mapping: <user> matches suspended, which denies access' is new"
    assert reason in failure, failure[:3000]
    # no other reason of the group mapping: no one else was refused by the change
    assert re.findall(r"error 'group_mapping: ([^']*)'", failure) == ["<user> matches suspended, which denies access"]
    # a rise the logins show for sure is named, with its points
    assert re.search(r"(failures rose from [\d.]+% to [\d.]+%|is new: [\d.]+% of logins) \(\+[\d.]+ points; ",
                     failure), failure[:3000]

    ldap = traffic.summary["per_method"]["ldap"]
    assert ldap["succeeded"] >= 50 and ldap["failed"] >= 10, ldap
