"""The log database and logdba: the rows logins and sacli calls write, every option, the settings' variants.

Most runs call the tools' ``main`` in this process (the code the installed wrappers run), so that
each test stays fast; the wrappers themselves run as processes where the test is about them.
"""

import ast
import contextlib
import csv
import io
import json
import os
import signal
import stat
import subprocess
import time

import pytest

from asemu import authcli, logdb, logdba, sacli

PASSWORD = "pw-Alice-1"
ANDROID = ["--client-info", "IV_PLAT=android", "--client-info", "IV_VER=3.git::d3f8b18b",
           "--client-info", "IV_GUI_VER=OCAndroid_3.0.5"]


def run_main(module, server, *argv):
    """Run a tool's main(ROOT, argv) here; (rc, stdout).  The SIGTERM handler it sets is undone."""
    previous = signal.getsignal(signal.SIGTERM)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = module.main(server.path, list(argv))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return rc, out.getvalue()


def login(server, *argv):
    """One authcli run; (rc, the fields it printed)."""
    rc, out = run_main(authcli, server, *argv)
    fields = {}
    for line in out.splitlines()[1:]:
        if line.startswith("  ") and " : " in line:
            name, value = line[2:].split(" : ", 1)
            fields[name] = ast.literal_eval(value) if name == "proplist" else value
    return rc, fields


def logdba_rows(server, *argv):
    rc, out = run_main(logdba, server, "--json", *argv)
    assert rc == 0
    return json.loads(out)


def load_script(server, text):
    rc, _out = run_main(sacli, server, "--key", "auth.module.post_auth_script", "--value", text, "ConfigPut")
    assert rc == 0


@pytest.fixture
def alice(server):
    server.set_password("alice", PASSWORD)
    return server


# the rows of logins ---------------------------------------------------------------------------

def test_successful_login_row_through_the_installed_tools(alice):
    before = int(time.time())
    proc = alice.authcli("--user", "ALICE", "--pass", PASSWORD, "--client-ip", "192.0.2.7", "--protocol", "tcp",
                         *ANDROID)
    assert proc.returncode == 0, proc.stderr
    listing = subprocess.run([os.path.join(alice.path, "scripts", "logdba"), "--json", "--service_filt=VPN"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                             check=False)

    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert list(row) == list(logdb.FIELDS)
    assert before <= row["start_time"] <= row["timestamp"] <= time.time()
    assert {name: row[name] for name in logdb.FIELDS if name not in ("start_time", "timestamp")} == {
        "node": "as", "username": "ALICE", "duration": 0, "service": "VPN", "active": "0", "auth": "1",
        "real_address": "192.0.2.7", "virtual_ipv4_address": row["virtual_ipv4_address"], "server_port": 443,
        "bytes_received": 0, "bytes_sent": 0, "total_bytes": 0, "error": None, "version": "3.git::d3f8b18b",
        "gui_version": "OCAndroid_3.0.5", "platform": "android", "protocol": "TCP", "proxied_ip": None,
    }
    assert row["virtual_ipv4_address"].startswith("172.27.")


@pytest.mark.parametrize("user, password, error", [
    ("alice", "wrong", "local auth failed: password verification failed"),
    ("openvpn", "anything", "local auth failed: no local password for user"),
    ("Nobody", "anything", "local auth failed: no local password for user"),
])
def test_failed_login_row(alice, user, password, error):
    assert login(alice, "--user", user, "--pass", password)[0] == 1

    [row] = logdba_rows(alice, "--service_filt=VPN")

    assert (row["username"], row["auth"], row["duration"], row["error"]) == (user, "0", None, error)
    assert row["protocol"] == "UDP" and row["server_port"] == 1194
    assert (row["platform"], row["version"], row["virtual_ipv4_address"], row["total_bytes"]) == (None,) * 4


ANDROID_REFUSED = (
    "def post_auth(authcred, attributes, authret, info):\n"
    "    if attributes['client_info'].get('IV_PLAT') == 'android':\n"
    "        authret['status'] = FAIL\n"
    "        authret['reason'] = 'policy: android is not allowed'\n"
    "        authret['client_reason'] = 'Not from this device'\n"
    "    return authret\n"
)


def test_post_auth_refusal_reason_is_the_error(alice):
    load_script(alice, ANDROID_REFUSED)

    assert login(alice, "--user", "alice", "--pass", PASSWORD, *ANDROID)[0] == 1
    assert login(alice, "--user", "alice", "--pass", PASSWORD, "--client-info", "IV_PLAT=win")[0] == 0
    rows = logdba_rows(alice, "--service_filt=VPN")

    assert [(r["platform"], r["auth"], r["error"]) for r in rows] == [
        ("android", "0", "policy: android is not allowed"), ("win", "1", None)]


def test_a_server_that_logs_no_reason_for_a_refusal(alice):
    alice.root.update_settings(log_script_reason="generic")
    load_script(alice, ANDROID_REFUSED)

    assert login(alice, "--user", "alice", "--pass", PASSWORD, *ANDROID)[0] == 1
    assert login(alice, "--user", "alice", "--pass", "wrong", *ANDROID)[0] == 1
    rows = logdba_rows(alice, "--service_filt=VPN")

    # the script's refusal has a generic error text; the primary method's failure keeps its own
    assert [(r["auth"], r["error"]) for r in rows] == [
        ("0", "authentication failed"), ("0", "local auth failed: password verification failed")]


def test_challenge_row_then_the_answer(alice):
    load_script(alice, (
        "def post_auth_cr(authcred, attributes, authret, info, crstate):\n"
        "    if not crstate.response():\n"
        "        return crstate.challenge_post_auth(authret, 'Enter PIN')\n"
        "    authret['status'] = SUCCEED if crstate.response() == '4242' else FAIL\n"
        "    authret['reason'] = 'PIN checked'\n"
        "    return authret\n"
    ))
    rc, first = login(alice, "--user", "alice", "--pass", PASSWORD)
    state_id = first["challenge"].split(":")[2]
    assert rc == 1

    assert login(alice, "--user", "alice", "--pass", "CRV1::%s::1111" % state_id)[0] == 1
    rc, again = login(alice, "--user", "alice", "--pass", PASSWORD)
    assert login(alice, "--user", "alice", "--pass", "CRV1::%s::4242" % again["challenge"].split(":")[2])[0] == 0

    rows = logdba_rows(alice, "--service_filt=VPN")
    assert [(r["auth"], r["duration"], r["error"]) for r in rows] == [
        ("0", None, "challenge"), ("0", None, "PIN checked"), ("0", None, "challenge"), ("1", 0, None)]


def test_web_login_row(alice):
    assert login(alice, "--user", "alice", "--pass", PASSWORD, "--web", "--client-ip", "192.0.2.9")[0] == 0
    alice.sacli("-u", "alice", "-k", "prop_deny_web", "-v", "true", "UserPropPut")
    assert login(alice, "--user", "alice", "--pass", PASSWORD, "--web")[0] == 1

    rows = logdba_rows(alice, "--service_filt=WEB_CLIENT")

    assert [(r["service"], r["auth"], r["protocol"], r["server_port"], r["error"]) for r in rows] == [
        ("WEB_CLIENT", "1", "TCP", 943, None),
        ("WEB_CLIENT", "0", "TCP", 943, "user is denied web access (prop_deny_web)"),
    ]
    assert rows[0]["real_address"] == "192.0.2.9" and rows[0]["virtual_ipv4_address"] is None


def test_a_row_that_cannot_be_written_fails_nothing(alice):
    os.remove(alice.root.log_db)
    os.mkdir(alice.root.log_db)  # a folder where the database should be

    assert login(alice, "--user", "alice", "--pass", PASSWORD)[0] == 0
    assert run_main(sacli, alice, "Version")[0] == 0
    with open(alice.root.log_file) as handle:
        log = handle.read()
    assert log.count("[log#error] log.db row not written") == 2, log


# sacli's rows -----------------------------------------------------------------------------------

def test_sacli_calls_add_xml_api_rows(server):
    server.sacli("ConfigQuery")
    assert server.sacli("ConfigPut", check=False).returncode == 1  # no --key
    assert server.sacli("NoSuchCommand", check=False).returncode != 0  # a bad command line: no row
    server.set_fault("status", action="exit", rc=3, times=1)
    assert server.sacli("status", check=False).returncode == 3  # stopped by a fault: no row
    server.settings(standby=True)
    assert server.sacli("Version", check=False).returncode == 1  # a standby has no agent: no row

    rows = logdba_rows(server, "--service_filt=XML_API", "--columns=+api_method")

    assert [(r["username"], r["api_method"], r["auth"], r["error"]) for r in rows] == [
        ("__local_root__", "ConfigQuery", "1", None),
        ("__local_root__", "ConfigPut", "0", "ConfigPut requires --key"),
    ]
    assert rows[0]["node"] == "as" and rows[0]["duration"] == 0 and rows[1]["duration"] is None


# the lag ----------------------------------------------------------------------------------------

def test_log_lag_hides_rows_until_they_are_due(make_server):
    server = make_server("--log-lag", "1")
    assert server.root.settings()["log_lag_seconds"] == 1
    written = time.time()
    assert run_main(sacli, server, "Version")[0] == 0

    assert logdba_rows(server) == []
    time.sleep(max(0.0, written + 1.2 - time.time()))
    assert [row["service"] for row in logdba_rows(server)] == ["XML_API"]


# logdba's options -------------------------------------------------------------------------------

NOW = int(time.time())
# (seconds before the fixture was made, row): written out of order, listed oldest first; the gaps
# leave minutes of slack to the relative filters
BACKDATED = [
    (1200, {"username": "__local_root__", "service": "XML_API", "auth": 1, "api_method": "ConfigQuery"}),
    (18000, {"username": "alice", "service": "VPN", "auth": 1, "duration": 0, "platform": "win"}),
    (9000, {"username": "bob", "service": "VPN", "auth": 0,
            "error": "local auth failed: password verification failed"}),
    (3000, {"username": "alice", "service": "WEB_CLIENT", "auth": 1, "duration": 0}),
    (5, {"username": "carol", "service": "VPN", "auth": 1, "active": 1, "duration": 0, "platform": "mac"}),
    (3 * 86400, {"username": "dave", "service": "WEB_ADMIN", "auth": 0, "error": "LOCKOUT: user temporarily locked"}),
]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A server whose log database holds rows of the last days (written with the emulator's own writer)."""
    from asemu.testing import install_server

    server = install_server(tmp_path_factory.mktemp("history") / "as")
    server.made = int(time.time())
    for ago, row in BACKDATED:
        row = dict(row, node="as", start_time=server.made - ago, timestamp=server.made - ago)
        assert logdb.write(server.root, row)
    return server


def names(rows):
    return [row["username"] for row in rows]


def utc(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


@pytest.mark.parametrize("argv, expected", [
    ([], ["dave", "alice", "bob", "alice", "__local_root__", "carol"]),
    (["--start_time_ge=-10m"], ["carol"]),
    (["--start_time_ge", "-10m"], ["carol"]),
    (["--start_time_ge=-1800s"], ["__local_root__", "carol"]),
    (["--start_time_ge=-1800"], ["__local_root__", "carol"]),
    (["--start_time_ge=-1h"], ["alice", "__local_root__", "carol"]),
    (["--start_time_ge=-3h", "--start_time_lt=-2h"], ["bob"]),
    (["--start_time_ge=-1d"], ["alice", "bob", "alice", "__local_root__", "carol"]),
    (["--start_time_lt=-1d"], ["dave"]),
    (["--start_time_ge={made-3001}"], ["alice", "__local_root__", "carol"]),
    (["--start_time_ge={made-9001:utc}"], ["bob", "alice", "__local_root__", "carol"]),
    (["--start_time_ge={made-9001:utc}", "--start_time_lt={made-1200}"], ["bob", "alice"]),
    (["--service_filt=VPN"], ["alice", "bob", "carol"]),
    (["--service_filt=vpn,XML_API"], ["alice", "bob", "__local_root__", "carol"]),
    (["--service_filt=WEB%"], ["dave", "alice"]),
    (["--service_filt=WEB_%,%API"], ["dave", "alice", "__local_root__"]),
    (["--service_filt=%"], ["dave", "alice", "bob", "alice", "__local_root__", "carol"]),
    (["--auth_bfilt=0"], ["dave", "bob"]),
    (["--auth_bfilt=1", "--service_filt=VPN"], ["alice", "carol"]),
    (["--active=1"], ["carol"]),
    (["--active=0", "--auth_bfilt=1"], ["alice", "alice", "__local_root__"]),
    (["--username_filt=alice"], ["alice", "alice"]),
    (["--username_filt=%o%"], ["bob", "__local_root__", "carol"]),
    (["--username_filt=__local_root__"], ["__local_root__"]),
])
def test_filters(history, argv, expected):
    made = history.made
    argv = [item.replace("{made-3001}", str(made - 3001)).replace("{made-1200}", str(made - 1200))
            .replace("{made-9001:utc}", utc(made - 9001)) for item in argv]

    assert names(logdba_rows(history, *argv)) == expected


@pytest.mark.parametrize("argv, message", [
    (["--start_time_ge=-10x"], "not a time"),
    (["--start_time_lt=yesterday"], "not a time"),
    (["--auth_bfilt=2"], "--auth_bfilt must be 0 or 1"),
    (["--active=yes"], "--active must be 0 or 1"),
    (["--columns=username,nope"], "unknown column: nope"),
    (["--columns=+nope"], "unknown column: nope"),
    (["--columns=+api_method,username"], "either adds"),
    (["--json", "--csv"], "not allowed with"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_options_exit_2(history, capsys, argv, message):
    rc, out = run_main(logdba, history, *argv)

    assert (rc, out) == (2, "")
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("columns, expected", [
    ("+api_method", list(logdb.FIELDS) + ["api_method"]),
    ("+api_method,+error", list(logdb.FIELDS) + ["api_method"]),
    ("username,error,auth", ["username", "error", "auth"]),
    ("api_method", ["api_method"]),
])
def test_columns(history, columns, expected):
    rows = logdba_rows(history, "--columns=" + columns, "--service_filt=XML_API")

    assert [list(row) for row in rows] == [expected]
    if "api_method" in expected:
        assert rows[0]["api_method"] == "ConfigQuery"


def test_csv_has_a_header_line_and_empty_nulls(history):
    rc, out = run_main(logdba, history, "--csv", "--service_filt=VPN", "--columns=username,auth,duration,error")

    assert rc == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["username", "auth", "duration", "error"],
        ["alice", "1", "0", ""],
        ["bob", "0", "", "local auth failed: password verification failed"],
        ["carol", "1", "0", ""],
    ]


def test_text_table(history):
    rc, out = run_main(logdba, history, "--service_filt=VPN", "--columns=username,service,auth")

    assert rc == 0
    assert [line.split() for line in out.splitlines()] == [
        ["username", "service", "auth"], ["alice", "VPN", "1"], ["bob", "VPN", "0"], ["carol", "VPN", "1"]]


def test_empty_result_in_every_format(history):
    filters = ["--username_filt=nobody", "--columns=username,auth"]
    assert logdba_rows(history, *filters) == []
    assert run_main(logdba, history, "--csv", *filters) == (0, "username,auth\n")
    assert run_main(logdba, history, *filters)[1].split() == ["username", "auth"]


def test_settings_json_object_and_text_times(make_server):
    server = make_server("--logdba-json", "object", "--log-time-format", "text")
    started = NOW - 7200
    assert logdb.write(server.root, {"username": "alice", "service": "VPN", "auth": 1, "start_time": started})

    data = logdba_rows(server, "--columns=username,start_time,timestamp")
    rc, out = run_main(logdba, server, "--csv", "--columns=username,start_time")

    assert rc == 0
    assert list(data) == ["rows", "total"] and data["total"] == 1
    [row] = data["rows"]
    assert row["start_time"] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started))
    assert time.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S")
    assert out.splitlines()[1] == "alice,%s" % row["start_time"]


def test_logdba_calls_are_logged_by_name(history):
    history.reset_calls()
    run_main(logdba, history, "--json", "--service_filt=VPN")
    run_main(logdba, history, "--auth_bfilt=9")

    calls = history.calls("logdba")
    assert [(c["command"], c["options"], c["rc"]) for c in calls] == [
        ("query", ["json", "service_filt"], 0), ("query", ["auth_bfilt"], 2)]


# authret.state across session logins ------------------------------------------------------------

STATE_SCRIPT = """
import json

GROUP_SELECT = True

def post_auth(authcred, attributes, authret, info):
    seen = authret.state if hasattr(authret, 'state') else '<none>'
    session = info['auth_method'] in ('session', 'autologin') or attributes.get('reauth')
    if not session:
        mode = attributes['client_info'].get('STATE', 'set')
        if mode == 'set':
            authret.state = {'group': 'g-' + authret['user'], 'from': authcred['client_ip_addr']}
        elif mode == 'unpicklable':
            authret.state = lambda: 'a function'
    elif seen != '<none>':
        authret['proplist']['conn_group'] = seen['group']
    authret['client_reason'] = json.dumps({'method': info['auth_method'], 'seen': seen})
    return authret
"""


def seen(fields):
    return json.loads(fields["client_reason"])["seen"]


def test_authret_state_reaches_the_session_logins_of_its_user(alice):
    alice.set_password("bob", "pw-bob")
    load_script(alice, STATE_SCRIPT)

    rc, full = login(alice, "--user", "alice", "--pass", PASSWORD, "--client-ip", "10.1.1.1")
    _rc, session = login(alice, "--user", "alice", "--auth-method", "session")
    _rc, autologin = login(alice, "--user", "ALICE", "--auth-method", "autologin")
    _rc, reauth = login(alice, "--user", "alice", "--pass", PASSWORD, "--reauth")
    _rc, other = login(alice, "--user", "bob", "--auth-method", "session")

    assert rc == 0 and seen(full) == "<none>"
    kept = {"group": "g-alice", "from": "10.1.1.1"}
    assert seen(session) == seen(autologin) == seen(reauth) == kept
    assert session["proplist"]["conn_group"] == "g-alice"
    assert seen(other) == "<none>"
    mode = os.stat(alice.root.authret_state_file).st_mode
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("mode, logged", [("none", False), ("unpicklable", True)])
def test_a_new_full_login_replaces_the_state(alice, mode, logged):
    load_script(alice, STATE_SCRIPT)
    assert login(alice, "--user", "alice", "--pass", PASSWORD)[0] == 0

    rc, full = login(alice, "--user", "alice", "--pass", PASSWORD, "--client-info", "STATE=" + mode)
    _rc, session = login(alice, "--user", "alice", "--auth-method", "session")

    assert rc == 0, full
    assert seen(session) == "<none>"
    with open(alice.root.log_file) as handle:
        assert ("authret.state of alice cannot be pickled, dropped" in handle.read()) is logged


def test_a_failed_login_keeps_no_state(alice):
    load_script(alice, STATE_SCRIPT)

    assert login(alice, "--user", "alice", "--pass", "wrong")[0] == 1
    assert seen(login(alice, "--user", "alice", "--auth-method", "session")[1]) == "<none>"
    assert not os.path.exists(alice.root.authret_state_file)
