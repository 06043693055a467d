"""The traffic generator: rates and caps, the population and its mix, the rows it writes, no calls."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asemu import logdba, passwords, sacli, traffic
from asemu.store import Store

# a script that refuses every login and puts what the client sent into the reason (the row's error)
REPORTER = """
import json

def post_auth(authcred, attributes, authret, info):
    authret['status'] = FAIL
    authret['reason'] = json.dumps({'hw': authcred.get('client_hw_addr'), 'ip': authcred['client_ip_addr'],
                                    'info': attributes['client_info'], 'method': info['auth_method']})
    return authret
"""


def generate(*argv):
    """Run asemu-traffic's main here with --json; (rc, the summary or None, stderr text)."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = traffic.main(None, [*argv, "--json"])
    assert {signum: signal.getsignal(signum) for signum in previous} == previous, "signal handlers restored"
    return rc, (json.loads(out.getvalue()) if rc == 0 else None), err.getvalue()


def run_main(module, server, *argv):
    """A tool's main(ROOT, argv) in this process; its stdout.  The SIGTERM handler it sets is undone."""
    out = io.StringIO()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out):
            assert module.main(server.path, list(argv)) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    return out.getvalue()


def rows(server, *argv):
    return json.loads(run_main(logdba, server, "--json", "--service_filt=VPN", *argv))


def config_put(server, key, value):
    run_main(sacli, server, "--key", key, "--value", value, "ConfigPut")


def load_script(server, text):
    config_put(server, "auth.module.post_auth_script", text)


# rate, duration and count ---------------------------------------------------------------------

def test_rate_for_a_duration_over_two_roots_adds_no_calls(make_server):
    servers = [make_server(), make_server()]
    calls = [server.root.calls() for server in servers]

    rc, summary, _err = generate(servers[0].path, servers[1].path, "--users", "6", "--rate", "50", "--duration", "1",
                                 "--wrong-password-rate", "0")

    assert rc == 0
    assert summary["logins"] == summary["succeeded"] == 50
    assert 0.98 <= summary["seconds"] < 1.8  # due at 0, 0.02, ..., 0.98 s: never faster than asked
    assert {path: counts["logins"] for path, counts in summary["per_root"].items()} == {
        servers[0].path: 25, servers[1].path: 25}
    for server, before in zip(servers, calls):
        assert server.root.calls() == before, "an in-process login is no authcli call"
        assert len(rows(server)) == 25
        with open(server.root.log_file) as handle:
            assert handle.read().count("[authcli] authenticate user=traffic-") == 25


def test_count_ends_the_run_before_the_duration(server):
    rc, summary, _err = generate(server.path, "--users", "3", "--rate", "200", "--count", "40", "--duration", "60")

    assert rc == 0
    assert summary["logins"] == 40 and len(rows(server)) == 40
    assert (40 - 1) / 200 <= summary["seconds"] < 1.5
    assert summary["interrupted"] is False


@pytest.mark.parametrize("argv, message", [
    (["--count", "5", "--rate", "501"], "--rate must be more than 0 and at most 500"),
    (["--count", "5", "--rate", "0"], "--rate must be more than 0"),
    (["--duration", "601"], "--duration must be more than 0 and at most 600"),
    (["--count", "100001"], "--count must be at least 1 and at most 100000"),
    (["--count", "0"], "--count must be at least 1"),
    ([], "give --duration SECONDS or --count N"),
    (["--count", "5", "--wrong-password-rate", "1.5"], "--wrong-password-rate must be at least 0 and at most 1"),
    (["--count", "5", "--platforms", "win=1,beos=2"], "--platforms: expected NAME=WEIGHT"),
    (["--count", "5", "--platforms", "win=0"], "no platform has a weight"),
    (["--count", "5", "--client-info", "beos:X=1"], "unknown platform 'beos'"),
    (["--count", "5", "--client-info", "NOVALUE"], "expects [PLATFORM:]NAME=VALUE"),
    (["--count", "5", "--bogus"], "unrecognized argument"),
])
def test_bounds_are_refused_before_any_login(server, argv, message):
    rc, _summary, err = generate(server.path, "--users", "2", *argv)

    assert rc == 2
    assert message in err
    assert rows(server) == []
    with Store(server.root.userprop_db) as db:
        assert "traffic-001" not in db.profiles()


def test_no_population_and_no_root_are_refused(server, tmp_path):
    assert generate(server.path, "--count", "3")[0] == 2
    assert "no users" in generate(server.path, "--count", "3")[2]
    assert "name at least one ROOT" in generate("--count", "3", "--users", "1")[2]
    rc, _summary, err = generate(str(tmp_path / "nothing"), "--count", "3", "--users", "1")
    assert rc == 1 and "not an installed emulated server" in err


# the population -----------------------------------------------------------------------------------

def test_users_are_created_once_with_passwords_from_the_seed(server):
    assert generate(server.path, "--users", "3", "--count", "1", "--rate", "100", "--seed", "7")[0] == 0
    with Store(server.root.userprop_db) as db:
        first = {name: db.items(name) for name in ("traffic-001", "traffic-002", "traffic-003")}
        assert "traffic-004" not in db.profiles()

    assert generate(server.path, "--users", "3", "--count", "1", "--rate", "100", "--seed", "7")[0] == 0
    with Store(server.root.userprop_db) as db:
        assert {name: db.items(name) for name in first} == first, "a second run changes nothing"
    for name, props in first.items():
        assert props["type"] == "user_connect"
        assert passwords.verify(traffic.user_password("7", name), props["pvt_password_digest"])
    assert traffic.user_password("7", "traffic-001") != traffic.user_password("8", "traffic-001")


def test_platform_weights_and_client_versions(server):
    rc, summary, _err = generate(server.path, "--users", "12", "--count", "60", "--rate", "500",
                                 "--platforms", "mac=1,android=1", "--wrong-password-rate", "0")

    assert rc == 0
    assert set(summary["per_platform"]) <= {"mac", "android"} and len(summary["per_platform"]) == 2
    platform_of = {}
    for row in rows(server):
        assert platform_of.setdefault(row["username"], row["platform"]) == row["platform"], "one platform per user"
        client = traffic.CLIENTS[row["platform"]]
        assert (row["version"], row["gui_version"]) == (client["IV_VER"], client["IV_GUI_VER"])
        assert row["auth"] == "1" and row["protocol"] in ("UDP", "TCP")
    counted = {name: sum(1 for p in platform_of.values() if p == name) for name in ("mac", "android")}
    assert counted == {name: sum(1 for user in platform_of if traffic.pick_platform(
        {"win": 0, "mac": 1, "linux": 0, "ios": 0, "android": 1}, "1", user) == name) for name in counted}


def test_platforms_are_stable_per_seed():
    weights = traffic.parse_platforms(traffic.DEFAULT_PLATFORMS)
    users = traffic.user_names(200)
    first = [traffic.pick_platform(weights, "s1", user) for user in users]

    assert first == [traffic.pick_platform(weights, "s1", user) for user in users]
    assert first != [traffic.pick_platform(weights, "s2", user) for user in users]
    share = {name: first.count(name) / len(users) for name in traffic.PLATFORMS}
    assert 0.28 <= share["win"] <= 0.52 and 0.02 <= share["linux"] <= 0.2


def test_devices_client_info_and_wrong_passwords(server):
    load_script(server, REPORTER)

    rc, summary, _err = generate(server.path, "--users", "10", "--count", "80", "--rate", "500",
                                 "--client-info", "win:UV_APPVER_FIREFOX=128.0.3", "--client-info", "UV_TEST=1",
                                 "--wrong-password-rate", "0.25", "--new-device-rate", "0")

    assert rc == 0
    assert summary["failed"] == 80 and summary["new_device"] == 0
    assert 8 <= summary["wrong_password"] <= 35
    reported, wrong = {}, 0
    for row in rows(server):
        if row["error"] == "local auth failed: password verification failed":
            wrong += 1
            continue
        sent = json.loads(row["error"])
        info = sent["info"]
        assert info["UV_TEST"] == "1" and info["IV_PLAT"] == row["platform"]
        assert ("UV_APPVER_FIREFOX" in info) is (row["platform"] == "win")
        if row["platform"] in ("win", "mac", "linux"):
            assert sent["hw"] == info["IV_HWADDR"] and len(sent["hw"].split(":")) == 6
        else:
            assert sent["hw"] is None and len(info["IV_HWADDR"]) == 36  # a UUID, no MAC
        assert sent["ip"] == row["real_address"] and sent["method"] == "local"
        device = (info["IV_HWADDR"], row["real_address"], row["protocol"])
        assert reported.setdefault(row["username"], device) == device, "one device per user"
    assert wrong == summary["wrong_password"]


def test_new_devices(server):
    load_script(server, REPORTER)

    rc, summary, _err = generate(server.path, "--users", "2", "--count", "30", "--rate", "500",
                                 "--new-device-rate", "1", "--wrong-password-rate", "0")

    assert rc == 0 and summary["new_device"] == 30
    devices = [json.loads(row["error"])["info"]["IV_HWADDR"] for row in rows(server)]
    assert len(set(devices)) == 30


def test_population_file(server, tmp_path):
    run_main(sacli, server, "--user", "carol", "--new_pass", "pw-carol", "SetLocalPassword")
    population = tmp_path / "population.json"
    population.write_text(json.dumps([
        {"user": "carol", "password": "pw-carol", "method": "local", "platform": "linux"},
        {"user": "dan", "password": "pw-dan", "method": "local", "platform": "ios"},
    ]))

    rc, summary, _err = generate(server.path, "--population", str(population), "--count", "8", "--rate", "500",
                                 "--wrong-password-rate", "0")

    assert rc == 0
    assert summary["per_method"] == {"local": {"logins": 8, "succeeded": summary["per_platform"]["linux"]["logins"],
                                               "failed": summary["per_platform"]["ios"]["logins"]}}
    assert {(row["username"], row["platform"], row["auth"]) for row in rows(server)} == {
        ("carol", "linux", "1"), ("dan", "ios", "0")}


@pytest.mark.parametrize("entries, message", [
    ({"user": "x"}, "expected a JSON list"),
    ([{"user": "x", "password": "y", "method": "pam"}], "method 'pam' of x"),
    ([{"user": "x", "password": "y", "platform": "beos"}], "platform 'beos' of x"),
    ([{"user": "x"}], "needs \"user\" and \"password\""),
])
def test_bad_population_files(server, tmp_path, entries, message):
    population = tmp_path / "population.json"
    population.write_text(json.dumps(entries))

    rc, _summary, err = generate(server.path, "--population", str(population), "--count", "2")

    assert rc == 2 and message in err


# directory servers: loopback only ---------------------------------------------------------------

@pytest.mark.parametrize("method, key, host, refused", [
    ("ldap", "auth.ldap.0.server.0.host", "192.0.2.10", True),
    ("radius", "auth.radius.0.server.0.host", "192.0.2.10", True),
    ("ldap", "auth.ldap.0.server.0.host", "127.0.0.1:1", False),
    ("radius", "auth.radius.0.server.0.host", "localhost", False),
    ("local", "auth.ldap.0.server.0.host", "192.0.2.10", False),
])
def test_directory_servers_must_be_on_loopback(server, make_server, tmp_path, method, key, host, refused):
    good, other = server, make_server()
    config_put(other, key, host)
    config_put(other, "auth.radius.0.server.0.auth_port", "1")
    config_put(other, "auth.radius.0.server.0.timeout", "0.2")
    population = tmp_path / "population.json"
    population.write_text(json.dumps([{"user": "u", "password": "p", "method": method}]))

    rc, summary, err = generate(good.path, other.path, "--population", str(population), "--count", "2",
                                "--rate", "100", "--wrong-password-rate", "0")

    if refused:
        assert rc == 1 and "%s is not on a loopback address" % host in err
        assert rows(good) == [] and rows(other) == []
    else:
        assert rc == 0 and summary["logins"] == 2 and summary["failed"] == 2
        assert [row["auth"] for row in rows(other)] == ["0"]


# the processes: signals, the wrapper, the console script --------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_with_the_summary(server, signum):
    proc = subprocess.Popen([sys.executable, "-m", "asemu.traffic", server.path, "--users", "2", "--rate", "20",
                             "--duration", "60", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    deadline = time.time() + 10
    while not rows(server) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)

    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert 1 <= summary["logins"] < 100
    assert len(rows(server)) == summary["logins"]


def test_installed_wrapper_defaults_to_its_root(server):
    proc = subprocess.run([os.path.join(server.path, "scripts", "traffic"), "--users", "2", "--count", "3",
                           "--rate", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60, check=False)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("3 logins (")
    assert "  root %s: 3 logins" % server.path in proc.stdout
    assert len(rows(server)) == 3
    assert server.calls("authcli") == []


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")
    with (Path(__file__).resolve().parents[1] / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]

    assert scripts["asemu-traffic"] == "asemu.traffic:main"
