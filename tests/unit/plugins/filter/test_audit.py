"""audit_report: one entry per host from its server_state report, with a status and totals."""

import re

import pytest

from ansible_collections.ovpnas.fleet.plugins.filter.audit import FilterModule, audit_report

SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
LIVE_SCRIPT = "a" * 64
WANTED_SCRIPT = "c" * 64
LIVE_QUERY = "b" * 64
WANTED_QUERY = "d" * 64
HEADER = {"version": "0.1.0", "identity": "5f1c"}


def report(**changes):
    """What server_state with report=true returns (check mode) for a server in sync."""
    result = dict(
        changed=False, failed=False, restart_required=False, changed_keys=[], changed_users=[], commands=[],
        reads=["sacli ConfigQuery"],
        post_auth=dict(changed=False, sha256_before=LIVE_SCRIPT, sha256_after=LIVE_SCRIPT, backup_file=None),
        app_verify=dict(changed=False, sha256_before=LIVE_QUERY, sha256_after=LIVE_QUERY, backup_file=None),
        live=dict(post_auth=dict(sha256=LIVE_SCRIPT, header=HEADER, sealed=True),
                  app_verify=dict(sha256=LIVE_QUERY), applied="2026-12-01T08:00:00Z"),
    )
    result.update(changes)
    return result


SCRIPT_DRIFT = dict(changed=True, changed_keys=[SCRIPT_KEY, "host.name"], changed_users=["alice"],
                    post_auth=dict(changed=True, sha256_before=LIVE_SCRIPT, sha256_after=WANTED_SCRIPT))
QUERY_DRIFT = dict(changed=True, changed_keys=[QUERY_KEY],
                   app_verify=dict(changed=True, sha256_before=LIVE_QUERY, sha256_after=WANTED_QUERY))
PENDING = dict(changed=True, restart_required=True,
               pending_apply={"since": "2026-12-01T08:00:00Z", "changes": [SCRIPT_KEY]})


def entry(result, **host_vars):
    data = dict(host_vars)
    if result is not None:
        data["ovpnas_audit"] = result
    return audit_report(["as01"], {"as01": data})["hosts"][0]


def test_in_sync():
    got = entry(report(), ovpnas_cluster="east")
    assert got == dict(
        host="as01", cluster="east", status="in_sync", error=None,
        post_auth=dict(live_sha256=LIVE_SCRIPT, expected_sha256=LIVE_SCRIPT, match=True, live_header=HEADER,
                       sealed=True, applied="2026-12-01T08:00:00Z", differing_lines=[]),
        app_verify=dict(live_sha256=LIVE_QUERY, expected_sha256=LIVE_QUERY, match=True),
        differs=[], users_differ=[],
    )


def test_script_drift():
    got = entry(report(**SCRIPT_DRIFT))
    assert got["status"] == "drift"
    assert got["post_auth"]["differing_lines"] == []
    result = report(**SCRIPT_DRIFT)
    result["post_auth"] = dict(result["post_auth"], differing_lines=["-    return SUCCEEd", "+    return SUCCEED"])
    assert entry(result)["post_auth"]["differing_lines"] == ["-    return SUCCEEd", "+    return SUCCEED"]
    assert got["post_auth"]["match"] is False
    assert got["post_auth"]["live_sha256"] == LIVE_SCRIPT and got["post_auth"]["expected_sha256"] == WANTED_SCRIPT
    assert got["app_verify"]["match"] is True
    assert got["differs"] == [SCRIPT_KEY, "host.name"]
    assert got["users_differ"] == ["alice"]
    assert got["cluster"] is None


def test_query_file_drift():
    got = entry(report(**QUERY_DRIFT))
    assert got["status"] == "drift"
    assert got["app_verify"] == dict(live_sha256=LIVE_QUERY, expected_sha256=WANTED_QUERY, match=False)
    assert got["post_auth"]["match"] is True
    assert got["differs"] == [QUERY_KEY]


@pytest.mark.parametrize("changes", [dict(changed=True, changed_keys=["host.name"]),
                                     dict(changed=True, changed_users=["bob"])], ids=["key", "user"])
def test_a_key_or_a_user_alone_is_drift(changes):
    got = entry(report(**changes))
    assert got["status"] == "drift"
    assert got["post_auth"]["match"] is True and got["app_verify"]["match"] is True


def test_a_pending_apply_is_drift():
    got = entry(report(**PENDING))
    assert got["status"] == "drift"
    assert len(got["differs"]) == 1
    assert "not applied yet" in got["differs"][0] and "2026-12-01T08:00:00Z" in got["differs"][0]
    assert "sacli start" in got["differs"][0]
    # what is live is the wanted script; it only waits for its start
    assert got["post_auth"]["match"] is True


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (None, "no result (the host was not reached)"),
        ("not a dict", "no result (the host was not reached)"),
        (dict(unreachable=True, changed=False, msg="Failed to connect to the host via ssh"),
         "Failed to connect to the host via ssh"),
        (dict(unreachable=True), "unreachable"),
        (dict(failed=True, changed=False, msg="sacli ConfigQuery failed with exit code 1"),
         "sacli ConfigQuery failed with exit code 1"),
        (dict(failed=True), "the read failed"),
        # skipped for another reason than a standby (a `when`): nothing was read
        (dict(skipped=True, changed=False, skip_reason="Conditional result was False"), "the read failed"),
    ],
    ids=["no-result", "not-a-result", "unreachable", "unreachable-no-msg", "failed", "failed-no-msg", "skipped"],
)
def test_unreachable(result, error):
    got = entry(result)
    assert got["status"] == "unreachable"
    assert got["error"] == error
    assert got["differs"] == [] and got["post_auth"]["live_sha256"] is None


def test_a_failed_read_with_a_report_is_still_unreachable():
    got = entry(report(failed=True, msg="the read failed halfway"))
    assert got["status"] == "unreachable" and got["error"] == "the read failed halfway"


def test_standby():
    msg = "the Access Server agent socket /x/etc/sock/sagent does not exist; skipped, nothing was changed"
    got = entry(dict(changed=False, skipped=True, standby=True, msg=msg, changed_keys=[], changed_users=[]))
    assert got["status"] == "standby"
    assert got["error"] == msg
    assert got["differs"] == []


def test_a_script_the_inventory_does_not_manage_matches_what_is_live():
    result = report(**QUERY_DRIFT)
    del result["post_auth"]
    got = entry(result)
    assert got["post_auth"] == dict(live_sha256=LIVE_SCRIPT, expected_sha256=LIVE_SCRIPT, match=True,
                                    live_header=HEADER, sealed=True, applied="2026-12-01T08:00:00Z",
                                    differing_lines=[])
    assert got["status"] == "drift", "the query file still drifts"


def test_a_query_file_the_inventory_does_not_manage_matches_what_is_live():
    result = report()
    del result["app_verify"]
    got = entry(result)
    assert got["app_verify"] == dict(live_sha256=LIVE_QUERY, expected_sha256=LIVE_QUERY, match=True)
    assert got["status"] == "in_sync"


def test_no_script_live_nor_wanted():
    result = report(post_auth=dict(changed=False, sha256_before=None, sha256_after=None, backup_file=None),
                    live=dict(post_auth=dict(sha256=None, header={}, sealed=False), app_verify=dict(sha256=None),
                              applied=None))
    got = entry(result)
    assert got["status"] == "in_sync"
    assert got["post_auth"] == dict(live_sha256=None, expected_sha256=None, match=True, live_header={}, sealed=False,
                                    applied=None, differing_lines=[])


def test_report_totals_and_order():
    hostvars = {
        "as01": {"ovpnas_audit": report()},
        "as02": {"ovpnas_audit": report(**SCRIPT_DRIFT), "ovpnas_cluster": "east"},
        "as03": {"ovpnas_audit": report(**PENDING), "ovpnas_cluster": "east"},
        "as04": {"ovpnas_audit": dict(unreachable=True, msg="timed out")},
        "as05": {},
        "as06": {"ovpnas_audit": dict(failed=True, msg="sacli not found")},
        "as07": {"ovpnas_audit": dict(skipped=True, standby=True, msg="standby")},
        "as08": {"ovpnas_audit": report()},
        "unused": {"ovpnas_audit": report(**SCRIPT_DRIFT)},
    }
    hosts = ["as08", "as01", "as02", "as03", "as04", "as05", "as06", "as07"]
    got = audit_report(hosts, hostvars, inventory="inventories/prod.yml", version="0.1.0")
    assert [e["host"] for e in got["hosts"]] == hosts, "one entry per host asked for, in that order"
    assert [e["status"] for e in got["hosts"]] == ["in_sync", "in_sync", "drift", "drift", "unreachable",
                                                   "unreachable", "unreachable", "standby"]
    assert got["totals"] == dict(hosts=8, in_sync=2, drift=2, unreachable=3, standby=1)
    assert got["inventory"] == "inventories/prod.yml" and got["collection_version"] == "0.1.0"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", got["generated"])


def test_register_name_and_defaults():
    got = audit_report(["as01"], {"as01": {"drift_check": report(**SCRIPT_DRIFT)}}, "drift_check")
    assert got["hosts"][0]["status"] == "drift"
    assert got["inventory"] == "" and got["collection_version"] == ""
    # under the default name, the same host was never reported
    assert audit_report(["as01"], {"as01": {"drift_check": report()}})["hosts"][0]["status"] == "unreachable"


def test_no_hosts():
    got = audit_report([], {})
    assert got["hosts"] == []
    assert got["totals"] == dict(hosts=0, in_sync=0, drift=0, unreachable=0, standby=0)


def test_the_filter_is_registered():
    assert FilterModule().filters()["audit_report"] is audit_report
