"""authcli of the emulator: local authentication, its output, and the post-auth script contract."""

import ast
import base64
import fcntl
import json
import os
import re
import select
import subprocess
import termios
import time

import pytest

PASSWORD = "pw-Alice-1"
HW_ADDR = "00:1a:2b:3c:4d:5e"
ABSENT = "<absent>"

# Reports what the script receives in client_reason, which authcli prints as one line.
PROBE = """
import json

def post_auth(authcred, attributes, authret, info):
    seen = {"authcred": authcred, "attributes": attributes, "authret": dict(authret), "info": info}
    authret["client_reason"] = json.dumps(seen, default=repr)
    return authret
"""

CHALLENGE = """
import json

def post_auth_cr(authcred, attributes, authret, info, crstate):
    answer = crstate.response()
    if not answer:
        crstate["expected"] = "4242"
        crstate["asked_from"] = authcred["client_ip_addr"]
        return crstate.challenge_post_auth(authret, "Enter PIN", echo=ECHO)
    authret["client_reason"] = json.dumps({"answer": answer, "kept": dict(crstate)})
    authret["status"] = SUCCEED if answer == crstate.get("expected") else FAIL
    return authret
"""


@pytest.fixture
def alice(server):
    """The server with a local user alice."""
    server.set_password("alice", PASSWORD)
    return server


def load_script(server, tmp_path, text):
    path = tmp_path / "post_auth.py"
    path.write_text(text)
    server.sacli("--key", "auth.module.post_auth_script", "--value_file=%s" % path, "ConfigPut")


def parse(stdout):
    """The fields authcli prints, in order, with proplist as a dict."""
    lines = stdout.splitlines()
    assert lines[0] == "API METHOD: authenticate", stdout
    fields = {}
    for line in lines[1:]:
        if line != "AUTH_RETURN":
            assert line.startswith("  ") and " : " in line, line
            name, value = line[2:].split(" : ", 1)
            fields[name] = value
    if "proplist" in fields:
        fields["proplist"] = ast.literal_eval(fields["proplist"])
    return fields


def authenticate(server, *args):
    """Run authcli; return its exit code and the fields it printed."""
    proc = server.authcli(*args)
    assert proc.stdout, proc.stderr
    return proc.returncode, parse(proc.stdout)


def seen_by_script(fields, path):
    value = json.loads(fields["client_reason"])
    for name in path.split("."):
        value = value.get(name, ABSENT) if isinstance(value, dict) else ABSENT
    return value


# local authentication ---------------------------------------------------------------

def test_local_auth_success(alice):
    proc = alice.authcli("--user", "alice", "--pass", PASSWORD)
    fields = parse(proc.stdout)

    assert proc.stdout.splitlines()[:2] == ["API METHOD: authenticate", "AUTH_RETURN"]
    assert proc.returncode == 0
    assert list(fields) == ["status", "session_id", "reason", "expire", "user", "proplist"]
    assert fields["status"] == "SUCCEED"
    assert len(base64.b64decode(fields["session_id"], validate=True)) > 0
    assert fields["reason"] == "local auth succeeded"
    assert int(fields["expire"]) > time.time()
    assert fields["user"] == "alice"
    assert fields["proplist"]["type"] == "user_connect"
    assert fields["proplist"]["prop_autogenerate"] == "true"


@pytest.mark.parametrize("user, password", [
    ("alice", "wrong"),
    ("openvpn", "anything"),
    ("nobody", "anything"),
], ids=["wrong password", "no local password", "unknown user"])
def test_local_auth_failure(alice, user, password):
    rc, fields = authenticate(alice, "--user", user, "--pass", password)

    assert rc != 0
    assert list(fields) == ["status", "reason", "user"]
    assert fields["status"] == "FAIL"
    assert fields["reason"].startswith("local auth failed")


def test_authcli_header_setting_omits_auth_return(alice):
    alice.settings(authcli_header=False)

    lines = alice.authcli("--user", "alice", "--pass", PASSWORD).stdout.splitlines()

    assert lines[:2] == ["API METHOD: authenticate", "  status : SUCCEED"]
    assert "AUTH_RETURN" not in lines


def test_authcli_fault(alice):
    alice.set_fault("authcli", action="exit", rc=4, stderr="auth service down\n", times=1)

    failed = alice.authcli("--user", "alice", "--pass", PASSWORD)
    rc = authenticate(alice, "--user", "alice", "--pass", PASSWORD)[0]

    assert (failed.returncode, failed.stdout, failed.stderr) == (4, "", "auth service down\n")
    assert rc == 0


# what the script receives -------------------------------------------------------------

PROBES = {
    "defaults": ("", [], {
        "authcred.username": "alice",
        "authcred.client_ip_addr": "127.0.0.1",
        "authcred.client_hw_addr": ABSENT,
        "authcred.static_response": ABSENT,
        "authcred.password": ABSENT,
        "attributes.client_info": {},
        "attributes.vpn_auth": True,
        "attributes.reauth": False,
        "attributes.log_service_name": ABSENT,
        "authret.status": 0,
        "authret.user": "alice",
        "authret.proplist.type": "user_connect",
        "authret.proplist.prop_autogenerate": "true",
        "info.auth_method": "local",
    }),
    "hardware address": ("", ["--hw-addr", HW_ADDR], {
        "authcred.client_hw_addr": HW_ADDR,
        "attributes.client_info.IV_HWADDR": HW_ADDR,
    }),
    "client info": ("", ["--client-info", "IV_PLAT=win", "--client-info", "UV_APPVER_CHROME=120.0"], {
        "attributes.client_info": {"IV_PLAT": "win", "UV_APPVER_CHROME": "120.0"},
    }),
    "client address": ("", ["--client-ip", "10.1.2.3"], {"authcred.client_ip_addr": "10.1.2.3"}),
    "web login": ("", ["--web"], {
        "attributes.vpn_auth": False,
        "attributes.log_service_name": "WEB_CLIENT",
    }),
    "reauth": ("", ["--reauth"], {"attributes.reauth": True}),
    "static response": ("", ["--sr", "123456"], {"authcred.static_response": "123456"}),
    "retain password": ("RETAIN_PASSWORD = True\n", [], {"authcred.password": PASSWORD}),
}


@pytest.mark.parametrize("flags, args, expected", PROBES.values(), ids=PROBES.keys())
def test_script_arguments(alice, tmp_path, flags, args, expected):
    load_script(alice, tmp_path, flags + PROBE)

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD, *args)

    assert rc == 0, fields
    assert {path: seen_by_script(fields, path) for path in expected} == expected


def test_user_name_is_normalized_and_proplist_prefilled(server, tmp_path):
    server.set_password("Alice", PASSWORD)
    server.sacli("-u", "Alice", "-k", "conn_ip", "-v", "172.27.232.5", "UserPropPut")
    load_script(server, tmp_path, PROBE)

    rc, fields = authenticate(server, "--user", "ALICE", "--pass", PASSWORD)

    assert rc == 0
    assert fields["user"] == "Alice"
    assert seen_by_script(fields, "authcred.username") == "ALICE"
    assert seen_by_script(fields, "authret.user") == "Alice"
    assert seen_by_script(fields, "authret.proplist.conn_ip") == "172.27.232.5"


def test_star_import_of_pyovpn_plugin(alice, tmp_path):
    load_script(alice, tmp_path, (
        "from pyovpn.plugin import *\n\n"
        "def post_auth(authcred, attributes, authret, info):\n"
        "    authret['status'] = FAIL\n"
        "    authret['reason'] = 'denied with codes %d/%d' % (SUCCEED, FAIL)\n"
        "    return authret\n"
    ))

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD)

    assert rc != 0
    assert (fields["status"], fields["reason"]) == ("FAIL", "denied with codes 0/1")


def test_script_that_cannot_load_denies(alice, tmp_path):
    load_script(alice, tmp_path, "def post_auth(:\n")

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD)

    assert rc != 0
    assert fields["status"] == "FAIL"
    assert "SyntaxError" in fields["reason"]


# what the script returns ---------------------------------------------------------------

@pytest.mark.parametrize("returned, saved", [("authret", False), ("authret, {'last_login': 'monday'}", True)])
def test_return_forms(alice, tmp_path, returned, saved):
    load_script(alice, tmp_path, "def post_auth(authcred, attributes, authret, info):\n    return %s\n" % returned)

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD)

    assert (rc, fields["status"]) == (0, "SUCCEED")
    assert ("last_login" in alice.userprops()["alice"]) == saved
    if saved:
        assert alice.userprops()["alice"]["last_login"] == "monday"


def test_exception_fails_with_its_message(alice, tmp_path):
    load_script(alice, tmp_path, (
        "def post_auth(authcred, attributes, authret, info):\n"
        "    raise ValueError('token service unreachable')\n"
    ))

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD)

    assert rc != 0
    assert fields["status"] == "FAIL"
    assert "token service unreachable" in fields["reason"]
    assert "proplist" not in fields


@pytest.mark.parametrize("synchronous", [False, True])
def test_synchronous_flag_selects_the_thread(alice, tmp_path, synchronous):
    load_script(alice, tmp_path, (
        "import threading\n"
        "SYNCHRONOUS = %s\n\n"
        "def post_auth(authcred, attributes, authret, info):\n"
        "    return authret, {'thread': threading.current_thread().name}\n" % synchronous
    ))

    rc = authenticate(alice, "--user", "alice", "--pass", PASSWORD)[0]

    assert rc == 0
    assert (alice.userprops()["alice"]["thread"] == "MainThread") == synchronous


@pytest.mark.parametrize("group_select, marker", [(True, "chosen"), (False, "stored")])
def test_group_select_rereads_the_chosen_group(alice, tmp_path, group_select, marker):
    for group in ("stored", "chosen"):
        alice.sacli("-u", group, "-k", "type", "-v", "group", "UserPropPut")
        alice.sacli("-u", group, "-k", "group_declare", "-v", "true", "UserPropPut")
        alice.sacli("-u", group, "-k", "prop_marker", "-v", group, "UserPropPut")
    alice.sacli("-u", "alice", "-k", "conn_group", "-v", "stored", "UserPropPut")
    load_script(alice, tmp_path, (
        "GROUP_SELECT = %s\n\n"
        "def post_auth(authcred, attributes, authret, info):\n"
        "    authret['proplist']['conn_group'] = 'chosen'\n"
        "    return authret\n" % group_select
    ))

    rc, fields = authenticate(alice, "--user", "alice", "--pass", PASSWORD)

    assert rc == 0
    assert fields["proplist"]["conn_group"] == "chosen"
    assert fields["proplist"]["prop_marker"] == marker


@pytest.mark.parametrize("auth_null", [True, False])
def test_auth_null_skips_the_password_check(server, tmp_path, auth_null):
    server.sacli("-u", "bob", "-k", "type", "-v", "user_connect", "UserPropPut")
    load_script(server, tmp_path, "AUTH_NULL = %s\n" % auth_null + PROBE)

    rc, fields = authenticate(server, "--user", "bob", "--pass", "whatever")

    assert (rc == 0) == auth_null
    if auth_null:
        assert seen_by_script(fields, "info.auth_method") == "pas_only"
    else:
        assert fields["reason"].startswith("local auth failed")


# challenge/response ------------------------------------------------------------------

@pytest.mark.parametrize("echo, flags", [(True, "R,E"), (False, "R")])
def test_dynamic_challenge_round_trip(alice, tmp_path, echo, flags):
    load_script(alice, tmp_path, "ECHO = %s\n" % echo + CHALLENGE)

    rc, first = authenticate(alice, "--user", "alice", "--pass", PASSWORD, "--client-ip", "10.9.8.7")
    match = re.fullmatch(r"CRV1:%s:(\w+):YWxpY2U=:Enter PIN" % flags, first.get("challenge", ""))
    assert rc != 0 and first["status"] == "FAIL"
    assert match, first

    rc, second = authenticate(alice, "--user", "alice", "--pass", "CRV1::%s::4242" % match.group(1))

    assert (rc, second["status"]) == (0, "SUCCEED")
    assert second["reason"] == "local auth succeeded", "the answer keeps the primary authentication's reason"
    assert json.loads(second["client_reason"]) == {
        "answer": "4242", "kept": {"expected": "4242", "asked_from": "10.9.8.7"},
    }


def test_wrong_answer_reaches_the_script(alice, tmp_path):
    load_script(alice, tmp_path, "ECHO = True\n" + CHALLENGE)
    first = authenticate(alice, "--user", "alice", "--pass", PASSWORD)[1]
    state_id = first["challenge"].split(":")[2]

    rc, second = authenticate(alice, "--user", "alice", "--pass", "CRV1::%s::1111" % state_id)

    assert (rc != 0, second["status"]) == (True, "FAIL")
    assert json.loads(second["client_reason"])["answer"] == "1111"


@pytest.mark.parametrize("state_id", ["", "0123456789abcdef0123456789abcdef", "used"])
def test_unknown_challenge_state_fails(alice, tmp_path, state_id):
    load_script(alice, tmp_path, "ECHO = True\n" + CHALLENGE)
    first = authenticate(alice, "--user", "alice", "--pass", PASSWORD)[1]
    if state_id == "used":
        state_id = first["challenge"].split(":")[2]
        assert authenticate(alice, "--user", "alice", "--pass", "CRV1::%s::4242" % state_id)[0] == 0

    rc, fields = authenticate(alice, "--user", "alice", "--pass", "CRV1::%s::4242" % state_id)

    assert rc != 0
    assert fields["status"] == "FAIL"
    assert "client_reason" not in fields


# the password prompt (no --pass) -----------------------------------------------------

def _take_terminal():
    """In the child (a new session): make its standard input, the pty's slave, the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def at_prompt(server, answer, *args, timeout=30):
    """Run authcli without --pass on a pty, typing ``answer`` once it asks; return (rc, stdout, tty output)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [server.authcli_path, *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_take_terminal,
        )
    finally:
        os.close(slave)
    tty = b""
    try:
        deadline = time.monotonic() + timeout
        while b"Password: " not in tty:
            assert time.monotonic() < deadline, tty
            ready = select.select([master], [], [], 1)[0]
            if ready:
                tty += os.read(master, 1024)
        os.write(master, answer.encode("utf-8") + b"\n")
        stdout, stderr = proc.communicate(timeout=timeout)
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the child and its terminal are gone
                break
            if not chunk:
                break
            tty += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode in (0, 1), stderr
    return proc.returncode, stdout.decode("utf-8"), tty.decode("utf-8")


def test_password_typed_at_the_prompt(alice):
    rc, stdout, tty = at_prompt(alice, PASSWORD, "--user", "alice")

    fields = parse(stdout)
    assert (rc, fields["status"], fields["reason"]) == (0, "SUCCEED", "local auth succeeded")
    assert "Password: " in tty, "getpass asks on the controlling terminal"
    assert PASSWORD not in tty, "the prompt does not echo"
    assert "Password" not in stdout
    call = alice.calls("authcli")[-1]
    assert "password" not in call["options"], "the call log names the options of the command line"


def test_wrong_password_typed_at_the_prompt(alice):
    rc, stdout = at_prompt(alice, "wrong", "--user", "alice")[:2]

    assert (rc, parse(stdout)["status"]) == (1, "FAIL")


def test_password_on_standard_input_without_a_terminal(alice):
    """Without a controlling terminal getpass reads standard input (and asks on standard error)."""
    proc = subprocess.run(
        [alice.authcli_path, "--user", "alice"], input=PASSWORD + "\n", capture_output=True, text=True,
        timeout=60, start_new_session=True, check=False,
    )

    assert (proc.returncode, parse(proc.stdout)["status"]) == (0, "SUCCEED"), proc.stderr
    assert "Password: " in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


def test_no_password_at_all_is_refused(alice):
    proc = subprocess.run(
        [alice.authcli_path, "--user", "alice"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60, start_new_session=True, check=False,
    )

    assert (proc.returncode, proc.stdout) == (2, "")
    assert "authcli: no password given" in proc.stderr


@pytest.mark.parametrize("method", ["session", "autologin"])
def test_logins_without_a_password_are_not_asked(alice, method):
    proc = subprocess.run(
        [alice.authcli_path, "--user", "alice", "--auth-method", method], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, start_new_session=True, check=False,
    )

    assert (proc.returncode, parse(proc.stdout)["status"]) == (0, "SUCCEED"), proc.stderr
    assert "Password" not in proc.stderr


@pytest.mark.parametrize("response, status", [("4242", "SUCCEED"), ("1111", "FAIL")])
def test_challenge_answer_typed_at_the_prompt(alice, tmp_path, response, status):
    load_script(alice, tmp_path, "ECHO = False\n" + CHALLENGE)
    rc, stdout = at_prompt(alice, PASSWORD, "--user", "alice")[:2]
    first = parse(stdout)
    assert (rc, first["status"]) == (1, "FAIL")
    state_id = first["challenge"].split(":")[2]

    rc, stdout, tty = at_prompt(alice, "CRV1::%s::%s" % (state_id, response), "--user", "alice")

    second = parse(stdout)
    assert second["status"] == status, second
    assert rc == (0 if status == "SUCCEED" else 1)
    assert json.loads(second["client_reason"])["answer"] == response, "the script got the typed answer"
    assert state_id not in tty


def test_what_compiling_the_script_warns_of_goes_to_the_log_not_to_stderr(alice, tmp_path):
    # an invalid escape sequence: a DeprecationWarning or, from Python 3.12, a SyntaxWarning at compile time
    load_script(alice, tmp_path, 'PATTERN = "\\d+"\n\ndef post_auth(authcred, attributes, authret, info):\n'
                                 '    return authret\n')
    for proc in (alice.authcli("--user", "alice", "--pass", PASSWORD), alice.sacli("start")):
        assert proc.returncode == 0, proc.stderr
        assert "Warning" not in proc.stderr and "escape" not in proc.stderr, proc.stderr
    with open(alice.root.log_file) as handle:
        log = handle.read()
    assert re.search(r"post_auth#warning.*line 1: (Deprecation|Syntax)Warning: invalid escape sequence", log), log
