"""sacli_start against the emulator: output variants, check mode, start errors and waiting for services."""

import json
import os
import re
import stat

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_start

# a generous timeout that is never waited out (services come up at once), a short interval
FAST = dict(wait_timeout=20, wait_interval=0.1)


def run(run_module, server, check_mode=False, **args):
    args = dict(FAST, **args)
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(sacli_start.main, args, check_mode=check_mode)


@pytest.mark.parametrize("output", ["full", "spaced", "json"])
def test_every_start_output(server, run_module, output):
    server.settings(start_output=output)
    server.sacli("--key", "cs.https.port", "--value", "8443", "ConfigPut")
    result = run(run_module, server)
    assert not result["failed"], result
    assert result["changed"] is True
    assert result["restarted"] == ["client_query", "iptables_web", "web"]
    assert result["commands"] == ["sacli start"]
    assert result["status_checks"] == 1
    assert result["last_restarted"]
    assert result["service_status"]["web"] == "on"
    if output != "json":
        assert result["run_start"] == "warm"
        assert result["will_restart"] == ["web", "client"]
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


# --- report_clients, standby, applied.json ---------------------------------------


def fleet_file(server, name):
    return os.path.join(server.path, "etc", "ovpnas_fleet", name)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def warnings(result):
    """The warnings' texts: plain strings, or (Ansible 2.19+) summaries whose event holds the message."""
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def write_pending(server, record):
    os.makedirs(os.path.dirname(fleet_file(server, "pending_apply.json")), mode=0o700, exist_ok=True)
    with open(fleet_file(server, "pending_apply.json"), "w") as handle:
        json.dump(record, handle)


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_report_clients_counts_before_the_start(server, run_module, check_mode):
    server.settings(vpn_clients=7)
    result = run(run_module, server, check_mode=check_mode, report_clients=True)
    assert not result["failed"], result
    assert result["vpn_clients"] == 7
    assert result["changed"] is True
    assert result["commands"] == ["sacli start"], "the count is a read, not a command that changes something"
    if check_mode:
        assert server.commands() == ["VPNSummary"], "check mode starts nothing"
        assert not os.path.exists(fleet_file(server, "applied.json"))
    else:
        assert server.commands() == ["VPNSummary", "start", "status"]


def test_no_count_without_report_clients(server, run_module):
    server.settings(vpn_clients=7)
    result = run(run_module, server)
    assert not result["failed"], result
    assert "vpn_clients" not in result
    assert "VPNSummary" not in server.commands()


def test_stopped_services_count_no_clients(make_server, run_module):
    server = make_server("--vpn-clients", "5", "--stopped")
    result = run(run_module, server, report_clients=True)
    assert not result["failed"], result
    assert result["vpn_clients"] == 0
    assert server.commands()[:2] == ["VPNSummary", "start"]


@pytest.mark.parametrize(
    "fault",
    [
        dict(action="garbage"),
        dict(action="garbage", stdout='{"n_clients": "many"}'),
        dict(action="garbage", stdout='{"n_clients": true}'),
        dict(action="garbage", stdout="[3]"),
        dict(action="exit", rc=1, stderr="VPNSummary: internal error"),
    ],
    ids=["html", "count-not-a-number", "count-a-boolean", "not-an-object", "exit"],
)
def test_a_summary_without_a_count_warns_and_still_starts(server, run_module, fault, module_warnings):
    server.settings(vpn_clients=3)
    server.set_fault("vpnsummary", times=1, **fault)
    result = run(run_module, server, report_clients=True)
    assert not result["failed"], result
    assert result["vpn_clients"] is None
    assert any("printed no client count" in warning for warning in warnings(result)), result
    assert result["changed"] is True
    assert server.commands() == ["VPNSummary", "start", "status"]
    assert result["pending_apply_cleared"] is False
    assert "applied" in read_json(fleet_file(server, "applied.json"))


# (check mode without report_clients calls nothing, so it cannot see a standby)
@pytest.mark.parametrize(("report_clients", "check_mode"), [(False, False), (True, False), (True, True)],
                         ids=["start", "report-clients", "report-clients-check"])
def test_a_standby_is_skipped(server, run_module, report_clients, check_mode):
    write_pending(server, {"since": "2026-12-01T08:00:00Z", "changes": ["host.name"]})
    server.settings(standby=True)
    result = run(run_module, server, check_mode=check_mode, report_clients=report_clients)
    assert result["failed"] is False, result
    assert result["skipped"] is True and result["standby"] is True
    assert result["changed"] is False
    assert "nothing was started" in result["msg"] and "agent socket" in result["msg"]
    # the first call failed, nothing came after it
    assert server.commands() == ["VPNSummary" if report_clients else "start"]
    assert [call["rc"] for call in server.calls()] == [1]
    assert "pending_apply_cleared" not in result
    assert os.path.exists(fleet_file(server, "pending_apply.json")), "a skipped start applied nothing"
    assert not os.path.exists(fleet_file(server, "applied.json"))


def test_a_failing_start_on_a_running_node_is_no_standby(server, run_module):
    server.set_fault("start", action="exit", rc=1, stderr="agent error", times=1)
    result = run(run_module, server)
    assert result["failed"] is True
    assert "standby" not in result and "skipped" not in result


def test_every_successful_start_notes_applied(server, run_module):
    result = run(run_module, server)
    assert not result["failed"], result
    assert stat.S_IMODE(os.stat(fleet_file(server, "applied.json")).st_mode) == 0o600
    applied = read_json(fleet_file(server, "applied.json"))
    # nothing named: no script or query file noted as applied
    assert applied == {"applied": applied["applied"], "sha256": {}}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", applied["applied"])


def test_what_earlier_starts_applied_is_kept_for_what_a_start_does_not_name(server, run_module):
    script, query_file = "auth.module.post_auth_script", "vpn.client.app_verify"
    assert not run(run_module, server, record={"sha256": {script: "s1", query_file: "q1"}})["failed"]
    assert not run(run_module, server, record={"sha256": {script: "s2"}})["failed"]
    assert read_json(fleet_file(server, "applied.json"))["sha256"] == {script: "s2", query_file: "q1"}
    assert not run(run_module, server)["failed"]
    assert read_json(fleet_file(server, "applied.json"))["sha256"] == {script: "s2", query_file: "q1"}


def test_record_is_noted_when_nothing_is_pending(server, run_module):
    record = {"sha256": {"auth.module.post_auth_script": "89e6c98d9288"}}
    result = run(run_module, server, record=record)
    assert not result["failed"], result
    assert result["pending_apply_cleared"] is False
    applied = read_json(fleet_file(server, "applied.json"))
    assert applied["sha256"] == record["sha256"]
    assert set(applied) == {"sha256", "applied"}


def test_a_pending_record_wins_over_record(server, run_module):
    pending = {"since": "2026-12-01T08:00:00Z", "changes": ["auth.module.post_auth_script"],
               "sha256": {"auth.module.post_auth_script": "from-pending"}}
    write_pending(server, pending)
    result = run(run_module, server, record={"sha256": {"auth.module.post_auth_script": "from-record"}})
    assert not result["failed"], result
    assert result["pending_apply_cleared"] is True
    assert not os.path.exists(fleet_file(server, "pending_apply.json"))
    applied = read_json(fleet_file(server, "applied.json"))
    assert applied == dict(pending, applied=applied["applied"])


def test_a_gated_start_keeps_the_pending_record_for_its_gate(server, run_module):
    pending = {"since": "2026-12-01T08:00:00Z", "changes": ["auth.module.post_auth_script"],
               "sha256": {"auth.module.post_auth_script": "from-pending"}}
    write_pending(server, pending)
    result = run(run_module, server, gated=True, record={"sha256": {}})
    assert not result["failed"], result
    assert result["pending_apply_cleared"] is False
    kept = read_json(fleet_file(server, "pending_apply.json"))
    assert kept == dict(pending, started=kept["started"]) and kept["started"]
    assert not os.path.exists(fleet_file(server, "applied.json")), "the gate notes what was applied"


@pytest.mark.parametrize(
    "fault",
    [
        ("start", dict(action="exit", rc=1)),
        ("start", dict(action="errors", errors={"web": [["error", "cannot bind port 943"]]})),
        ("status", dict(action="off", services=["openvpn_0"])),
    ],
    ids=["start-exit", "start-errors", "service-off"],
)
def test_a_failed_start_notes_nothing(server, run_module, fault):
    write_pending(server, {"since": "2026-12-01T08:00:00Z", "changes": ["host.name"]})
    server.set_fault(fault[0], **fault[1])
    result = run(run_module, server, record={"sha256": {}}, wait_timeout=1, wait_interval=0.2)
    assert result["failed"] is True
    assert not os.path.exists(fleet_file(server, "applied.json"))
    assert os.path.exists(fleet_file(server, "pending_apply.json"))


def test_state_dir_is_where_applied_is_noted(server, run_module, tmp_path):
    state = tmp_path / "state"
    result = run(run_module, server, state_dir=str(state), record={"sha256": {}})
    assert not result["failed"], result
    assert json.loads((state / "applied.json").read_text())["sha256"] == {}
    assert not os.path.exists(fleet_file(server, "applied.json"))
