"""sacli_userprop against the emulator: kinds, --pfilt, absent users, restart_required and secrets."""

import json

import pytest
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_userprop

# how Ansible shows a value of no_log_values in a result
HIDDEN = remove_values("secret", {"secret"})


def run(run_module, server, check_mode=False, diff=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(sacli_userprop.main, args, check_mode=check_mode, diff=diff)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (dict(kind="group"), {"type": "group", "group_declare": "true"}),
        (dict(kind="group", properties={"group_declare": False, "prop_deny_web": True}),
         {"type": "group", "group_declare": "false", "prop_deny_web": "true"}),
        (dict(properties={"prop_autologin": True}), {"type": "user_connect", "prop_autologin": "true"}),
    ],
    ids=["bare group", "group, explicit properties win", "user"],
)
def test_kind_sets_the_type_of_new_names(server, run_module, args, expected):
    result = run(run_module, server, name="eng", **args)
    assert not result["failed"], result
    assert result["changed_users"] == ["eng"]
    assert server.userprops()["eng"] == expected
    assert result["commands"][0] == "sacli --user eng --key type --value_file=<private file> UserPropPut"


def test_kind_does_not_retype_an_existing_user(server, run_module):
    result = run(run_module, server, name="openvpn", kind="group", properties={"prop_deny_web": False})
    assert not result["failed"], result
    props = server.userprops()["openvpn"]
    assert props["type"] == "user_connect"
    assert "group_declare" not in props


@pytest.mark.parametrize(
    ("args", "pfilt"),
    [
        (dict(name="alice", properties={"pvt_hw_addr": "00:00:00:00:00:01"}), True),
        (dict(users={"alice": {"pvt_hw_addr": "00:00:00:00:00:01"}, "bob": {"pvt_hw_addr": "00:00:00:00:00:02"}}),
         False),
    ],
    ids=["name", "users"],
)
def test_pfilt_only_for_a_single_user(server, run_module, args, pfilt):
    result = run(run_module, server, **args)
    assert not result["failed"], result
    reads = [c for c in server.calls() if c["command"] == "UserPropGet"]
    assert len(reads) == 1
    assert ("pfilt" in reads[0]["options"]) is pfilt


def test_absent_missing_user_is_unchanged(server, run_module):
    before = server.userprops()
    result = run(run_module, server, diff=True, name="nobody", state="absent")
    assert not result["failed"], result
    assert result["changed"] is False
    assert result["changed_users"] == [] and result["commands"] == []
    assert result["diff"] == {"before": {}, "after": {}}
    assert server.commands() == ["UserPropGet"]
    assert server.userprops() == before


@pytest.mark.parametrize(
    ("properties", "state", "restart"),
    [
        ({"pvt_hw_addr": "00:00:00:00:00:09"}, "present", False),
        ({"pvt_hw_addr": None}, "absent", False),
        ({"pvt_hw_addr": "00:00:00:00:00:09", "conn_group": "eng"}, "present", True),
        ({"prop_autologin": None}, "absent", True),
    ],
    ids=["pvt put", "pvt del", "pvt and conn_group", "prop del"],
)
def test_restart_required_only_for_non_private_properties(server, run_module, properties, state, restart):
    server.sacli("--user", "alice", "--key", "type", "--value", "user_connect", "UserPropPut")
    server.sacli("--user", "alice", "--key", "pvt_hw_addr", "--value", "00:00:00:00:00:01", "UserPropPut")
    server.sacli("--user", "alice", "--key", "prop_autologin", "--value", "true", "UserPropPut")
    result = run(run_module, server, name="alice", properties=properties, state=state)
    assert not result["failed"], result
    assert result["changed"] is True
    assert result["restart_required"] is restart


def test_password_digest_is_masked(server, run_module):
    server.set_password("alice", "first-password")
    old_digest = server.userprops()["alice"]["pvt_password_digest"]
    new_digest = "$P$NewDigestValue0123456789abcdef"
    result = run(run_module, server, diff=True, name="alice", properties={"pvt_password_digest": new_digest})
    assert not result["failed"], result
    assert server.userprops()["alice"]["pvt_password_digest"] == new_digest
    assert result["diff"]["before"]["alice"]["pvt_password_digest"] == HIDDEN
    assert result["diff"]["after"]["alice"]["pvt_password_digest"] == HIDDEN
    assert result["diff"]["after"]["alice"]["type"] == "user_connect"
    assert result["restart_required"] is False
    dumped = json.dumps(result)
    assert old_digest not in dumped
    assert new_digest not in dumped
