"""What remove_postauth.yml left: no key of the collection, servers that start cleanly, a no-op second run."""

import json
import re

import pytest
from hosts import names, podman_hosts
from runs import calls, output

testinfra_hosts = podman_hosts("openvpn_as")

AS = "/usr/local/openvpn_as"
KEYS = ("auth.module.post_auth_script", "vpn.client.app_verify")


def test_no_key_is_left(host):
    config = json.loads(host.check_output(AS + "/scripts/sacli ConfigQuery"))
    assert [key for key in KEYS if key in config] == []


@pytest.mark.parametrize("server", names("openvpn_as"))
def test_the_removal_started_and_gated_each_server(server):
    made = calls("remove", server)
    assert [c for _t, c in made if c in ("ConfigDel", "start")] == ["ConfigDel", "ConfigDel", "start"]
    start = made.index(("sacli", "start"))
    assert ("authcli", "authenticate") in made[start:], "the canary logs in after the start"
    # then the end of the rollout reads the server once more: the removal is still what is live
    assert made[-1] == ("sacli", "ConfigQuery")


def test_the_server_starts_without_errors(host):
    started = host.check_output(AS + "/scripts/sacli start")
    report = json.loads(re.search(r"^\{.*^\}", started, re.M | re.S).group(0))
    assert report["errors"] == {}
    status = json.loads(host.check_output(AS + "/scripts/sacli status"))
    assert set(status["service_status"].values()) == {"on"}


@pytest.mark.parametrize("server", names("openvpn_as"))
def test_a_second_removal_reads_once_and_changes_nothing(server):
    assert calls("remove-again", server) == [("sacli", "ConfigQuery")]
    assert re.search(r"%s : ok=\d+ changed=0 unreachable=0 failed=0" % re.escape(server), output("remove-again"))
