"""What the two runs of side_effect.yml did: read each server once, then stopped and restored on a fault."""

import hashlib
import json
import re

import pytest
import testinfra
from hosts import names, podman_hosts
from runs import calls, output

AS = "/usr/local/openvpn_as"
SCRIPT = "auth.module.post_auth_script"
SERVERS = names("openvpn_as")
CANARY, FAULTY, UNTOUCHED = (testinfra.get_host(spec) for spec in podman_hosts("openvpn_as"))


def live(host):
    return json.loads(host.check_output(AS + "/scripts/sacli ConfigQuery"))[SCRIPT]


def applied(host):
    return json.loads(host.file(AS + "/etc/ovpnas_fleet/applied.json").content_string)["sha256"][SCRIPT]


def sha256(text):
    return hashlib.sha256(text.rstrip("\r\n").encode()).hexdigest()  # as the collection hashes stored text


@pytest.mark.parametrize("server", SERVERS)
def test_the_run_with_nothing_to_change_read_each_server_once(server):
    assert calls("noop", server) == [("sacli", "ConfigQuery")]
    assert "Nothing to roll out" in output("noop")


def test_the_canary_runs_version_2_and_passed_its_gate_and_its_soak():
    assert applied(CANARY) == sha256(live(CANARY))
    assert live(CANARY) != live(UNTOUCHED)
    made = calls("version2", SERVERS[0])
    assert made.index(("sacli", "start")) < made.index(("authcli", "authenticate")) < made.index(("logdba", "query"))
    # one logdba call per poll, one a second for 6 + 2 seconds
    assert 3 <= made.count(("logdba", "query")) <= 12, made
    soak = re.search(r"%s: soak of 6 s passed; before the change (\d+) logins, [\d.]+%% failed; after it (\d+) logins"
                     % SERVERS[0], output("version2"))
    assert soak and int(soak.group(1)) >= 20 and int(soak.group(2)) >= 20, output("version2")[-3000:]
    # the other batches are not soaked
    assert ("logdba", "query") not in calls("version2", SERVERS[1])


def test_the_faulty_server_has_its_previous_script_back():
    assert live(FAULTY) == live(UNTOUCHED)
    made = [command for _tool, command in calls("version2", SERVERS[1])]
    assert made.count("start") == 2, made  # the one that failed, and the one of the restore
    failed = made.index("start")
    assert "ConfigPut" in made[:failed] and "ConfigPut" in made[failed:made.index("start", failed + 1)], \
        "written, started, written back, started again: %s" % made
    text = output("version2")
    assert "%s: sacli start failed" % SERVERS[1] in text
    assert "%s - restored" % SERVERS[1] in text


def test_the_rollout_stopped_before_the_third_server():
    assert calls("version2", SERVERS[2]) == [("sacli", "ConfigQuery")]  # the plan's read, nothing else
    assert "the rollout stops here, 1 hosts not reached" in output("version2")


@pytest.mark.parametrize("host", [CANARY, FAULTY, UNTOUCHED], ids=SERVERS)
def test_every_server_runs_what_it_last_applied_and_its_services_are_on(host):
    assert applied(host) == sha256(live(host))
    assert not host.file(AS + "/etc/ovpnas_fleet/pending_apply.json").exists
    status = json.loads(host.check_output(AS + "/scripts/sacli status"))
    assert (status["errors"], set(status["service_status"].values())) == ({}, {"on"}), status
