"""server_state against the emulator: one read, the difference, tests before loading, undo, secrets."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.ovpnas.fleet.plugins.modules import server_state

# how Ansible shows a value of no_log_values in a result
HIDDEN = remove_values("secret", {"secret"})

SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
HARNESS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "post_auth", "files",
                       "policy_harness.py")
SCRIPT = (
    "# ovpnas.fleet.version: 0.1.0\n"
    "from pyovpn.plugin import SUCCEED, FAIL\n"
    "SYNCHRONOUS = True\n"
    "TOKEN = 's3cr3t-t0ken'  # ovpnas.fleet.secret\n\n\n"
    "def post_auth(authcred, attributes, authret, info):\n"
    "    if authret['user'] == 'mallory':\n"
    "        authret['status'] = FAIL\n"
    "        authret['client_reason'] = 'no'\n"
    "    return authret\n"
)
CASES = [
    {"name": "alice passes", "user": "alice", "expect": {"status": "SUCCEED"}},
    {"name": "mallory is refused", "user": "mallory", "expect": {"status": "FAIL", "client_reason": "no"}},
]
QUERY_FILE = "all:FIREFOX=^mozilla firefox\n"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}


def harness():
    with open(HARNESS) as handle:
        return handle.read()


def post_auth(**changes):
    option = {"content": SCRIPT, "python": sys.executable, "policy_harness": harness(), "policy_cases": CASES,
              "secrets": ["s3cr3t-t0ken"]}
    option.update(changes)
    return option


def everything(**changes):
    args = {
        "settings": {"host.name": "vpn.example.com", "vpn.client.routing.reroute_gw": False},
        "app_verify": {"content": QUERY_FILE},
        "post_auth": post_auth(required_apps=[{"name": "FIREFOX", "platform": "all"}]),
        "users": {"alice": {"pvt_hw_addr": "00:11:22:33:44:55"}},
    }
    args.update(changes)
    return args


def run(run_module, server, check_mode=False, diff=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(server_state.main, args, check_mode=check_mode, diff=diff)


def applied(run_module, server):
    """What the ovpnas_fleet_apply handler does after a change: start, which clears the pending record."""
    from ansible_collections.ovpnas.fleet.plugins.modules import sacli_start

    result = run_module(sacli_start.main, dict(sacli_path=server.sacli_path, wait_interval=0.1))
    assert result["failed"] is False and result["pending_apply_cleared"] is True, result


def writes(server):
    return [c for c in server.commands() if c in WRITES]


def test_four_runs(server, run_module):
    """check, real, check again, real again: the check predicts the real run; the repeat costs the read."""
    check = run(run_module, server, check_mode=True, diff=True, **everything())
    assert check["changed"] is True and check["restart_required"] is True
    assert server.commands() == ["ConfigQuery", "UserPropGet"], "check mode wrote something"
    assert server.config().get(SCRIPT_KEY) is None
    assert check["validation"]["cases_passed"] == 2, "check mode must test the script like a real run"

    real = run(run_module, server, diff=True, **everything())
    assert real["changed"] is True and real["failed"] is False, real
    for key in ("changed_keys", "changed_users", "commands", "restart_required", "diff"):
        assert real[key] == check[key], key
    assert real["changed_keys"] == sorted([SCRIPT_KEY, "host.name", QUERY_KEY, "vpn.client.routing.reroute_gw"])
    # the script last: what it relies on is in place before it can run
    assert server.commands() == ["ConfigQuery", "UserPropGet", "UserPropPut", "UserPropPut", "ConfigPut",
                                 "ConfigPut", "ConfigPut", "ConfigPut"]
    assert real["commands"][-1] == "sacli --key %s --value_file=<private file> ConfigPut" % SCRIPT_KEY
    config = server.config()
    assert config[SCRIPT_KEY].rstrip("\n") == SCRIPT.rstrip("\n")
    assert config[QUERY_KEY].rstrip("\n") == QUERY_FILE.rstrip("\n")
    assert config["host.name"] == "vpn.example.com"
    assert config["vpn.client.routing.reroute_gw"] == "false"
    assert server.userprops()["alice"]["pvt_hw_addr"] == "00:11:22:33:44:55"
    applied(run_module, server)

    for check_mode in (True, False):
        again = run(run_module, server, check_mode=check_mode, diff=True, **everything())
        assert again["changed"] is False and again["restart_required"] is False
        assert again["commands"] == [] and again.get("diff", []) == []
        assert server.commands() == ["ConfigQuery", "UserPropGet"]
        assert "validation" not in again, "an unchanged script is not tested again"


def test_no_op_without_users_is_one_read(server, run_module):
    args = everything(users={})
    run(run_module, server, **args)
    applied(run_module, server)
    result = run(run_module, server, **args)
    assert result["changed"] is False
    assert server.commands() == ["ConfigQuery"]
    assert result["reads"] == ["sacli ConfigQuery"]
    assert result["post_auth"]["sha256_before"] is not None
    assert result["post_auth"]["sha256_before"] == result["post_auth"]["sha256_after"]


def test_only_what_differs_is_written(server, run_module):
    run(run_module, server, **everything())
    applied(run_module, server)
    result = run(run_module, server, **everything(settings={"host.name": "other.example.com",
                                                            "vpn.client.routing.reroute_gw": False}))
    assert result["changed_keys"] == ["host.name"]
    assert writes(server) == ["ConfigPut"]
    assert "validation" not in result, "the script did not change: it is not tested again"


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_script_that_does_not_compile_is_not_loaded(server, run_module, check_mode):
    broken = SCRIPT.replace("def post_auth(authcred", "def post_auth(authcred,,")
    result = run(run_module, server, check_mode=check_mode, **everything(post_auth=post_auth(content=broken)))
    assert result["failed"] is True
    assert "does not compile with %s" % sys.executable in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert writes(server) == []


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_failing_policy_case_stops_the_host(server, run_module, check_mode):
    cases = CASES + [{"name": "mallory gets in", "user": "mallory", "expect": {"status": "SUCCEED"}}]
    result = run(run_module, server, check_mode=check_mode, **everything(post_auth=post_auth(policy_cases=cases)))
    assert result["failed"] is True
    assert "a policy case failed: mallory gets in" in result["msg"]
    assert writes(server) == []
    assert server.config().get(SCRIPT_KEY) is None


def test_every_interpreter_compiles(server, run_module, tmp_path):
    fake = tmp_path / "python2"
    fake.write_text("#!/bin/sh\necho 'SyntaxError: Missing parentheses' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = run(run_module, server, **everything(post_auth=post_auth(validate_interpreters=[str(fake)])))
    assert result["failed"] is True
    assert "does not compile with %s: SyntaxError: Missing parentheses" % fake in result["msg"]
    assert writes(server) == []


@pytest.mark.parametrize("interpreter", ["/nonexistent/python3", "no-such-python3"])
def test_an_interpreter_that_is_not_there_is_named(server, run_module, interpreter):
    result = run(run_module, server, **everything(post_auth=post_auth(python=interpreter)))
    assert result["failed"] is True
    message = "the interpreter %r that must compile the post-auth script is not on the server" % interpreter
    assert message in result["msg"]
    assert writes(server) == []


@pytest.mark.parametrize(
    ("query_file", "apps", "missing"),
    [
        (None, [{"name": "FIREFOX", "platform": "all"}], "FIREFOX (all)"),
        ("win:FIREFOX=^mozilla\n", [{"name": "FIREFOX", "platform": "all"}], "FIREFOX (all)"),
        ("win:FIREFOX=^mozilla\nmac:FIREFOX=^firefox\n", [{"name": "FIREFOX", "platform": "all"}], None),
        ("all:DEFENDER=^defender\n", [{"name": "DEFENDER", "platform": "win"}, {"name": "FIREFOX", "platform": "mac"}],
         "FIREFOX (mac)"),
    ],
    ids=["no query file", "windows only", "both platforms", "one of two"],
)
def test_policy_needs_its_applications_in_the_query_file(server, run_module, query_file, apps, missing):
    args = everything(users={}, post_auth=post_auth(required_apps=apps))
    if query_file is None:
        del args["app_verify"]
    else:
        args["app_verify"] = {"content": query_file}
    result = run(run_module, server, **args)
    if missing is None:
        assert result["failed"] is False, result
        return
    assert result["failed"] is True
    assert "checks %s, which the query file (vpn.client.app_verify) does not list" % missing in result["msg"]
    assert writes(server) == []


def test_policy_is_checked_against_the_live_query_file(server, run_module):
    server.sacli("--key", QUERY_KEY, "--value", "all:FIREFOX=^mozilla firefox", "ConfigPut")
    args = everything(users={})
    del args["app_verify"]
    assert run(run_module, server, **args)["failed"] is False
    server.sacli("--key", QUERY_KEY, "ConfigDel")
    result = run(run_module, server, **args)
    assert result["failed"] is True, "a query file removed by hand would lock every Windows and macOS client out"
    assert server.commands() == ["ConfigQuery"]


def test_failed_write_undoes_the_writes_before_it(server, run_module):
    before = server.config()
    server.set_fault("configput", action="exit", after=2, times=1, stderr="database is locked")
    result = run(run_module, server, **everything(users={}))
    assert result["failed"] is True
    assert "the writes made before it were undone" in result["msg"]
    server.root.clear_faults()
    assert server.config() == before


def test_failed_write_undoes_new_users(server, run_module):
    server.set_fault("configput", action="exit", times=1)
    result = run(run_module, server, **everything())
    assert result["failed"] is True
    server.root.clear_faults()
    assert "alice" not in server.userprops()
    assert server.config().get(SCRIPT_KEY) is None


def test_removal_backs_up_script_and_query_file(server, run_module):
    run(run_module, server, **everything())
    applied(run_module, server)
    result = run(run_module, server, post_auth={"state": "absent"}, app_verify={"state": "absent"})
    assert result["changed_keys"] == [SCRIPT_KEY, QUERY_KEY]
    assert writes(server) == ["ConfigDel", "ConfigDel"]
    assert SCRIPT_KEY not in server.config() and QUERY_KEY not in server.config()
    for option, text in (("post_auth", SCRIPT), ("app_verify", QUERY_FILE)):
        path = result[option]["backup_file"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            assert handle.read().rstrip("\n") == text.rstrip("\n")
    applied(run_module, server)
    assert run(run_module, server, post_auth={"state": "absent"}, app_verify={"state": "absent"})["changed"] is False


def test_secrets_are_masked_everywhere(server, run_module):
    args = everything(settings={"auth.ldap.0.bind_pw": "bind-pa55"},
                      users={"alice": {"pvt_totp_secret": "JBSWY3DPEHPK3PXP", "pvt_hw_addr": "00:11:22:33:44:55"}})
    server.sacli("--key", "auth.ldap.0.bind_pw", "--value", "old-bind-pa55", "ConfigPut")
    for check_mode in (True, False):
        result = run(run_module, server, check_mode=check_mode, diff=True, **args)
        shown = json.dumps(result)
        for secret in ("bind-pa55", "old-bind-pa55", "JBSWY3DPEHPK3PXP", "s3cr3t-t0ken"):
            assert secret not in shown, secret
        keys = result["diff"][0]
        assert keys["before"] == {"auth.ldap.0.bind_pw": HIDDEN}
        assert keys["after"] == {"auth.ldap.0.bind_pw": HIDDEN}
        assert result["diff"][1]["after"]["alice"]["pvt_totp_secret"] == HIDDEN
        assert "TOKEN = " not in result["diff"][-1]["after"]
        assert "******** # ovpnas.fleet.secret" in result["diff"][-1]["after"]
    assert server.userprops()["alice"]["pvt_totp_secret"] == "JBSWY3DPEHPK3PXP"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"settings": {SCRIPT_KEY: "x"}}, "is managed with the post_auth and app_verify options"),
        ({"absent_keys": [QUERY_KEY]}, "is managed with the post_auth and app_verify options"),
        ({"settings": {"bad key": "x"}}, "invalid configuration key"),
        ({"settings": {"host.name": ["a"]}}, "settings.host.name must be a string, number or boolean"),
        ({"post_auth": {"content": " \n"}}, "post_auth.content is empty"),
        ({"app_verify": {"state": "present"}}, "app_verify.content is empty"),
        ({"users": {"alice": ["x"]}}, "users.alice must map property names to values"),
    ],
    ids=["script key", "query key", "whitespace", "list value", "empty script", "no query file", "users shape"],
)
def test_bad_arguments_fail_before_the_read(server, run_module, args, message):
    result = run(run_module, server, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert server.commands() == []


def test_read_failure_is_reported_without_output(server, run_module):
    server.set_fault("configquery", action="garbage", stdout='{"auth.ldap.0.bind_pw": "bind-pa55"')
    result = run(run_module, server, **everything())
    assert result["failed"] is True
    assert "bind-pa55" not in json.dumps(result)
    assert writes(server) == []


def test_policy_is_checked_against_the_query_file_an_earlier_task_loads(server, run_module):
    """Check mode: the host_checker role has not written its file, the real run will have."""
    args = everything(users={}, post_auth=post_auth(required_apps=[{"name": "FIREFOX", "platform": "all"}],
                                                    query_file=QUERY_FILE))
    del args["app_verify"]
    result = run(run_module, server, check_mode=True, **args)
    assert result["failed"] is False, result
    args["post_auth"]["query_file"] = "win:FIREFOX=^mozilla\n"
    result = run(run_module, server, check_mode=True, **args)
    assert result["failed"] is True and "checks FIREFOX (all)" in result["msg"]


def fleet_dir(server):
    return os.path.join(server.path, "etc", "ovpnas_fleet")


def test_change_leaves_a_pending_record_until_a_healthy_start(server, run_module):
    from ansible_collections.ovpnas.fleet.plugins.modules import sacli_start

    first = run(run_module, server, **everything())
    assert first["changed"] is True
    record = os.path.join(fleet_dir(server), "pending_apply.json")
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    with open(record) as handle:
        assert SCRIPT_KEY in json.load(handle)["changes"]

    # the start never happened: the next run, with nothing else to change, still reports the change
    for check_mode in (True, False):
        again = run(run_module, server, check_mode=check_mode, **everything())
        assert again["changed"] is True and again["restart_required"] is True
        assert again["commands"] == [] and writes(server) == []
        assert SCRIPT_KEY in again["pending_apply"]["changes"]

    server.set_fault("start", action="exit", rc=1, times=1)
    failed = run_module(sacli_start.main, dict(sacli_path=server.sacli_path, wait_interval=0.1))
    assert failed["failed"] is True and os.path.exists(record)
    started = run_module(sacli_start.main, dict(sacli_path=server.sacli_path, wait_interval=0.1))
    assert started["failed"] is False and started["pending_apply_cleared"] is True
    assert not os.path.exists(record)
    assert run(run_module, server, **everything())["changed"] is False


def test_a_record_of_an_earlier_task_of_the_same_run_is_not_reported_as_never_applied(server, run_module,
                                                                                      module_warnings):
    # the host_checker role's task writes the query file; the post_auth role's task follows before the handler
    first = run(run_module, server, run="ctl:41:900", app_verify=dict(content=QUERY_FILE))
    assert first["changed"] is True
    with open(os.path.join(fleet_dir(server), "pending_apply.json")) as handle:
        assert json.load(handle)["run"] == "ctl:41:900"
    same = run(run_module, server, run="ctl:41:900", app_verify=dict(content=QUERY_FILE))
    assert "was never applied" not in str(same.get("warnings"))
    # still a change to apply (as if the task had made it): safe should the earlier task's handler never run
    assert (same["changed"], same["restart_required"]) == (True, True)
    assert QUERY_KEY in same["pending_apply"]["changes"] and writes(server) == []
    # a later task of the same run that writes keeps the record and its run, and adds its change
    more = run(run_module, server, run="ctl:41:900", post_auth=post_auth())
    assert more["changed"] is True
    with open(os.path.join(fleet_dir(server), "pending_apply.json")) as handle:
        record = json.load(handle)
    assert record["run"] == "ctl:41:900" and {SCRIPT_KEY, QUERY_KEY} <= set(record["changes"])
    # another run (or a task that names none) finds a change that was never applied
    for other in ("ctl:42:950", None):
        module_warnings.clear()
        later = run(run_module, server, run=other, app_verify=dict(content=QUERY_FILE))
        assert later["changed"] is True and later["restart_required"] is True
        assert QUERY_KEY in later["pending_apply"]["changes"]
        assert "was never applied" in str(later["warnings"])


def test_private_property_changes_leave_no_record(server, run_module):
    server.sacli("--user", "alice", "--key", "type", "--value", "user_connect", "UserPropPut")
    result = run(run_module, server, users={"alice": {"pvt_hw_addr": "00:11:22:33:44:55"}})
    assert result["changed"] is True and result["restart_required"] is False
    assert not os.path.exists(os.path.join(fleet_dir(server), "pending_apply.json"))


def test_undone_change_leaves_no_record(server, run_module):
    server.set_fault("configput", action="exit", after=1, times=1)
    result = run(run_module, server, **everything(users={}))
    assert result["failed"] is True and "undone" in result["msg"]
    assert not os.path.exists(os.path.join(fleet_dir(server), "pending_apply.json"))


def test_another_run_holding_the_lock_is_waited_for_then_reported(server, run_module):
    import fcntl

    os.makedirs(fleet_dir(server), mode=0o700, exist_ok=True)
    with open(os.path.join(fleet_dir(server), "lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps({"pid": 4242, "host": "ci", "since": "2026-12-01T08:00:00Z"}))
        handle.flush()
        result = run(run_module, server, lock_timeout=1, **everything())
    assert result["failed"] is True
    assert "another run (pid 4242 on ci) since 2026-12-01T08:00:00Z holds the lock" in result["msg"]
    assert server.commands() == [], "nothing is read while another run holds the lock"
    assert run(run_module, server, lock_timeout=1, **everything())["changed"] is True


def test_a_change_another_run_still_applies_is_waited_for(server, run_module, module_warnings):
    """A pending record of a run that still goes (between its write and its gate): a run that would write waits,
    reading nothing, until that run has ended; check mode says what it waits for; a record of a run that has ended is
    started again."""
    first = run(run_module, server, run="ctl:boot:900:77", app_verify=dict(content=QUERY_FILE))
    assert first["changed"] is True
    alive = ["ctl:boot:900:77"]
    waited = run(run_module, server, run="ctl:boot:950:80", runs_alive=alive, lock_timeout=2, **everything())
    assert waited["failed"] is True and waited["changed"] is False
    assert waited["msg"].startswith("another run (pid 900 on ctl) has been applying its change on this server since")
    assert server.commands() == [], "nothing is read or written while another run applies its change"
    check = run(run_module, server, check_mode=True, run="ctl:boot:950:80", runs_alive=alive, **everything())
    assert check["changed"] is True and QUERY_KEY in check["pending_apply"]["changes"]
    assert "another run (pid 900 on ctl) is applying a change" in str(check["warnings"])
    assert "never applied" not in str(check["warnings"])
    module_warnings.clear()
    # the run ended (killed before its gate): its change is started again by the next
    later = run(run_module, server, run="ctl:boot:950:80", runs_alive=["ctl:boot:901:78"], **everything())
    assert later["failed"] is False and later["changed"] is True
    assert "was never applied" in str(later["warnings"])


def test_a_server_changed_since_the_plan_is_not_written_over(server, run_module):
    plan = run(run_module, server, check_mode=True, **everything())
    assert set(plan["read_sha256"]) == {"config", "users"}
    # the same read: the plan holds
    same = run(run_module, server, check_mode=True, **everything())
    assert same["read_sha256"] == plan["read_sha256"]
    # another run writes a key the change manages, then one of its users
    server.sacli("--key", "host.name", "--value", "other.example.com", "ConfigPut")
    moved = run(run_module, server, planned_read=plan["read_sha256"], **everything())
    assert moved["failed"] is True and moved["overtaken"] is True
    assert "changed after this run planned its change (the keys of what it manages" in moved["msg"]
    assert writes(server) == [] and server.config()["host.name"] == "other.example.com"
    replan = run(run_module, server, check_mode=True, **everything())
    server.sacli("--user", "alice", "--key", "pvt_hw_addr", "--value", "00:11:22:33:44:99", "UserPropPut")
    moved = run(run_module, server, planned_read=replan["read_sha256"], **everything())
    assert moved["failed"] is True and "(the users of what it manages" in moved["msg"] and writes(server) == []
    # a key the change does not manage is no change to what it planned
    replan = run(run_module, server, check_mode=True, **everything())
    server.sacli("--key", "vpn.server.port_share.enable", "--value", "true", "ConfigPut")
    done = run(run_module, server, planned_read=replan["read_sha256"], **everything())
    assert done["failed"] is False and done["changed"] is True and SCRIPT_KEY in done["changed_keys"]


def test_an_unwritable_pending_record_stops_before_any_write(server, run_module):
    # the record's place is taken by a folder: writing it fails, as on a full disk
    os.makedirs(os.path.join(fleet_dir(server), "pending_apply.json", "in-the-way"))
    before = server.config(), server.userprops()
    result = run(run_module, server, **everything())
    # (a record that cannot be read counts as a change waiting for start: the task reports changed)
    assert result["failed"] is True, result
    assert "cannot write the pending-apply record" in result["msg"] and "nothing was changed" in result["msg"]
    assert [c for c in server.commands() if c.startswith(("Config", "UserProp")) and c.endswith(("Put", "Del"))] == []
    assert (server.config(), server.userprops()) == before


def test_a_state_folder_that_cannot_be_used_is_reported(server, run_module, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    result = run(run_module, server, state_dir=str(blocked), **everything())
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("cannot use %s: " % blocked) and result["msg"].endswith("nothing was changed")
    assert server.commands() == []


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_user_name_that_looks_like_an_option_is_refused_before_any_write(server, run_module, check_mode):
    before = server.config(), server.userprops()
    result = run(run_module, server, check_mode=check_mode,
                 **everything(users={"alice": {"pvt_hw_addr": "00:11:22:33:44:55"}, "--user=root": {"type": "x"}}))
    assert result["failed"] is True, result
    assert "the user name '--user=root' starts with '-'" in result["msg"] and "nothing was changed" in result["msg"]
    assert writes(server) == []
    assert (server.config(), server.userprops()) == before
    assert not os.path.exists(os.path.join(fleet_dir(server), "pending_apply.json"))


def test_staging_is_private_and_a_killed_run_leaves_nothing(server, run_module):
    stale = os.path.join(fleet_dir(server), "staging", "tmpkilled")
    os.makedirs(stale)
    with open(os.path.join(stale, "post_auth.py"), "w") as handle:
        handle.write("SECRET = 'left by a killed run'")
    result = run(run_module, server, **everything())
    assert result["changed"] is True
    staging = os.path.join(fleet_dir(server), "staging")
    assert os.listdir(staging) == [], "the stale folder and this run's own are gone"
    assert stat.S_IMODE(os.stat(fleet_dir(server)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(staging).st_mode) == 0o700


def identified(version="0.1.0"):
    """The generated script, as a version of the collection wrote it: its identity in the header, sealed."""
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import with_identity

    return with_identity(SCRIPT.replace("# ovpnas.fleet.version: 0.1.0\n",
                                        "# ovpnas.fleet.version: %s\n# ovpnas.fleet.identity:\n" % version))


def identity_of(text):
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import script_identity

    return script_identity(text)


def test_identity_alone_costs_the_read_when_the_script_is_live(server, run_module):
    server.sacli("--key", SCRIPT_KEY, "--value", identified(), "ConfigPut")
    by_identity = post_auth(content=None, identity=identity_of(SCRIPT),
                            required_apps=[{"name": "FIREFOX", "platform": "all"}])
    args = everything(post_auth=by_identity, app_verify={"content": QUERY_FILE}, users={})
    server.sacli("--key", QUERY_KEY, "--value", QUERY_FILE, "ConfigPut")
    for key, value in (("host.name", "vpn.example.com"), ("vpn.client.routing.reroute_gw", "false")):
        server.sacli("--key", key, "--value", value, "ConfigPut")
    result = run(run_module, server, check_mode=True, **args)
    assert result["changed"] is False and "content_required" not in result, result
    assert server.commands() == ["ConfigQuery"]
    assert result["post_auth"]["changed"] is False

    # the policy's applications are still checked against the query file that will be live
    args["app_verify"] = {"content": "all:CHROME=^chrome\n"}
    result = run(run_module, server, check_mode=True, **args)
    assert result["failed"] is True and "checks FIREFOX (all)" in result["msg"]
    assert writes(server) == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_script_that_differs_only_in_its_header_fields_is_left_as_it_is(server, run_module, check_mode):
    """What another version of the collection wrote, with the same text otherwise: no write, no restart."""
    server.sacli("--key", SCRIPT_KEY, "--value", identified("0.0.9"), "ConfigPut")
    args = everything(post_auth=post_auth(content=identified("0.1.0")), app_verify={"content": QUERY_FILE}, users={})
    server.sacli("--key", QUERY_KEY, "--value", QUERY_FILE, "ConfigPut")
    for key, value in (("host.name", "vpn.example.com"), ("vpn.client.routing.reroute_gw", "false")):
        server.sacli("--key", key, "--value", value, "ConfigPut")
    result = run(run_module, server, check_mode=check_mode, diff=True, **args)
    assert result["changed"] is False and result["restart_required"] is False, result
    assert result["post_auth"]["changed"] is False and "validation" not in result
    assert server.commands() == ["ConfigQuery"]
    assert "# ovpnas.fleet.version: 0.0.9\n" in server.config()[SCRIPT_KEY]


@pytest.mark.parametrize("live", [
    None,
    "def post_auth(a, b, authret, c):\n    return authret\n",
    identified().replace("authret['status'] = FAIL", "pass"),
], ids=["none", "unmanaged", "edited"])
def test_identity_that_is_not_live_asks_for_the_script(server, run_module, live):
    if live is not None:
        server.sacli("--key", SCRIPT_KEY, "--value", live, "ConfigPut")
    args = everything(post_auth=post_auth(content=None, identity=identity_of(SCRIPT)))
    result = run(run_module, server, check_mode=True, diff=True, **args)
    assert result["failed"] is False and result["content_required"] is True, result
    assert result["changed"] is True and result["restart_required"] is True and "diff" not in result
    assert "is not the one post_auth.identity names" in result["msg"]
    # nothing checked or read beyond the script
    assert server.commands() == ["ConfigQuery"]


def test_identity_alone_does_not_make_a_run_that_writes(server, run_module):
    result = run(run_module, server, **everything(post_auth=post_auth(content=None, identity=identity_of(SCRIPT))))
    assert result["failed"] is True and "compares only, in check mode" in result["msg"], result
    assert server.commands() == []


def test_a_write_that_happened_but_answered_oddly_is_undone(server, run_module, tmp_path):
    """The script's ConfigPut stores the script, then prints a warning: it counts as failed, and is undone."""
    wrapper = tmp_path / "sacli"
    once = tmp_path / "warned"
    wrapper.write_text("#!/bin/sh\n%s \"$@\" || exit $?\n"
                       "case \"$*\" in *auth.module.post_auth_script*ConfigPut*)\n"
                       "  [ -e %s ] || { touch %s; echo 'WARNING: slow disk'; };;\nesac\n"
                       % (server.sacli_path, once, once))
    wrapper.chmod(0o755)
    server.sacli("--key", SCRIPT_KEY, "--value", SCRIPT.replace("mallory", "eve"), "ConfigPut")
    before = server.config()
    result = run(run_module, server, sacli_path=str(wrapper), **everything())
    assert result["failed"] is True and "printed an answer that is not a write's" in result["msg"], result
    assert "the writes made before it were undone" in result["msg"]
    assert server.config() == before
    assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json"))


# --- standby, report, last_change.json ---------------------------------------------


def sha256(text):
    import hashlib

    return None if text is None else hashlib.sha256(text.rstrip("\n").encode("utf-8")).hexdigest()


def fleet_file(server, name):
    return os.path.join(fleet_dir(server), name)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_standby_is_skipped_on_the_read(server, run_module, check_mode):
    server.settings(standby=True)
    result = run(run_module, server, check_mode=check_mode, report=True, **everything())
    assert result["failed"] is False, result
    assert result["skipped"] is True and result["standby"] is True
    assert result["changed"] is False and result["restart_required"] is False
    assert result["commands"] == [] and result["changed_keys"] == [] and result["changed_users"] == []
    assert "skipped, nothing was changed" in result["msg"] and "agent socket" in result["msg"]
    assert "live" not in result and "validation" not in result
    assert server.commands() == ["ConfigQuery"]
    for name in ("pending_apply.json", "last_change.json", "applied.json"):
        assert not os.path.exists(fleet_file(server, name)), name
    server.settings(standby=False)
    assert server.config().get(SCRIPT_KEY) is None


def test_a_failed_read_on_a_running_node_is_no_standby(server, run_module):
    server.set_fault("configquery", action="exit", rc=1, stderr="agent error")
    result = run(run_module, server, **everything())
    assert result["failed"] is True
    assert "standby" not in result and "skipped" not in result


def test_no_access_server_at_the_sacli_path_is_a_failure_not_a_standby(server, run_module, tmp_path):
    # a folder without Access Server: no sacli, no agent socket
    result = run(run_module, server, sacli_path=str(tmp_path / "elsewhere" / "scripts" / "sacli"), **everything())
    assert result["failed"] is True and "sacli not found" in result["msg"], result
    assert "standby" not in result and "skipped" not in result
    # an Access Server folder without its as.conf, whose services are not up: not one to call a standby either
    server.settings(standby=True)
    os.rename(os.path.join(server.path, "etc", "as.conf"), os.path.join(server.path, "etc", "as.conf.moved"))
    try:
        result = run(run_module, server, **everything())
    finally:
        os.rename(os.path.join(server.path, "etc", "as.conf.moved"), os.path.join(server.path, "etc", "as.conf"))
        server.settings(standby=False)
    assert result["failed"] is True and "standby" not in result and "skipped" not in result, result


def test_sacli_through_a_link_elsewhere_uses_the_access_server_folder(server, run_module, tmp_path):
    link = tmp_path / "bin" / "sacli"
    link.parent.mkdir()
    link.symlink_to(server.sacli_path)
    result = run(run_module, server, sacli_path=str(link), **everything())
    assert result["failed"] is False and result["changed"] is True, result
    # the records are those of the Access Server folder, where a run through the real path finds them
    assert os.path.exists(fleet_file(server, "pending_apply.json"))
    assert not (tmp_path / "etc").exists()
    again = run(run_module, server, **everything())
    assert again["changed"] is True and again["changed_keys"] == [] and again["pending_apply"], again


def test_report_shows_what_is_live_and_when_it_was_applied(server, run_module):
    run(run_module, server, **everything())
    # changed, not yet started: the live script was never applied
    pending = run(run_module, server, report=True, **everything())
    assert pending["live"]["applied"] is None
    applied(run_module, server)
    applied_at = read_json(fleet_file(server, "applied.json"))["applied"]

    for check_mode in (True, False):
        result = run(run_module, server, check_mode=check_mode, report=True, **everything())
        assert result["failed"] is False and result["changed"] is False, result
        assert result["live"] == dict(
            post_auth=dict(sha256=sha256(SCRIPT), header={"version": "0.1.0"}, sealed=False,
                           identity=identity_of(SCRIPT)),
            app_verify=dict(sha256=sha256(QUERY_FILE)),
            applied=applied_at,
        )
        assert result["post_auth"]["sha256_after"] == result["live"]["post_auth"]["sha256"]
        assert server.commands() == ["ConfigQuery", "UserPropGet"], "the report costs no more than the read"


def test_report_without_report_is_not_returned(server, run_module):
    assert "live" not in run(run_module, server, check_mode=True, **everything())


def test_report_of_a_script_changed_by_hand_has_no_applied_time(server, run_module):
    run(run_module, server, **everything())
    applied(run_module, server)
    edited = SCRIPT.replace("mallory", "eve")
    server.sacli("--key", SCRIPT_KEY, "--value", edited, "ConfigPut")
    server.sacli("start")
    result = run(run_module, server, check_mode=True, report=True, **everything())
    assert result["failed"] is False, result
    assert result["live"]["post_auth"]["sha256"] == sha256(edited)
    assert result["live"]["applied"] is None, "applied.json names another script"
    assert result["changed"] is True and result["post_auth"]["sha256_after"] == sha256(SCRIPT)


def test_report_of_a_start_that_recorded_no_script(server, run_module):
    """applied.json of a start that had no pending record does not name the live script."""
    from ansible_collections.ovpnas.fleet.plugins.modules import sacli_start

    server.sacli("--key", SCRIPT_KEY, "--value", SCRIPT, "ConfigPut")
    started = run_module(sacli_start.main, dict(sacli_path=server.sacli_path, wait_interval=0.1))
    assert started["failed"] is False and started["pending_apply_cleared"] is False
    assert read_json(fleet_file(server, "applied.json"))["sha256"] == {}
    result = run(run_module, server, check_mode=True, report=True, users={})
    assert result["live"]["post_auth"]["sha256"] == sha256(SCRIPT)
    assert result["live"]["applied"] is None


@pytest.mark.parametrize(
    ("live", "header", "sealed"),
    [
        (None, {}, False),
        ("def post_auth(a, b, authret, c):\n    return authret\n", {}, False),
        ("sealed", {"version": "0.1.0", "identity": "*"}, True),
        ("broken seal", {"version": "0.1.0", "identity": "*"}, False),
    ],
    ids=["none", "unmanaged", "sealed", "edited-under-its-seal"],
)
def test_report_reads_the_header_and_seal(server, run_module, live, header, sealed):
    if live == "sealed":
        live = identified()
    elif live == "broken seal":
        live = identified().replace("authret['status'] = FAIL", "pass")
    if live is not None:
        server.sacli("--key", SCRIPT_KEY, "--value", live, "ConfigPut")
    result = run(run_module, server, check_mode=True, report=True)
    assert result["failed"] is False, result
    if header.get("identity") == "*":
        header["identity"] = identity_of(SCRIPT)
    assert result["live"]["post_auth"] == dict(sha256=sha256(live), header=header, sealed=sealed,
                                               identity=identity_of(live))
    assert result["live"]["app_verify"] == dict(sha256=None)
    assert result["live"]["applied"] is None


@pytest.mark.parametrize("report", [True, False], ids=["report", "no-report"])
def test_check_mode_report_does_not_test_a_differing_script(server, run_module, report):
    cases = CASES + [{"name": "mallory gets in", "user": "mallory", "expect": {"status": "SUCCEED"}}]
    args = everything(post_auth=post_auth(policy_cases=cases))
    result = run(run_module, server, check_mode=True, report=report, **args)
    assert writes(server) == []
    if not report:
        assert result["failed"] is True and "a policy case failed" in result["msg"]
        return
    assert result["failed"] is False, result
    assert result["changed"] is True and SCRIPT_KEY in result["changed_keys"]
    assert "validation" not in result, "an audit does not run the policy"
    assert result["post_auth"]["sha256_after"] == sha256(SCRIPT)
    assert result["live"]["post_auth"]["sha256"] is None


def test_a_real_run_with_report_still_tests_the_script(server, run_module):
    cases = CASES + [{"name": "mallory gets in", "user": "mallory", "expect": {"status": "SUCCEED"}}]
    result = run(run_module, server, report=True, **everything(post_auth=post_auth(policy_cases=cases)))
    assert result["failed"] is True and "a policy case failed: mallory gets in" in result["msg"]
    assert writes(server) == []
    assert not os.path.exists(fleet_file(server, "last_change.json"))


def test_a_change_records_what_takes_it_back(server, run_module):
    server.sacli("--user", "openvpn", "--key", "pvt_hw_addr", "--value", "aa:aa:aa:aa:aa:aa", "UserPropPut")
    before = server.config()
    args = everything(users={"alice": {"pvt_hw_addr": "00:11:22:33:44:55"},
                             "openvpn": {"pvt_hw_addr": "00:11:22:33:44:66", "prop_superuser": "true"}})
    result = run(run_module, server, **args)
    assert result["changed"] is True, result
    path = fleet_file(server, "last_change.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    record = read_json(path)
    assert set(record) == {"since", "undo", "after", "users_after"}
    # in the order of the writes: users (alice created, openvpn's address replaced), keys, the query file, the script
    assert record["undo"] == [
        ["delete_user", "alice", None],
        ["user_prop", "openvpn", ["pvt_hw_addr", "aa:aa:aa:aa:aa:aa"]],
        ["key", "host.name", before["host.name"]],
        ["key", "vpn.client.routing.reroute_gw", "true"],
        ["key", QUERY_KEY, None],
        ["key", SCRIPT_KEY, None],
    ]
    assert record["after"] == {"host.name": sha256("vpn.example.com"), "vpn.client.routing.reroute_gw": sha256("false"),
                               QUERY_KEY: sha256(QUERY_FILE), SCRIPT_KEY: sha256(SCRIPT)}
    # what the writes left of each user: alice as created (with the type a new user gets), openvpn's property
    assert record["users_after"] == {
        "alice": {"pvt_hw_addr": sha256("00:11:22:33:44:55"), "type": sha256("user_connect")},
        "openvpn": {"pvt_hw_addr": sha256("00:11:22:33:44:66")}}


def test_a_removal_records_the_value_removed(server, run_module):
    server.sacli("--key", SCRIPT_KEY, "--value", SCRIPT, "ConfigPut")
    server.sacli("--key", "cs.tls_version_min", "--value", "1.2", "ConfigPut")
    result = run(run_module, server, post_auth={"state": "absent"}, absent_keys=["cs.tls_version_min"])
    assert result["changed"] is True, result
    record = read_json(fleet_file(server, "last_change.json"))
    assert record["undo"] == [["key", "cs.tls_version_min", "1.2"], ["key", SCRIPT_KEY, SCRIPT]]
    assert record["after"] == {"cs.tls_version_min": None, SCRIPT_KEY: None}


def test_no_record_from_check_mode(server, run_module):
    result = run(run_module, server, check_mode=True, **everything())
    assert result["changed"] is True
    assert not os.path.exists(fleet_file(server, "last_change.json"))


def test_a_run_that_writes_nothing_keeps_the_last_record(server, run_module):
    run(run_module, server, **everything())
    path = fleet_file(server, "last_change.json")
    with open(path) as handle:
        record = handle.read()
    # not started yet: changed (pending), but nothing written; then started, then nothing to do at all
    pending = run(run_module, server, **everything())
    assert pending["changed"] is True and writes(server) == []
    applied(run_module, server)
    for check_mode in (False, True):
        again = run(run_module, server, check_mode=check_mode, **everything())
        assert again["changed"] is False
    with open(path) as handle:
        assert handle.read() == record, "a run that wrote nothing replaced the record of the last change"


# a full disk -----------------------------------------------------------------------------------

@pytest.fixture
def small_disk(server):
    """The collection's folder on the server on a filesystem of a few KiB (a tmpfs), unmounted afterwards."""
    path = fleet_dir(server)
    os.makedirs(path, exist_ok=True)
    mounted = []

    def mount(kib):
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0700" % kib, "tmpfs", path],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("a filesystem cannot be mounted here: %s" % proc.stderr.strip())
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", path], check=False)


@pytest.mark.parametrize("kib", [48, 56, 64])
def test_a_disk_too_small_for_the_change_and_its_undo_changes_nothing(server, run_module, small_disk, kib):
    server.sacli("--key", SCRIPT_KEY, "--value", "# the old script\n" + "x = 1\n" * 4000, "ConfigPut")
    before = server.config(), server.userprops()
    small_disk(kib)

    result = run(run_module, server, backup=False, **everything())

    assert result["failed"] is True, result
    assert "not enough room on the disk of %s" % fleet_dir(server) in result["msg"]
    assert result["msg"].endswith("; nothing was changed")
    assert writes(server) == []
    assert (server.config(), server.userprops()) == before
    assert not os.path.exists(fleet_file(server, "pending_apply.json"))
    assert not os.path.exists(fleet_file(server, "last_change.json"))


@pytest.fixture
def db_disk(server, tmp_path):
    """The server's databases on a filesystem of a few KiB (a tmpfs) that is full, nearly full or read-only, put
    back afterwards."""
    db = os.path.join(server.path, "etc", "db")
    saved = tmp_path / "db-saved"
    mounted = []

    def mount(free_kib=0, read_only=False):
        shutil.copytree(db, saved)
        used = sum(os.path.getsize(os.path.join(db, name)) for name in os.listdir(db)) // 1024
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % (used + free_kib), "tmpfs", db],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("a filesystem cannot be mounted here: %s" % proc.stderr.strip())
        mounted.append(db)
        for name in os.listdir(saved):
            shutil.copy2(os.path.join(saved, name), os.path.join(db, name))
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", db], check=True)

    yield mount
    for path in mounted:
        subprocess.run(["umount", path], check=False)


@pytest.mark.parametrize("free_kib, read_only", [(0, False), (8, False), (24, False), (64, True)],
                         ids=["full", "8-kib-free", "24-kib-free", "read-only"])
def test_a_database_that_cannot_take_the_change_keeps_what_it_held(server, run_module, db_disk, free_kib,
                                                                   read_only):
    big = "# the old script\n" + "x = 1\n" * 2000
    server.sacli("--key", SCRIPT_KEY, "--value", big, "ConfigPut")
    before = server.config(), server.userprops()
    db_disk(free_kib, read_only)

    result = run(run_module, server, **everything(post_auth=post_auth(content=SCRIPT + "# padding\n" * 3000)))

    assert result["failed"] is True, result
    after = server.config(), server.userprops()
    assert after == before, result["msg"]
    assert "nothing was changed" in result["msg"] or "undone" in result["msg"], result["msg"]
    assert not os.path.exists(fleet_file(server, "pending_apply.json"))


def test_a_change_whose_undo_cannot_be_recorded_is_not_made(server, run_module):
    before = server.config(), server.userprops()
    # the record cannot be written where it goes
    os.makedirs(os.path.join(fleet_file(server, "last_change.json"), "in-the-way"))

    result = run(run_module, server, **everything())

    assert result["failed"] is True, result
    assert "cannot record what takes the change back in %s" % fleet_dir(server) in result["msg"]
    assert result["msg"].endswith("; nothing was changed")
    assert writes(server) == []
    assert (server.config(), server.userprops()) == before
    assert not os.path.exists(fleet_file(server, "pending_apply.json"))


def test_the_undo_is_recorded_before_the_first_write(server, run_module):
    # the first write fails: the record was there before it, and is taken away with the change
    server.set_fault("userpropput", action="exit", rc=1, times=1)
    result = run(run_module, server, **everything())
    assert result["failed"] is True and "the writes made before it were undone" in result["msg"], result
    assert not os.path.exists(fleet_file(server, "last_change.json"))
    assert not os.path.exists(fleet_file(server, "pending_apply.json"))

    # a later write fails after the first went through: the earlier record is put back as it was
    result = run(run_module, server, users={"bob": {"pvt_hw_addr": "00:11:22:33:44:66"}})
    assert result["failed"] is False, result
    with open(fleet_file(server, "last_change.json")) as handle:
        earlier = handle.read()
    server.set_fault("configput", action="exit", rc=1, times=1)
    result = run(run_module, server, **everything())
    assert result["failed"] is True and "the writes made before it were undone" in result["msg"], result
    with open(fleet_file(server, "last_change.json")) as handle:
        assert handle.read() == earlier


# a change never applied, without its pending record ----------------------------------------------

def test_a_script_never_applied_is_started_again_without_its_pending_record(server, run_module, module_warnings):
    # applied once: applied.json names the script and the query file
    assert run(run_module, server, **everything())["changed"] is True
    applied(run_module, server)
    # a new script, whose start failed; then someone removes the pending record by hand
    new_script = SCRIPT.replace("SYNCHRONOUS = True\n", "SYNCHRONOUS = True\nLIMIT = 3\n")
    assert run(run_module, server, post_auth=post_auth(content=new_script))["restart_required"] is True
    os.unlink(fleet_file(server, "pending_apply.json"))

    for check_mode in (True, False):
        module_warnings.clear()
        result = run(run_module, server, check_mode=check_mode, post_auth=post_auth(content=new_script))
        assert result["failed"] is False, result
        # nothing to write, but the database holds a script no start of the collection applied
        assert writes(server) == [] and result["changed_keys"] == []
        assert result["changed"] is True and result["restart_required"] is True
        assert result["pending_apply"]["changes"] == [SCRIPT_KEY]
        assert result["pending_apply"]["sha256"] == {SCRIPT_KEY: sha256(new_script)}
        assert "is not what the last sacli start of this collection applied" in str(result.get("warnings")), result
        # check mode writes no record; a real run notes it, for the handler's start and gate
        assert os.path.exists(fleet_file(server, "pending_apply.json")) is (not check_mode)

    applied(run_module, server)
    # applied now: the script, and the query file of the earlier start
    assert set(read_json(fleet_file(server, "applied.json"))["sha256"]) == {SCRIPT_KEY, QUERY_KEY}
    module_warnings.clear()
    result = run(run_module, server, **everything(post_auth=post_auth(content=new_script)))
    assert result["changed"] is False and result["restart_required"] is False, result
    assert "sacli start" not in str(result.get("warnings"))


def test_no_record_of_a_start_is_not_a_change_never_applied(server, run_module):
    # a server the collection never started (no applied.json): what is live is taken as applied
    server.sacli("--key", SCRIPT_KEY, "--value", SCRIPT, "ConfigPut")
    result = run(run_module, server, post_auth=post_auth())
    assert result["changed"] is False and "pending_apply" not in result, result
