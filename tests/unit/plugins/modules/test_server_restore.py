"""server_restore against the emulator: the last change taken back, whole, once, and only if still live."""

import hashlib
import json
import os
import stat
import sys

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import (
    sacli_config,
    sacli_start,
    sacli_userprop,
    server_restore,
    server_state,
)

SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
OLD_SCRIPT = (
    "# ovpnas.fleet.version: 0.0.9\n"
    "from pyovpn.plugin import SUCCEED, FAIL\n"
    "TOKEN = 'old-t0ken'  # ovpnas.fleet.secret\n\n\n"
    "def post_auth(authcred, attributes, authret, info):\n"
    "    return authret\n"
)
NEW_SCRIPT = (
    "# ovpnas.fleet.version: 0.1.0\n"
    "from pyovpn.plugin import SUCCEED, FAIL\n"
    "TOKEN = 'new-t0ken'  # ovpnas.fleet.secret\n\n\n"
    "def post_auth(authcred, attributes, authret, info):\n"
    "    if authret['user'] == 'mallory':\n"
    "        authret['status'] = FAIL\n"
    "    return authret\n"
)
QUERY_FILE = "all:FIREFOX=^mozilla firefox\n"
SECRETS = ("old-t0ken", "new-t0ken", "old-bind-pa55", "new-bind-pa55")
# what the change writes: the script (replaced), the query file and reroute_gw (new keys), two keys
# replaced (one a secret), a property of an existing user, and a user that did not exist
CHANGE = dict(
    post_auth=dict(content=NEW_SCRIPT, python=sys.executable),
    app_verify=dict(content=QUERY_FILE),
    settings={"host.name": "vpn.example.com", "auth.ldap.0.bind_pw": "new-bind-pa55",
              "vpn.client.routing.reroute_gw": False, "cs.tls_version_min": "1.2"},
    users={"openvpn": {"pvt_hw_addr": "00:11:22:33:44:55", "prop_superuser": "false"},
           "bob": {"pvt_hw_addr": "66:77:88:99:aa:bb"}},
)
CHANGED_KEYS = sorted([SCRIPT_KEY, QUERY_KEY, "host.name", "auth.ldap.0.bind_pw", "vpn.client.routing.reroute_gw",
                       "cs.tls_version_min"])


def fleet_dir(server):
    return os.path.join(server.path, "etc", "ovpnas_fleet")


def record_path(server):
    return os.path.join(fleet_dir(server), "last_change.json")


def pending_path(server):
    return os.path.join(fleet_dir(server), "pending_apply.json")


def writes(server):
    return [c for c in server.commands() if c in WRITES]


def restore(run_module, server, check_mode=False, diff=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(server_restore.main, args, check_mode=check_mode, diff=diff)


def start(run_module, server):
    result = run_module(sacli_start.main, dict(sacli_path=server.sacli_path, wait_interval=0.1))
    assert result["failed"] is False, result


def changed(server, run_module):
    """The server as it was, then the change made with server_state and applied; returns (config, users) before."""
    server.sacli("--key", SCRIPT_KEY, "--value", OLD_SCRIPT, "ConfigPut")
    server.sacli("--key", "auth.ldap.0.bind_pw", "--value", "old-bind-pa55", "ConfigPut")
    server.sacli("--key", "host.name", "--value", "old.example.com", "ConfigPut")
    before = server.config(), server.userprops()
    assert QUERY_KEY not in before[0] and "cs.tls_version_min" not in before[0] and "bob" not in before[1]
    result = run_module(server_state.main, dict(CHANGE, sacli_path=server.sacli_path))
    assert result["failed"] is False and result["changed_keys"] == CHANGED_KEYS, result
    assert result["changed_users"] == ["bob", "openvpn"]
    # the handler's start: the pending record of the change is gone, its record of the undo is not
    start(run_module, server)
    assert not os.path.exists(pending_path(server))
    assert os.path.exists(record_path(server))
    after = server.config()
    assert after[SCRIPT_KEY].rstrip("\n") == NEW_SCRIPT.rstrip("\n") and after["host.name"] == "vpn.example.com"
    return before


def test_restore_gives_back_exactly_the_previous_state(server, run_module):
    before_config, before_users = changed(server, run_module)
    result = restore(run_module, server)
    commands = server.commands()
    assert result["failed"] is False, result
    assert result["changed"] is True and result["restart_required"] is True
    assert result["restored_keys"] == CHANGED_KEYS
    assert result["restored_users"] == ["bob", "openvpn"]
    assert result["changed_since"] == []
    assert result["change_since"]
    assert server.config() == before_config
    assert server.userprops() == before_users
    # the script's hashes: the new one live before, the old one after
    assert result["post_auth"] == dict(
        sha256_before=hashlib.sha256(NEW_SCRIPT.rstrip("\n").encode()).hexdigest(),
        sha256_after=hashlib.sha256(OLD_SCRIPT.rstrip("\n").encode()).hexdigest())
    # the reads (keys, and the users the change wrote), then the writes as any change makes them: the users
    # first, the script last, after the query file and the keys it relies on
    assert commands[:2] == ["ConfigQuery", "UserPropGet"] and commands.count("ConfigQuery") == 1
    assert result["commands"][-1] == "sacli --key %s --value_file=<private file> ConfigPut" % SCRIPT_KEY
    assert "sacli --key %s ConfigDel" % QUERY_KEY in result["commands"]
    assert "sacli --key cs.tls_version_min ConfigDel" in result["commands"]
    # bob, whom the change created, goes whole
    assert result["commands"][0] == "sacli --user bob UserPropDelAll"
    assert "sacli --user openvpn --key prop_superuser --value_file=<private file> UserPropPut" in result["commands"]
    assert "sacli --user openvpn --key pvt_hw_addr UserPropDel" in result["commands"]
    assert len(result["commands"]) == len(commands) - 2


def test_restore_leaves_a_pending_apply_and_no_record(server, run_module):
    changed(server, run_module)
    result = restore(run_module, server)
    assert result["failed"] is False and result["restart_required"] is True, result
    assert not os.path.exists(record_path(server))
    assert stat.S_IMODE(os.stat(pending_path(server)).st_mode) == 0o600
    with open(pending_path(server)) as handle:
        pending = json.load(handle)
    assert pending["changes"] == sorted(CHANGED_KEYS + ["bob", "openvpn"])
    assert pending["sha256"] == {SCRIPT_KEY: hashlib.sha256(OLD_SCRIPT.rstrip("\n").encode()).hexdigest(),
                                 QUERY_KEY: None}
    # the next server_state run reports the restore as waiting for start
    state = run_module(server_state.main, dict(sacli_path=server.sacli_path))
    assert state["changed"] is True and state["restart_required"] is True
    assert SCRIPT_KEY in state["pending_apply"]["changes"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_second_restore_changes_nothing(server, run_module, check_mode):
    changed(server, run_module)
    assert restore(run_module, server)["changed"] is True
    restored = server.config(), server.userprops()
    again = restore(run_module, server, check_mode=check_mode)
    assert again["failed"] is False, again
    assert again["changed"] is False and again["restart_required"] is False
    assert again["restored_keys"] == [] and again["restored_users"] == [] and again["commands"] == []
    assert "nothing to restore" in again["msg"]
    assert server.commands() == [], "without a record, nothing is even read"
    assert (server.config(), server.userprops()) == restored


def test_check_mode_predicts_the_restore_and_changes_nothing(server, run_module):
    changed(server, run_module)
    live = server.config(), server.userprops()
    with open(record_path(server)) as handle:
        record = handle.read()
    check = restore(run_module, server, check_mode=True, diff=True)
    assert check["failed"] is False, check
    assert check["changed"] is True and check["restart_required"] is True
    assert server.commands() == ["ConfigQuery", "UserPropGet"], "check mode wrote something"
    assert (server.config(), server.userprops()) == live
    assert not os.path.exists(pending_path(server))
    with open(record_path(server)) as handle:
        assert handle.read() == record, "check mode keeps the record as it was"
    assert "bob" in check["diff"]["before"] and SCRIPT_KEY in check["diff"]["before"]

    real = restore(run_module, server)
    for key in ("restored_keys", "restored_users", "commands", "restart_required", "changed", "post_auth"):
        assert real[key] == check[key], key


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_key_edited_since_the_change_stops_the_restore(server, run_module, check_mode):
    changed(server, run_module)
    server.sacli("--key", "host.name", "--value", "by-hand.example.com", "ConfigPut")
    server.sacli("--key", QUERY_KEY, "--value", "all:OTHER=^other", "ConfigPut")
    live = server.config(), server.userprops()
    result = restore(run_module, server, check_mode=check_mode)
    assert result["failed"] is True
    assert result["changed_since"] == sorted(["host.name", QUERY_KEY])
    assert "changed since (%s)" % ", ".join(sorted(["host.name", QUERY_KEY])) in result["msg"]
    assert "nothing was restored" in result["msg"]
    assert result["changed"] is False
    assert writes(server) == []
    assert (server.config(), server.userprops()) == live
    assert os.path.exists(record_path(server)), "the record is kept for a forced restore"


def test_what_holds_its_value_from_before_the_change_is_no_edit(server, run_module):
    """A run killed among its writes leaves a record of them all: what it never wrote holds what was there before,
    which is nothing to restore and nothing to protect."""
    before_config, before_users = changed(server, run_module)
    server.sacli("--key", "host.name", "--value", before_config["host.name"], "ConfigPut")
    server.sacli("--key", QUERY_KEY, "ConfigDel")
    server.sacli("--user", "openvpn", "--key", "prop_superuser", "--value",
                 before_users["openvpn"]["prop_superuser"], "UserPropPut")
    # bob, whom the change creates, as if the killed run never created him
    server.sacli("--user", "bob", "UserPropDelAll")
    result = restore(run_module, server)
    assert result["failed"] is False, result
    assert result["changed_since"] == [] and result["users_changed_since"] == []
    assert "kept" not in result.get("msg", "") and not any("--user bob" in command for command in result["commands"])
    assert server.config() == before_config
    assert server.userprops() == before_users


def test_force_restores_what_was_edited_since(server, run_module):
    before_config, before_users = changed(server, run_module)
    server.sacli("--key", "host.name", "--value", "by-hand.example.com", "ConfigPut")
    result = restore(run_module, server, force=True)
    assert result["failed"] is False, result
    assert result["changed"] is True and result["changed_since"] == ["host.name"]
    assert server.config() == before_config
    assert server.userprops() == before_users
    assert not os.path.exists(record_path(server))


def test_every_write_before_the_start_is_taken_back_together(server, run_module):
    """Three tasks write (a script, then keys, then a user property) before one start: the restore undoes all three."""
    server.sacli("--key", SCRIPT_KEY, "--value", OLD_SCRIPT, "ConfigPut")
    server.sacli("--key", "host.name", "--value", "old.example.com", "ConfigPut")
    before = server.config(), server.userprops()
    path = dict(sacli_path=server.sacli_path)
    steps = (
        (server_state.main, dict(post_auth=dict(content=NEW_SCRIPT, python=sys.executable),
                                 settings={"host.name": "vpn.example.com"})),
        (sacli_config.main, dict(settings={"host.name": "second.example.com", "cs.tls_version_min": "1.2"})),
        (sacli_userprop.main, dict(name="openvpn", properties={"pvt_hw_addr": "00:11:22:33:44:55"})),
    )
    for main, args in steps:
        result = run_module(main, dict(args, **path))
        assert result["failed"] is False and result["changed"] is True, result
    result = restore(run_module, server)
    assert result["failed"] is False, result
    assert result["restored_keys"] == sorted([SCRIPT_KEY, "host.name", "cs.tls_version_min"])
    assert result["restored_users"] == ["openvpn"]
    assert (server.config(), server.userprops()) == before


def test_a_write_after_the_start_is_a_new_change(server, run_module):
    changed(server, run_module)
    applied = server.config(), server.userprops()
    result = run_module(sacli_config.main, dict(settings={"host.name": "later.example.com"},
                                                sacli_path=server.sacli_path))
    assert result["failed"] is False and result["changed"] is True, result
    result = restore(run_module, server)
    assert result["failed"] is False, result
    assert result["restored_keys"] == ["host.name"] and result["restored_users"] == []
    assert (server.config(), server.userprops()) == applied


def test_no_record_changes_nothing(server, run_module):
    result = restore(run_module, server)
    assert result["failed"] is False, result
    assert result["changed"] is False and result["restart_required"] is False
    assert result["msg"] == "no change recorded in %s: nothing to restore" % fleet_dir(server)
    assert server.commands() == []
    assert not os.path.exists(pending_path(server))


def write_record(server, text):
    os.makedirs(fleet_dir(server), mode=0o700, exist_ok=True)
    with open(record_path(server), "w") as handle:
        handle.write(text)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"undo": [["key", "host.name"', "cannot read"),
        ("[]", "not a record"),
        ("{}", "is not one the collection writes"),
        ('{"undo": {}, "after": {}}', "is not one the collection writes"),
        ('{"undo": [], "after": []}', "is not one the collection writes"),
        ('{"undo": [["key", "host.name"]], "after": {}}', "is not one the collection writes"),
        ('{"undo": [["drop_table", "host.name", null]], "after": {}}', "is not one the collection writes"),
        ('{"undo": [[1, 2, 3]], "after": {}}', "is not one the collection writes"),
        ('{"undo": [["user_prop", "alice", "pvt_hw_addr"]], "after": {}}',
         "is not one the collection writes"),
        ('{"undo": [["key", "host.name", 5]], "after": {}}', "is not one the collection writes"),
        ('{"undo": [["user_prop", "alice", [7, "x"]]], "after": {}}', "is not one the collection writes"),
        ('{"undo": [["restore_user", "alice", "type"]], "after": {}}', "is not one the collection writes"),
    ],
    ids=["truncated", "list", "empty", "undo-not-list", "after-not-dict", "short-entry", "unknown-kind",
         "not-strings", "prop-not-pair", "value-not-string", "prop-name-not-string",
         "user-not-properties"],
)
def test_a_malformed_record_fails_cleanly(server, run_module, record, message):
    write_record(server, record)
    live = server.config()
    result = restore(run_module, server)
    assert result["failed"] is True
    assert message in result["msg"] and "nothing was restored" in result["msg"]
    assert result["changed"] is False
    assert writes(server) == []
    assert server.config() == live
    assert os.path.exists(record_path(server))


def test_an_unreadable_record_fails_cleanly(server, run_module):
    os.makedirs(record_path(server))  # a folder where the record should be: open() fails
    result = restore(run_module, server)
    assert result["failed"] is True
    assert "cannot read %s" % record_path(server) in result["msg"] and "nothing was restored" in result["msg"]
    assert server.commands() == []


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_secrets_never_appear_in_the_result(server, run_module, check_mode):
    changed(server, run_module)
    result = restore(run_module, server, check_mode=check_mode, diff=True)
    assert result["failed"] is False, result
    shown = json.dumps(result)
    for secret in SECRETS:
        assert secret not in shown, secret
    assert "TOKEN = " not in shown


def test_secrets_never_appear_when_the_restore_fails(server, run_module):
    changed(server, run_module)
    server.sacli("--key", "auth.ldap.0.bind_pw", "--value", "edited-bind-pa55", "ConfigPut")
    result = restore(run_module, server)
    assert result["failed"] is True and result["changed_since"] == ["auth.ldap.0.bind_pw"]
    shown = json.dumps(result)
    for secret in (*SECRETS, "edited-bind-pa55"):
        assert secret not in shown, secret


def test_a_failed_write_undoes_the_restore_and_keeps_the_record(server, run_module):
    before_config, before_users = changed(server, run_module)
    changed_config, changed_users = server.config(), server.userprops()
    with open(record_path(server)) as handle:
        record = handle.read()
    # the first key the restore writes, after the users
    server.set_fault("configput", action="exit", rc=1, stderr="database is locked", times=1)
    result = restore(run_module, server)
    assert result["failed"] is True
    assert result["msg"] == "sacli ConfigPut failed with exit code 1; the writes made before it were undone"
    # all or nothing: the server holds the change whole, as before the restore, and nothing waits for start
    assert result["changed"] is False and result["restart_required"] is False
    assert (server.config(), server.userprops()) == (changed_config, changed_users)
    assert not os.path.exists(pending_path(server))
    with open(record_path(server)) as handle:
        assert handle.read() == record
    for secret in SECRETS:
        assert secret not in json.dumps(result), secret

    # the record is kept: the next restore takes the change back whole
    retry = restore(run_module, server)
    assert retry["failed"] is False, retry
    assert server.config() == before_config
    assert server.userprops() == before_users
    assert not os.path.exists(record_path(server))


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_user_properties_changed_since_are_kept_and_named(server, run_module, check_mode):
    before_config, before_users = changed(server, run_module)
    # during the gate: openvpn's address is edited by hand, bob (whom the change created) gets a property
    server.sacli("--user", "openvpn", "--key", "pvt_hw_addr", "--value", "aa:aa:aa:aa:aa:aa", "UserPropPut")
    server.sacli("--user", "bob", "--key", "prop_autologin", "--value", "true", "UserPropPut")
    live_users = server.userprops()

    result = restore(run_module, server, check_mode=check_mode)

    assert result["failed"] is False, result
    assert result["users_changed_since"] == ["bob", "openvpn.pvt_hw_addr"]
    assert result["msg"] == "kept what was changed since the change wrote it: bob, openvpn.pvt_hw_addr"
    assert result["restored_users"] == ["openvpn"]
    assert "sacli --user bob UserPropDelAll" not in result["commands"]
    assert not any("pvt_hw_addr" in command for command in result["commands"])
    if check_mode:
        assert writes(server) == [] and server.userprops() == live_users
        return
    # the keys and openvpn's other property are back; what someone else wrote stays
    assert server.config() == before_config
    users = server.userprops()
    assert users["bob"] == live_users["bob"]
    assert users["openvpn"]["pvt_hw_addr"] == "aa:aa:aa:aa:aa:aa"
    assert users["openvpn"].get("prop_superuser") == before_users["openvpn"].get("prop_superuser")


def test_a_user_the_change_created_and_nobody_touched_goes(server, run_module):
    changed(server, run_module)
    result = restore(run_module, server)
    assert result["users_changed_since"] == [] and "msg" not in result
    assert "bob" not in server.userprops()


def test_a_record_of_an_earlier_release_restores_users_as_before(server, run_module):
    _before_config, before_users = changed(server, run_module)
    with open(record_path(server)) as handle:
        record = json.load(handle)
    del record["users_after"]
    with open(record_path(server), "w") as handle:
        json.dump(record, handle)
    server.sacli("--user", "openvpn", "--key", "pvt_hw_addr", "--value", "aa:aa:aa:aa:aa:aa", "UserPropPut")

    result = restore(run_module, server)

    assert result["failed"] is False and result["users_changed_since"] == []
    assert server.userprops() == before_users
