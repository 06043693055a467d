"""The soak: a canary's real logins after a change, against as long before it, with simulated clients.

Two emulated servers, as the collection finds them (no post-auth script yet); simulated clients
(asemu.traffic: 40 users on win, mac, linux, ios and android, 3% mistyped passwords) log in to the
canary as01 throughout each test, and its log database (read with logdba) shows each login a second
late. The soak watches 6 seconds: a change that keeps those users in passes and the rollout goes on;
changes that pass the policy cases and the canary login but lock out a population are caught there,
taken back, and stop the rollout before as02. Promotion: the canary stage in one run, the other batch
in a later one.
"""

import json
import os
import re
import sys
import time

import pytest
from conftest import REPO, install_server, recap, run_playbook

from asemu.testing import Traffic

DEPLOY = os.path.join(REPO, "playbooks", "deploy_postauth.yml")
SCRIPT_KEY = "auth.module.post_auth_script"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
HOSTS = ["as01", "as02"]
CANARY_PW = "canary-soak-pw"
SOAK = 6
# what the clients of each desktop platform report to the host checker
FIREFOX = [option for platform in ("win", "mac", "linux")
           for option in ("--client-info", "%s:UV_APPVER_FIREFOX=128.0.3" % platform)]
# 40 users, 5 of them on Android (each user's platform is drawn once, with the generator's seed)
TRAFFIC = ["--users", "40", "--platforms", "win=35,mac=20,linux=10,ios=15,android=20", "--rate", "20",
           "--new-device-rate", "0", *FIREFOX]

VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "host_checker_apps": [{"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0",
                           "required": True}],
    "post_auth_python": sys.executable,
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {"name": "a current Firefox", "user": "alice",
         "client": {"platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0.3"}}, "expect": {"status": "SUCCEED"}},
        {"name": "an old Firefox", "user": "bob", "client": {"platform": "mac", "info": {"UV_APPVER_FIREFOX": "102.9"}},
         "expect": {"status": "FAIL", "client_reason": "FIREFOX must be updated"}},
    ],
    "rollout_canary_logins": [
        {"name": "canary laptop", "user": "canary", "password": CANARY_PW,
         "client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0"}, "expect": {"status": "SUCCEED"}},
    ],
    "rollout_soak": SOAK,
    "rollout_soak_poll_interval": 1,
    "rollout_soak_lag": 2,
    "rollout_soak_min_logins": 20,
    "rollout_soak_max_failure_rise": 10,
}
# passes the cases above and the canary laptop, refuses every Android client
NO_ANDROID = {"post_auth_host_checker_platforms": ["win", "mac", "linux", "ios"]}


def make_fleet(tmp_path, *options):
    servers = {}
    for name in HOSTS:
        servers[name] = install_server(tmp_path / "fleet" / name, "--log-lag", "1", *options)
        servers[name].set_password("canary", CANARY_PW)
        assert SCRIPT_KEY not in servers[name].config()
        servers[name].reset_calls()
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {
        "hosts": {name: {"sacli_path": server.sacli_path} for name, server in servers.items()},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    return servers, str(inventory)


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path)


def play(tmp_path, inventory, *options, **changes):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(dict(VARIABLES, **changes)))
    started = time.monotonic()
    result = run_playbook(DEPLOY, inventory, "-e", "@%s" % path, *options)
    result.seconds = time.monotonic() - started
    return result


def text(result):
    """The output with the callback's line wrapping and quoting undone."""
    return " ".join(result.stdout.replace("'", " ").replace('"', " ").split())


def reset(servers):
    for server in servers.values():
        server.reset_calls()


def warm_up():
    """The soak's baseline is the canary's logins of as long before its change: let the clients log in so long."""
    time.sleep(SOAK)


def test_a_change_that_keeps_everyone_in_passes_the_soak_and_the_rollout_goes_on(tmp_path, fleet):
    servers, inventory = fleet
    with Traffic([servers["as01"]], *TRAFFIC) as traffic:
        warm_up()
        result = play(tmp_path, inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    out = text(result)
    soak = re.search(r"as01: soak of 6 s passed; before the change (\d+) logins, [\d.]+% failed; after it (\d+) logins",
                     out)
    assert soak, out[-3000:]
    assert int(soak.group(1)) >= 20 and int(soak.group(2)) >= 20
    for name, server in servers.items():
        assert server.commands().count("start") == 1, name
    # the canary batch alone is soaked: one logdba call per poll, about one a second for 6 + 2 seconds
    polls = len(servers["as01"].calls("logdba"))
    assert 3 <= polls <= 12, polls
    assert servers["as02"].calls("logdba") == []
    assert traffic.summary["logins"] > 100


def assert_taken_back(result, servers):
    """The soak failed on as01: its previous state (no script) is live again, as02 was read once, to plan."""
    out = text(result)
    assert result.returncode != 0
    assert "the previous configuration is live again on as01" in out, out[-3000:]
    assert recap(result.stdout)["as01"]["failed"] == 1
    assert servers["as01"].commands().count("start") == 2
    assert servers["as02"].commands() == ["ConfigQuery"]
    assert all(SCRIPT_KEY not in server.config() for server in servers.values())
    return out


def test_an_android_lockout_is_caught_by_the_soak_and_taken_back(tmp_path, fleet):
    servers, inventory = fleet
    with Traffic([servers["as01"]], *TRAFFIC):
        warm_up()
        result = play(tmp_path, inventory, **NO_ANDROID)
    out = assert_taken_back(result, servers)
    assert re.search(r"as01: the soak failed: android: failures rose from [\d.]+% to 100% \(\+[\d.]+ points; "
                     r"(\d+) of \1 logins failed\)", out), out[-3000:]
    assert "error host_checker: platform android is not allowed is new" in out
    assert re.search(r"as01: soak of 6 s FAILED; before the change \d+ logins, [\d.]+% failed; after it \d+ logins",
                     out)


def test_a_lockout_without_its_reason_in_the_log_is_caught_as_well(tmp_path):
    # a server that records a script's refusal with one generic text (whether the reason lands in `error` is not
    # public): the platform's rate still shows it
    servers, inventory = make_fleet(tmp_path, "--log-script-reason", "generic")
    with Traffic([servers["as01"]], *TRAFFIC):
        warm_up()
        result = play(tmp_path, inventory, **NO_ANDROID)
    out = assert_taken_back(result, servers)
    assert re.search(r"as01: the soak failed: android: failures rose from [\d.]+% to 100%", out), out[-3000:]
    assert "not allowed" not in out.split("the soak failed")[1]


def test_too_few_logins_is_inconclusive_which_fails_unless_told_to_pass(tmp_path, fleet):
    servers, inventory = fleet
    # one login every two seconds: a handful in each window of 6 seconds
    with Traffic([servers["as01"]], "--users", "5", "--rate", "0.5", *FIREFOX):
        warm_up()
        refused = play(tmp_path, inventory)
        out = assert_taken_back(refused, servers)
        assert re.search(r"as01: the soak failed: inconclusive: \d+ logins? before the change and \d+ after; each "
                         r"window needs at least 20", out), out[-3000:]
        reset(servers)
        passed = play(tmp_path, inventory, rollout_soak_on_inconclusive="pass")
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert re.search(r"as01: soak of 6 s inconclusive; .*\(inconclusive: .*\(passed: on_inconclusive=pass\)\)",
                     text(passed))
    assert all(server.commands().count("start") == 1 for server in servers.values())


def test_a_promotion_continues_the_canary_stage_of_an_earlier_run(tmp_path, fleet):
    servers, inventory = fleet
    # before any canary stage: nothing to promote, nothing written, nothing logged in to
    early = play(tmp_path, inventory, "-e", "ovpnas_stage=promote")
    assert early.returncode != 0
    assert ("nothing to promote: none of the 2 servers holds this change yet, so no canary batch has passed with it; "
            "roll it out with -e ovpnas_stage=canary first") in text(early)
    assert all(server.commands() == ["ConfigQuery"] for server in servers.values())
    reset(servers)

    # the canary stage: as01 changed, started, gated and soaked; as02 waits
    with Traffic([servers["as01"]], *TRAFFIC):
        warm_up()
        canary = play(tmp_path, inventory, "-e", "ovpnas_stage=canary")
    assert canary.returncode == 0, canary.stdout[-3000:]
    out = text(canary)
    assert "The canary batch passed: as01 holds the change" in out
    assert "1 server waits for the promotion: as02" in out
    assert "Promote to continue: run the same rollout again with -e ovpnas_stage=promote" in out
    assert "as01: soak of 6 s passed" in out
    assert servers["as01"].commands().count("start") == 1
    assert servers["as02"].commands() == ["ConfigQuery"]
    reset(servers)

    # the promotion: the canary is read once and left alone, as02 is rolled out to (no soak: the canary's batch was
    # the soaked one)
    promoted = play(tmp_path, inventory, "-e", "ovpnas_stage=promote")
    assert promoted.returncode == 0, promoted.stdout[-3000:]
    assert "Rolling out to 1 of 2 servers, in 1 batches: as02" in text(promoted)
    assert servers["as01"].commands() == ["ConfigQuery"]
    assert servers["as02"].commands().count("start") == 1
    assert not servers["as02"].calls("logdba")
    assert len({server.config()[SCRIPT_KEY] for server in servers.values()}) == 1


@pytest.mark.parametrize("changes, named", [
    ({"rollout_soak_min_logins": "many"}, "rollout_soak_min_logins"),
    ({"rollout_soak": "ten minutes"}, "rollout_soak"),
    ({"rollout_soak_on_inconclusive": "maybe"}, "rollout_soak_on_inconclusive"),
], ids=["min-logins", "duration", "on-inconclusive"])
def test_bad_soak_variables_stop_the_rollout_before_any_server_is_read(tmp_path, fleet, changes, named):
    servers, inventory = fleet
    result = play(tmp_path, inventory, **changes)
    assert result.returncode != 0
    assert named in text(result), result.stdout[-3000:]
    assert all(server.commands() == [] for server in servers.values())
