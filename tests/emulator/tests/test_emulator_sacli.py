"""sacli of the emulator: output formats, commands, post-auth loading at start, the call log and faults."""

import ast
import json
import time

import pytest

SCRIPT_KEY = "auth.module.post_auth_script"
SERVICES = (
    "api", "auth", "bridge", "client_query", "crl", "daemon_pre", "db_push", "iptables_web", "ip6tables_web",
    "log", "openvpn_0", "openvpn_1", "subscription", "user", "web",
)


def pretty(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def parse_start(stdout):
    """Split the full output of start into its JSON object and its WILL_RESTART list."""
    lines = stdout.splitlines()
    assert lines[0] == "RunStart warm None"
    assert lines[-1].startswith("WILL_RESTART [")
    return json.loads("\n".join(lines[1:-1])), ast.literal_eval(lines[-1][len("WILL_RESTART "):])


def load_script(server, tmp_path, text):
    path = tmp_path / "post_auth.py"
    path.write_text(text)
    server.sacli("--key", SCRIPT_KEY, "--value_file=%s" % path, "ConfigPut")


# configuration -----------------------------------------------------------------

def test_configquery_is_one_sorted_json_object_of_strings(server, tmp_path):
    multi = tmp_path / "multi.txt"
    multi.write_text("line one\nline two\n")
    server.sacli("--key", "aaa.multi", "--value_file", str(multi), "ConfigPut")

    stdout = server.sacli("ConfigQuery").stdout
    config = json.loads(stdout)

    assert stdout == pretty(config)
    assert all(isinstance(value, str) for value in config.values())
    assert config["aaa.multi"] == "line one\nline two\n"
    assert '  "aaa.multi": "line one\\nline two\\n",\n' in stdout
    assert len(stdout.splitlines()) == len(config) + 2


PUT_FORMS = {
    "long options": ["--key", "k.x", "--value", "{value}", "ConfigPut"],
    "short options": ["-k", "k.x", "-v", "{value}", "ConfigPut"],
    "options after command": ["ConfigPut", "--key", "k.x", "--value", "{value}"],
    "options around command": ["-k", "k.x", "ConfigPut", "-v", "{value}"],
    "lower-case command": ["-k", "k.x", "-v", "{value}", "configput"],
    "upper-case command": ["-k", "k.x", "-v", "{value}", "CONFIGPUT"],
    "value_file=PATH": ["-k", "k.x", "--value_file={file}", "ConfigPut"],
    "value_file PATH": ["-k", "k.x", "--value_file", "{file}", "ConfigPut"],
}


@pytest.mark.parametrize("form", PUT_FORMS.values(), ids=PUT_FORMS.keys())
def test_configput_forms(server, tmp_path, form):
    value = "a value, with spaces"
    value_file = tmp_path / "value.txt"
    value_file.write_text(value)

    proc = server.sacli(*[arg.format(value=value, file=value_file) for arg in form])

    assert proc.stdout == ""
    assert server.config()["k.x"] == value


@pytest.mark.parametrize("mode, expected", [("silent", ""), ("list", "[True, {}]\n")])
@pytest.mark.parametrize("command", [
    ["-k", "host.name", "-v", "vpn.example.com", "ConfigPut"],
    ["-k", "host.name", "ConfigDel"],
    ["-u", "openvpn", "-k", "prop_deny", "-v", "false", "UserPropPut"],
    ["-u", "openvpn", "-k", "prop_deny", "UserPropDel"],
], ids=["ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel"])
def test_configput_output_setting(server, mode, expected, command):
    server.settings(configput_output=mode)

    assert server.sacli(*command).stdout == expected


def test_configput_output_installer_option(make_server):
    server = make_server("--configput-output", "list")

    assert server.sacli("-k", "a", "-v", "b", "ConfigPut").stdout == "[True, {}]\n"


@pytest.mark.parametrize("strip, stored", [(False, "first\nsecond\n\n"), (True, "first\nsecond")])
def test_value_file_strip_setting(server, tmp_path, strip, stored):
    server.settings(value_file_strip=strip)
    value_file = tmp_path / "value.txt"
    value_file.write_text("first\nsecond\n\n")

    server.sacli("-k", "k.file", "--value_file", str(value_file), "ConfigPut")

    assert server.config()["k.file"] == stored


def test_configdel_removes_one_key(server):
    before = server.config()

    server.sacli("--key", "host.name", "ConfigDel")
    server.sacli("--key", "no.such.key", "ConfigDel")

    after = server.config()
    del before["host.name"]
    assert after == before


def test_configreplace_replaces_the_whole_profile(server, tmp_path):
    wanted = {"auth.module.type": "local", "host.name": "new.example.com", "multi": "a\nb"}
    value_file = tmp_path / "profile.json"
    value_file.write_text(json.dumps(wanted))

    server.sacli("--value_file", str(value_file), "ConfigReplace")

    assert server.config() == wanted


@pytest.mark.parametrize("value", ["not json", '["a", "list"]', '{"number": 5}'])
def test_configreplace_rejects_what_is_not_an_object_of_strings(server, value):
    before = server.config()

    proc = server.sacli("--value", value, "ConfigReplace", check=False)

    assert proc.returncode != 0
    assert "ConfigReplace" in proc.stderr
    assert proc.stdout == ""
    assert server.config() == before


# user properties -----------------------------------------------------------------

def test_userpropget_lists_users_and_the_defaults(server):
    stdout = server.sacli("UserPropGet").stdout
    props = json.loads(stdout)

    assert stdout == json.dumps(props, indent=2) + "\n"
    assert props["__DEFAULT__"]["type"] == "user_default"
    assert props["openvpn"]["type"] == "user_connect"


@pytest.mark.parametrize("name, expected", [
    ("openvpn", ["openvpn"]),
    ("__DEFAULT__", ["__DEFAULT__"]),
    ("nobody", []),
    ("OpenVPN", []),
])
def test_userpropget_pfilt(server, name, expected):
    stdout = server.sacli("--pfilt", name, "UserPropGet").stdout

    assert list(json.loads(stdout)) == expected
    if not expected:
        assert stdout.strip() == "{}"


def test_userpropput_creates_users_and_groups(server):
    server.sacli("-u", "staff", "-k", "type", "-v", "group", "UserPropPut")
    server.sacli("-u", "staff", "-k", "group_declare", "-v", "true", "UserPropPut")
    server.sacli("--user", "dave", "--key", "conn_group", "--value", "staff", "UserPropPut")

    props = server.userprops()
    assert props["staff"] == {"type": "group", "group_declare": "true"}
    assert props["dave"] == {"conn_group": "staff"}


def test_userpropdel_and_userpropdelall(server):
    server.sacli("-u", "erin", "-k", "prop_deny", "-v", "true", "UserPropPut")
    server.sacli("-u", "erin", "-k", "conn_ip", "-v", "172.27.232.9", "UserPropPut")

    server.sacli("-u", "erin", "-k", "prop_deny", "UserPropDel")
    assert server.userprops()["erin"] == {"conn_ip": "172.27.232.9"}

    server.sacli("-u", "erin", "UserPropDelAll")
    props = server.userprops()
    assert "erin" not in props
    assert "openvpn" in props


# services --------------------------------------------------------------------------

def test_start_prints_runstart_json_and_will_restart(server):
    result = parse_start(server.sacli("start").stdout)[0]

    assert set(result) == {"active_profile", "errors", "last_restarted", "service_status"}
    assert result["active_profile"] == "Default"
    assert result["errors"] == {}
    assert isinstance(result["last_restarted"], str) and result["last_restarted"]
    assert set(SERVICES) <= set(result["service_status"])
    assert set(result["service_status"].values()) <= {"on", "restarted"}


def test_start_restarts_only_after_a_change(server):
    unchanged, unchanged_will = parse_start(server.sacli("start").stdout)
    server.sacli("-k", "vpn.client.routing.reroute_dns", "-v", "false", "ConfigPut")
    changed, changed_will = parse_start(server.sacli("start").stdout)

    assert "restarted" not in unchanged["service_status"].values()
    assert unchanged_will == []
    assert "restarted" in changed["service_status"].values()
    assert changed_will and all(isinstance(name, str) for name in changed_will)


def test_a_web_certificate_change_restarts_web_and_the_client_query_in_order(server):
    # as a real server after a cs.* change: client_query, iptables_web and web restart, api stays on,
    # and WILL_RESTART lists them in the order they restart, not sorted
    parse_start(server.sacli("start").stdout)
    server.sacli("--key", "cs.cert", "--value", "-----BEGIN CERTIFICATE-----", "ConfigPut")
    result, will = parse_start(server.sacli("start").stdout)
    restarted = sorted(name for name, state in result["service_status"].items() if state == "restarted")
    assert restarted == ["client_query", "iptables_web", "web"]
    assert result["service_status"]["api"] == "on"
    assert will == ["web", "client"]


def test_start_output_spaced_has_a_blank_line_before_will_restart(server):
    server.settings(start_output="spaced")
    lines = server.sacli("start").stdout.splitlines()
    assert lines[0] == "RunStart warm None" and lines[-2] == "" and lines[-1].startswith("WILL_RESTART [")
    assert json.loads("\n".join(lines[1:-2]))["errors"] == {}


def test_start_output_json_setting(server, make_server):
    server.settings(start_output="json")
    from_setting = server.sacli("start").stdout
    from_option = make_server("--start-output", "json").sacli("start").stdout

    for stdout in (from_setting, from_option):
        result = json.loads(stdout)
        assert stdout == pretty(result)
        assert result["errors"] == {}


def test_status_prints_the_json_alone(server):
    stdout = server.sacli("status").stdout
    result = json.loads(stdout)

    assert stdout == pretty(result)
    assert set(result) == {"active_profile", "errors", "last_restarted", "service_status"}
    assert set(result["service_status"].values()) == {"on"}


def test_version(server):
    assert server.sacli("Version").stdout == "%s\n" % server.root.settings()["version"]
    server.settings(version="2.9.5")
    assert server.sacli("version").stdout == "2.9.5\n"


def test_vpnsummary_counts_the_vpn_clients_setting_while_running(server):
    stdout = server.sacli("VPNSummary").stdout
    assert stdout == '{\n  "n_clients": 0\n}\n'

    server.settings(vpn_clients=3)
    assert json.loads(server.sacli("vpnsummary").stdout) == {"n_clients": 3}
    server.sacli("stop")
    assert json.loads(server.sacli("VPNSUMMARY").stdout) == {"n_clients": 0}
    server.sacli("start")
    assert json.loads(server.sacli("VPNSummary").stdout) == {"n_clients": 3}
    assert server.commands()[-1] == "VPNSummary"
    assert server.calls()[-1]["rc"] == 0


@pytest.mark.parametrize("options, expected", [([], 5), (["--stopped"], 0)], ids=["running", "stopped"])
def test_vpnsummary_installer_option(make_server, options, expected):
    server = make_server("--vpn-clients", "5", *options)

    assert server.root.settings()["vpn_clients"] == 5
    assert json.loads(server.sacli("VPNSummary").stdout) == {"n_clients": expected}


def test_fault_vpnsummary(server):
    server.set_fault("VPNSummary", action="exit", rc=2, stderr="agent busy\n", times=1)

    failed = server.sacli("VPNSummary", check=False)

    assert (failed.returncode, failed.stdout, failed.stderr) == (2, "", "agent busy\n")
    assert json.loads(server.sacli("VPNSummary").stdout) == {"n_clients": 0}
    assert [c["rc"] for c in server.calls()] == [2, 0]


USAGE_ERRORS = {
    "unknown command": ["NoSuchCommand"],
    "no command": [],
    "two commands": ["ConfigQuery", "status"],
    "unknown option": ["--bogus", "x", "ConfigQuery"],
    "ConfigPut without key": ["-v", "x", "ConfigPut"],
    "ConfigPut without value": ["-k", "x", "ConfigPut"],
    "ConfigPut with missing value_file": ["-k", "x", "--value_file", "/nonexistent/value", "ConfigPut"],
    "ConfigDel without key": ["ConfigDel"],
    "UserPropPut without user": ["-k", "x", "-v", "y", "UserPropPut"],
    "UserPropDel without key": ["-u", "openvpn", "UserPropDel"],
    "UserPropDelAll without user": ["UserPropDelAll"],
    "SetLocalPassword without new_pass": ["-u", "openvpn", "SetLocalPassword"],
}


@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors(server, args):
    config, props = server.config(), server.userprops()

    proc = server.sacli(*args, check=False)

    assert proc.returncode != 0
    assert proc.stderr.startswith("sacli: ")
    assert proc.stdout == ""
    assert (server.config(), server.userprops()) == (config, props)


# the post-auth script at start ---------------------------------------------------

GOOD = "def post_auth(authcred, attributes, authret, info):\n    return authret\n"
LOAD_CASES = {
    "does not compile": ("def post_auth(authcred:\n    return 1\n", "SyntaxError"),
    "raises at import": ("raise RuntimeError('no settings')\n" + GOOD, "RuntimeError: no settings"),
    "exits at import": ("import sys\nsys.exit(3)\n" + GOOD, "SystemExit"),
    "no entry point": ("def authenticate(authcred):\n    return None\n", "neither post_auth nor post_auth_cr"),
    "post_auth": (GOOD, None),
    "post_auth_cr": ("def post_auth_cr(authcred, attributes, authret, info, crstate):\n    return authret\n", None),
    "star import": ("from pyovpn.plugin import *\n\nRESULT = (SUCCEED, FAIL)\n" + GOOD, None),
}


@pytest.mark.parametrize("text, error", LOAD_CASES.values(), ids=LOAD_CASES.keys())
def test_start_loads_the_post_auth_script(server, tmp_path, text, error):
    load_script(server, tmp_path, text)

    result = parse_start(server.sacli("start").stdout)[0]

    assert server.config()[SCRIPT_KEY] == text
    if error is None:
        assert result["errors"] == {}
    else:
        assert error in json.dumps(result["errors"])
    assert json.loads(server.sacli("status").stdout)["errors"] == result["errors"]


# the call log ------------------------------------------------------------------------

def test_call_log_records_names_never_values(server):
    secret = "Zebra-Secret-4417"
    server.sacli("--key", "x.token", "--value", secret, "ConfigPut")
    server.sacli("-u", "alice", "-k", "pvt_token", "-v", secret, "UserPropPut")
    server.sacli("--user", "alice", "--new_pass", secret, "SetLocalPassword")
    auth = server.authcli("--user", "alice", "--pass", secret)
    server.sacli("NoSuchCommand", check=False)

    assert auth.returncode == 0, auth.stdout
    calls = server.root.calls()
    assert [(c["tool"], c["command"]) for c in calls] == [
        ("sacli", "ConfigPut"), ("sacli", "UserPropPut"), ("sacli", "SetLocalPassword"),
        ("authcli", "authenticate"), ("sacli", "NoSuchCommand"),
    ]
    assert calls[0]["options"] == ["key", "value"]
    assert calls[1]["options"] == ["key", "user", "value"]
    assert calls[2]["options"] == ["new_pass", "user"]
    assert {"password", "user"} <= set(calls[3]["options"])
    assert [c["rc"] for c in calls[:4]] == [0, 0, 0, 0]
    assert calls[4]["rc"] != 0
    assert all(isinstance(c["duration"], float) and c["duration"] >= 0 for c in calls)
    with open(server.root.call_log) as handle:
        assert secret not in handle.read()
    with open(server.root.log_file) as handle:
        assert secret not in handle.read()


# fault injection ----------------------------------------------------------------------

def test_fault_exit_stays_armed(server):
    server.set_fault("ConfigQuery", action="exit", rc=3, stderr="database is locked\n")

    for attempt in range(2):
        proc = server.sacli("ConfigQuery", check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", "database is locked\n"), attempt


def test_fault_garbage(server):
    server.set_fault("status", action="garbage")

    proc = server.sacli("status")

    assert proc.stdout.strip()
    with pytest.raises(ValueError):
        json.loads(proc.stdout)


def test_fault_hang_then_complete(server):
    server.set_fault("ConfigQuery", action="hang", seconds=1)

    started = time.monotonic()
    proc = server.sacli("ConfigQuery")

    assert time.monotonic() - started >= 1
    assert json.loads(proc.stdout)["auth.module.type"] == "local"


@pytest.mark.parametrize("errors", [None, {"web": [["error", "port 943 in use"]]}])
def test_fault_start_errors(server, errors):
    server.set_fault("start", action="errors", errors=errors)

    result = parse_start(server.sacli("start").stdout)[0]

    assert result["errors"]
    if errors:
        assert result["errors"] == errors


def test_fault_status_off(server):
    server.set_fault("status", action="off", services=["web", "openvpn_0"])

    status = json.loads(server.sacli("status").stdout)["service_status"]

    assert status["web"] == status["openvpn_0"] == "off"
    assert {state for name, state in status.items() if name not in ("web", "openvpn_0")} == {"on"}


def test_fault_times_disarms(server):
    server.set_fault("Version", action="exit", times=2)

    codes = [server.sacli("version", check=False).returncode for attempt in range(3)]

    assert codes[0] != 0 and codes[1] != 0
    assert codes[2] == 0


def test_fault_after_lets_calls_through_first(server):
    server.set_fault("ConfigPut", action="exit", after=2, times=1)
    results = [server.sacli("--key", "k%d" % n, "--value", "v", "ConfigPut", check=False).returncode for n in range(4)]
    assert results == [0, 0, 1, 0]
    assert set(server.config()) >= {"k0", "k1", "k3"} and "k2" not in server.config()
