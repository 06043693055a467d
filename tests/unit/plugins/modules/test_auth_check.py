"""auth_check against the emulator: canary logins through the real authcli, typed at its prompt, and sacli status."""

import json
import os
import subprocess
import time

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import auth_check

KEY = "auth.module.post_auth_script"
PASSWORD = "Canary-pw-9f3Q"
RESPONSE = "731904"
MASK = "********"

# bob is refused; the group follows the platform the client claims
POLICY = """
def post_auth(authcred, attributes, authret, info):
    if authret["user"] == "bob":
        authret["status"] = FAIL
        authret["reason"] = "bob is not allowed today"
        return authret
    platform = attributes["client_info"].get("IV_PLAT")
    authret["proplist"]["conn_group"] = "staff" if platform == "win" else "guests"
    return authret
"""

# reports what the client sent in the reason
PROBE = """
import json

def post_auth(authcred, attributes, authret, info):
    authret["reason"] = json.dumps({
        "client_info": attributes["client_info"],
        "hw_addr": authcred.get("client_hw_addr"),
        "vpn_auth": attributes["vpn_auth"],
    }, sort_keys=True)
    return authret
"""

CHALLENGE = """
def post_auth_cr(authcred, attributes, authret, info, crstate):
    answer = crstate.response()
    if not answer:
        crstate["expected"] = "%s"
        return crstate.challenge_post_auth(authret, "Enter your code", echo=False)
    if answer != crstate.get("expected"):
        authret["status"] = FAIL
        authret["reason"] = "wrong code"
    return authret
""" % RESPONSE


@pytest.fixture
def users(server):
    """The server with local users alice and bob (both with PASSWORD)."""
    server.set_password("alice", PASSWORD)
    server.set_password("bob", PASSWORD)
    return server


def deploy(server, tmp_path, text):
    """Load a post-auth script the way a rollout does: ConfigPut --value_file, then start."""
    path = tmp_path / "post_auth.py"
    path.write_text(text)
    server.sacli("--key", KEY, "--value_file", str(path), "ConfigPut")
    server.sacli("start")


def run(run_module, server, check_mode=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(auth_check.main, args, check_mode=check_mode)


def login(user="alice", password=PASSWORD, **options):
    return dict(options, user=user, password=password)


def only(result):
    assert len(result["logins"]) == 1, result
    return result["logins"][0]


# outcomes ---------------------------------------------------------------------------------

def test_authcli_is_found_beside_the_real_sacli_when_sacli_is_a_link(users, run_module, tmp_path):
    link = tmp_path / "bin" / "sacli"
    link.parent.mkdir()
    link.symlink_to(users.sacli_path)

    result = run(run_module, users, sacli_path=str(link), logins=[login()])

    assert not result["failed"], result
    assert only(result)["status"] == "SUCCEED"
    assert users.commands("authcli") == ["authenticate"]


@pytest.mark.parametrize("header", [True, False], ids=["AUTH_RETURN", "no header"])
def test_succeed_login(users, run_module, header):
    users.settings(authcli_header=header)

    result = run(run_module, users, logins=[login(name="alice on laptop")])

    assert not result["failed"], result
    assert result["changed"] is False
    assert only(result) == {
        "name": "alice on laptop", "user": "alice", "status": "SUCCEED", "group": None,
        "reason": "local auth succeeded", "challenge": None, "rc": 0, "error": None, "passed": True,
        "expected": {"status": "SUCCEED", "group": None, "reason": None},
    }
    assert result["commands"] == ["sacli status", "authcli --user alice"]
    assert result["service_status"]["auth"] == "on"
    assert result["msg"] == "every service up; 1 login as expected"
    assert users.commands() == ["status"]
    assert users.commands("authcli") == ["authenticate"]


def test_name_defaults_to_the_user(users, run_module):
    result = run(run_module, users, status=False, logins=[login()])

    assert not result["failed"], result
    assert only(result)["name"] == "alice"
    assert result["commands"] == ["authcli --user alice"]
    assert users.commands() == []


def test_script_that_fails_the_login(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)

    result = run(run_module, users, logins=[login(), login("bob", name="bob on laptop")])

    assert result["failed"] is True
    assert [(e["name"], e["status"], e["passed"]) for e in result["logins"]] == [
        ("alice", "SUCCEED", True), ("bob on laptop", "FAIL", False),
    ]
    bob = result["logins"][1]
    assert (bob["rc"], bob["reason"], bob["group"], bob["error"]) == (1, "bob is not allowed today", None, None)
    assert result["msg"] == (
        'canary login "bob on laptop" returned FAIL (reason: "bob is not allowed today"), expected SUCCEED'
    )


def test_expected_fail_with_reason(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)

    result = run(run_module, users, logins=[
        login("bob", expect=dict(status="FAIL", reason="not allowed")),
        login("alice", "wrong", name="wrong password", expect=dict(status="FAIL", reason="verification failed")),
    ])

    assert not result["failed"], result
    assert [e["passed"] for e in result["logins"]] == [True, True]
    assert result["logins"][1]["reason"] == "local auth failed: password verification failed"


def test_reason_mismatch(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)

    result = run(run_module, users, logins=[login("bob", expect=dict(status="FAIL", reason="device"))])

    assert result["failed"] is True
    assert result["msg"] == (
        'canary login "bob" returned FAIL (reason: "bob is not allowed today"), expected a reason containing "device"'
    )


@pytest.mark.parametrize("platform, group", [("win", "staff"), ("mac", "guests")])
def test_expected_group_matched(users, run_module, tmp_path, platform, group):
    deploy(users, tmp_path, POLICY)

    result = run(run_module, users, logins=[login(client_info=dict(IV_PLAT=platform), expect=dict(group=group))])

    assert not result["failed"], result
    assert (only(result)["group"], only(result)["passed"]) == (group, True)
    assert result["commands"][-1] == "authcli --user alice --client-info IV_PLAT=%s" % platform


def test_expected_group_mismatched(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)

    result = run(run_module, users, logins=[
        login(name="alice on mac", client_info=dict(IV_PLAT="mac"), expect=dict(group="staff")),
    ])

    assert result["failed"] is True
    assert (only(result)["status"], only(result)["group"], only(result)["passed"]) == ("SUCCEED", "guests", False)
    assert result["msg"] == 'canary login "alice on mac" returned SUCCEED with group "guests", expected group "staff"'


def test_no_group_when_one_is_expected(users, run_module):
    result = run(run_module, users, logins=[login(expect=dict(group="staff"))])

    assert result["failed"] is True
    assert result["msg"] == 'canary login "alice" returned SUCCEED with no group, expected group "staff"'


def test_client_data_is_passed_only_when_set(users, run_module, tmp_path):
    deploy(users, tmp_path, PROBE)

    result = run(run_module, users, status=False, logins=[
        login(name="bare"),
        login(name="full", hw_addr="00:11:22:33:44:55", web=True,
              client_info=dict(IV_PLAT="win", UV_APPVER_CHROME=120.0, UV_FLAG=True)),
    ])

    assert not result["failed"], result
    bare, full = (json.loads(e["reason"]) for e in result["logins"])
    assert bare == {"client_info": {}, "hw_addr": None, "vpn_auth": True}
    assert full == {
        "client_info": {"IV_HWADDR": "00:11:22:33:44:55", "IV_PLAT": "win", "UV_APPVER_CHROME": "120.0",
                        "UV_FLAG": "true"},
        "hw_addr": "00:11:22:33:44:55",
        "vpn_auth": False,
    }
    assert result["commands"] == [
        "authcli --user alice",
        "authcli --user alice --hw-addr 00:11:22:33:44:55 --client-info IV_PLAT=win"
        " --client-info UV_APPVER_CHROME=120.0 --client-info UV_FLAG=true --web",
    ]


# dynamic challenge ------------------------------------------------------------------------

@pytest.mark.parametrize("response, status, passed", [(RESPONSE, "SUCCEED", True), ("000000", "FAIL", False)],
                         ids=["right", "wrong"])
def test_dynamic_challenge(users, run_module, tmp_path, response, status, passed):
    deploy(users, tmp_path, CHALLENGE)

    result = run(run_module, users, logins=[login(name="alice with code", response=response)])

    entry = only(result)
    assert (entry["status"], entry["passed"], entry["challenge"]) == (status, passed, "Enter your code")
    assert result["failed"] is not passed
    assert result["commands"] == ["sacli status", "authcli --user alice", "authcli --user alice"]
    assert [c["rc"] for c in users.calls("authcli")] == [1, 0 if passed else 1]
    if passed:
        assert entry["reason"] == "local auth succeeded"
    else:
        assert entry["reason"] == "wrong code"
        assert result["msg"] == (
            'canary login "alice with code" returned FAIL (reason: "wrong code"), expected SUCCEED'
        )


def test_challenge_without_response_is_a_fail(users, run_module, tmp_path):
    deploy(users, tmp_path, CHALLENGE)

    result = run(run_module, users, logins=[
        login(name="asked", expect=dict(status="FAIL", reason="Enter your code")),
        login(name="expects success"),
    ])

    asked, success = result["logins"]
    assert (asked["status"], asked["reason"], asked["passed"]) == ("FAIL", "challenge: Enter your code", True)
    assert (success["status"], success["passed"], success["rc"]) == ("FAIL", False, 1)
    assert result["msg"] == (
        'canary login "expects success" returned FAIL (reason: "challenge: Enter your code"), expected SUCCEED'
    )
    assert users.commands("authcli") == ["authenticate", "authenticate"]


# the services --------------------------------------------------------------------------------

def test_service_off_fails_before_any_login(users, run_module):
    users.set_fault("status", action="off", services=["openvpn_0", "web"])

    result = run(run_module, users, logins=[login()])

    assert result["failed"] is True
    assert result["msg"] == "services not up: openvpn_0, web; no login was run"
    assert result["service_status"]["openvpn_0"] == "off"
    assert result["logins"] == []
    assert users.calls("authcli") == []


def test_status_that_cannot_be_read_fails(users, run_module):
    users.set_fault("status", action="garbage")

    result = run(run_module, users, logins=[login()])

    assert result["failed"] is True
    assert "not JSON" in result["msg"]
    assert users.calls("authcli") == []


def test_status_only(users, run_module):
    result = run(run_module, users)

    assert not result["failed"], result
    assert (result["logins"], result["msg"]) == ([], "every service up")


# check mode ------------------------------------------------------------------------------------

def test_check_mode_runs_nothing(users, run_module):
    result = run(run_module, users, check_mode=True, logins=[login(), login("bob", hw_addr="00:11:22:33:44:55")])

    assert not result["failed"], result
    assert result["changed"] is False
    assert result["check_mode_skipped"] is True
    assert result["msg"] == "check mode: 2 logins not run"
    assert result["logins"] == []
    assert result["commands"] == [
        "sacli status", "authcli --user alice", "authcli --user bob --hw-addr 00:11:22:33:44:55",
    ]
    assert users.root.calls() == []


# secrets ---------------------------------------------------------------------------------------

@pytest.fixture
def spawned(monkeypatch):
    """Every process the module starts (through subprocess.Popen): [(argv, env, process)]."""
    real = subprocess.Popen
    seen = []

    def text(value):
        return os.fsdecode(value) if isinstance(value, bytes) else value

    def spy(args, *rest, **kwargs):
        proc = real(args, *rest, **kwargs)
        env = kwargs.get("env") or os.environ
        seen.append(([text(arg) for arg in args], {text(k): text(v) for k, v in env.items()}, proc))
        return proc

    monkeypatch.setattr(subprocess, "Popen", spy)
    return seen


def test_password_and_response_never_leave_the_prompt(users, run_module, tmp_path, spawned):
    deploy(users, tmp_path, CHALLENGE)

    result = run(run_module, users, logins=[login(response=RESPONSE)])

    assert not result["failed"], result
    shown = json.dumps(result)
    assert PASSWORD not in shown and RESPONSE not in shown
    # nothing needed masking: the values were never put into the result
    assert MASK not in shown
    authcli = [run[:2] for run in spawned if run[0][0] == users.authcli_path]
    assert len(authcli) == 2
    for argv, env in authcli:
        assert argv == [users.authcli_path, "--user", "alice"]
        assert not any(PASSWORD in value or RESPONSE in value for value in env.values())
    for argv in (run[0] for run in spawned):
        assert not any(PASSWORD in arg or RESPONSE in arg for arg in argv), argv
    with open(users.root.call_log) as handle:
        log = handle.read()
    assert PASSWORD not in log and RESPONSE not in log
    assert [c["options"] for c in users.calls("authcli")] == [["client_ip", "user"]] * 2


def test_entries_never_hold_secrets(users):
    """The results as the module builds them, before Ansible masks no_log values."""
    canary = auth_check.Canary(None, users.authcli_path, 30)
    entry = canary.check(dict(name=None, user="alice", password=PASSWORD, response=RESPONSE, client_info=None,
                              hw_addr=None, web=False, expect=dict(status="SUCCEED", group=None, reason=None)))

    assert entry["passed"] is True
    assert PASSWORD not in json.dumps(entry) and RESPONSE not in json.dumps(entry)
    assert PASSWORD not in json.dumps(canary.commands)


def test_output_without_status_is_an_error_without_the_password(users, run_module):
    page = "<html>%s %s</html>" % (PASSWORD, "x" * 400)
    users.set_fault("authcli", action="garbage", stdout=page, times=1)

    result = run(run_module, users, logins=[login(name="garbled")])

    entry = only(result)
    assert result["failed"] is True
    assert entry["status"] is None and entry["passed"] is False and entry["rc"] == 0
    assert entry["error"].startswith("authcli printed no status (exit code 0): <html>%s xxx" % MASK)
    shown = entry["error"].split(": ", 1)[1]
    assert len(shown) == 200
    assert PASSWORD not in json.dumps(result)
    assert result["msg"] == 'canary login "garbled" could not be checked: ' + entry["error"]


def test_authcli_that_exits_without_output(users, run_module):
    users.set_fault("authcli", action="exit", rc=4, stderr="auth service down\n", times=1)

    result = run(run_module, users, logins=[login()])

    assert result["failed"] is True
    assert only(result)["error"] == "authcli printed no status (exit code 4): auth service down"


def test_hanging_authcli_is_killed_at_the_timeout(users, run_module, spawned):
    users.set_fault("authcli", action="hang", seconds=120)

    started = time.monotonic()
    result = run(run_module, users, status=False, sacli_timeout=2, logins=[login(name="stuck")])
    elapsed = time.monotonic() - started

    assert result["failed"] is True
    assert 2 <= elapsed < 20, elapsed
    entry = only(result)
    assert (entry["error"], entry["rc"]) == ("authcli did not finish within 2 seconds and was killed", None)
    assert result["msg"] == 'canary login "stuck" could not be checked: ' + entry["error"]
    (proc,) = [run[2] for run in spawned if run[0][0] == users.authcli_path]
    assert proc.returncode == -9
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_tool_that_reads_without_a_prompt(users, run_module, tmp_path):
    """A stand-in for an authcli that reads standard input without asking: it gets the line anyway."""
    tool = tmp_path / "silent-authcli"
    tool.write_text(
        "#!/bin/sh\n"
        "IFS= read -r pw\n"
        "[ \"$pw\" = '%s' ] && status=SUCCEED || status=FAIL\n"
        "printf 'API METHOD: authenticate\\n  status : %%s\\n  user : %%s\\n' \"$status\" \"$2\"\n" % PASSWORD
    )
    tool.chmod(0o755)

    result = run(run_module, users, status=False, authcli_path=str(tool), logins=[login(), login(password="no")])

    assert [e["status"] for e in result["logins"]] == ["SUCCEED", "FAIL"]


def test_missing_authcli(users, run_module, tmp_path):
    result = run(run_module, users, authcli_path=str(tmp_path / "nope"), logins=[login()])

    assert result["failed"] is True
    assert result["msg"] == "authcli not found or not executable at %s (set authcli_path)" % (tmp_path / "nope")


# options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, message", [
    (login(password="line\x03"), "login 1 ('alice'): password must not contain control characters"),
    (login(response="x" * 1025), "login 1 ('alice'): response must be 1024 bytes at most"),
    (login(expect=dict(status="FAIL", group="staff")), "login 1 ('alice'): expect.group needs expect.status SUCCEED"),
    (login(client_info={"IV-PLAT": "win"}), "client_info name 'IV-PLAT' must be letters, digits and underscores"),
    (login(client_info={"IV_PLAT": ["win"]}), "client_info IV_PLAT must be a string or a number"),
    (login("-x"), "login 1 ('-x'): user starts with '-'"),
    (login(""), "user is empty"),
    (login("al\nice"), "user holds a control character"),
    (login("a" * 5000), "login 1 ('%s'...): user is longer than 4096 characters" % ("a" * 60)),
    (login(hw_addr="--x"), "hw_addr starts with '-'"),
], ids=["control character", "too long", "group of a FAIL", "client_info name", "client_info value", "user",
        "empty user", "user with a newline", "megabyte user", "hw_addr option"])
def test_refused_logins(users, run_module, entry, message):
    result = run(run_module, users, logins=[entry])

    assert result["failed"] is True
    assert message in result["msg"]
    assert users.root.calls() == []


# settling the change the start applied --------------------------------------------------------

def fleet_file(server, name):
    return os.path.join(server.path, "etc", "ovpnas_fleet", name)


def pending_change(server):
    record = {"since": "2026-12-01T08:00:00Z", "changes": [KEY], "sha256": {KEY: "from-pending"},
              "started": "2026-12-01T08:01:00Z"}
    os.makedirs(os.path.dirname(fleet_file(server, "pending_apply.json")), mode=0o700, exist_ok=True)
    with open(fleet_file(server, "pending_apply.json"), "w") as handle:
        json.dump(record, handle)
    return record


def test_a_passed_gate_settles_the_pending_change(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)
    record = pending_change(users)
    result = run(run_module, users, logins=[login()], settle=True, record={"sha256": {KEY: "from-record"}})
    assert result["failed"] is False and result["changed"] is False, result
    assert result["pending_apply_cleared"] is True
    assert not os.path.exists(fleet_file(users, "pending_apply.json"))
    with open(fleet_file(users, "applied.json")) as handle:
        applied = json.load(handle)
    assert applied == dict(record, applied=applied["applied"])


def test_without_a_pending_change_the_record_is_noted(users, run_module, tmp_path):
    deploy(users, tmp_path, POLICY)
    result = run(run_module, users, settle=True, record={"sha256": {KEY: "from-record"}})
    assert result["failed"] is False and result["pending_apply_cleared"] is False, result
    with open(fleet_file(users, "applied.json")) as handle:
        assert json.load(handle)["sha256"] == {KEY: "from-record"}


@pytest.mark.parametrize("check_mode", [False, True], ids=["failed", "check"])
def test_a_failed_or_checked_gate_settles_nothing(users, run_module, tmp_path, check_mode):
    deploy(users, tmp_path, POLICY)
    record = pending_change(users)
    result = run(run_module, users, check_mode=check_mode, logins=[login(password="wrong")], settle=True)
    assert result["failed"] is not check_mode, result
    assert "pending_apply_cleared" not in result
    with open(fleet_file(users, "pending_apply.json")) as handle:
        assert json.load(handle) == record
    assert not os.path.exists(fleet_file(users, "applied.json"))
