"""sacli_start against the emulator: output variants, check mode, start errors and waiting for services."""

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_start

# a generous timeout that is never waited out (services come up at once), a short interval
FAST = dict(wait_timeout=20, wait_interval=0.1)


def run(run_module, server, check_mode=False, **args):
    args = dict(FAST, **args)
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(sacli_start.main, args, check_mode=check_mode)


@pytest.mark.parametrize("output", ["full", "json"])
def test_both_start_outputs(server, run_module, output):
    server.settings(start_output=output)
    server.sacli("--key", "cs.https.port", "--value", "8443", "ConfigPut")
    result = run(run_module, server)
    assert not result["failed"], result
    assert result["changed"] is True
    assert result["restarted"] == ["api", "web"]
    assert result["commands"] == ["sacli start"]
    assert result["status_checks"] == 1
    assert result["last_restarted"]
    assert result["service_status"]["web"] == "on"
    if output == "full":
        assert result["run_start"] == "warm"
        assert result["will_restart"] == ["web"]
    else:
        assert result["run_start"] is None
        assert result["will_restart"] is None
    assert server.commands() == ["start", "status"]


def test_check_mode_runs_nothing(server, run_module):
    result = run(run_module, server, check_mode=True)
    assert not result["failed"], result
    assert result["changed"] is True
    assert result["commands"] == ["sacli start"]
    assert server.calls() == []


def test_broken_post_auth_script_fails_naming_auth(server, run_module):
    server.sacli("--key", "auth.module.post_auth_script", "--value", "def x(:", "ConfigPut")
    result = run(run_module, server)
    assert result["failed"] is True
    assert result["msg"] == "sacli start reported errors: auth"
    assert list(result["errors"]) == ["auth"]
    assert "post_auth_script" in result["errors"]["auth"][0][1]
    assert "status" not in server.commands()


def test_info_entries_are_messages(server, run_module):
    server.settings(start_info_entries=True)
    server.sacli("--key", "vpn.server.daemon.tcp.n_daemons", "--value", "2", "ConfigPut")
    result = run(run_module, server)
    assert not result["failed"], result
    assert sorted(result["messages"]) == ["openvpn_0", "openvpn_1"]
    assert result["messages"]["openvpn_0"][0][0] == "info"


def test_errors_fault_fails(server, run_module):
    server.set_fault("start", action="errors", errors={"web": [["error", "cannot bind port 943"]]}, times=1)
    result = run(run_module, server)
    assert result["failed"] is True
    assert "web" in result["msg"]
    assert result["errors"] == {"web": [["error", "cannot bind port 943"]]}
    assert result["changed"] is True


def test_waits_until_services_are_on(server, run_module):
    server.set_fault("status", action="off", services=["openvpn_0"], times=2)
    result = run(run_module, server)
    assert not result["failed"], result
    assert result["status_checks"] == 3
    assert server.commands() == ["start", "status", "status", "status"]
    assert result["service_status"]["openvpn_0"] == "on"


def test_service_that_stays_off_fails(server, run_module):
    server.set_fault("status", action="off", services=["openvpn_1"])
    result = run(run_module, server, wait_timeout=1, wait_interval=0.2)
    assert result["failed"] is True
    assert result["msg"] == "services not on after 1 seconds: openvpn_1"
    assert result["service_status"]["openvpn_1"] == "off"
    assert result["status_checks"] >= 1
    assert server.commands()[0] == "start"


@pytest.mark.parametrize(
    ("fault", "message", "rc"),
    [
        (dict(action="exit", rc=4, stderr="agent unreachable"), "sacli start failed with exit code 4", 4),
        (dict(action="garbage"), "sacli start printed no JSON object", 0),
        (dict(action="garbage", stdout="RunStart warm None\n{\"errors\": \n"), "does not parse", 0),
    ],
    ids=["exit", "garbage", "truncated json"],
)
def test_start_failures(server, run_module, fault, message, rc):
    server.set_fault("start", times=1, **fault)
    result = run(run_module, server)
    assert result["failed"] is True
    assert message in result["msg"]
    assert result["rc"] == rc
    assert result["cmd"] == "sacli start"
    assert server.commands() == ["start"]


def test_no_wait_makes_no_status_call(server, run_module):
    result = run(run_module, server, wait=False)
    assert not result["failed"], result
    assert result["status_checks"] == 0
    assert server.commands() == ["start"]
