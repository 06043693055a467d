"""login_soak with logdba and the clock replaced: the exact command lines, the polls, late rows, the verdicts."""

import datetime
import json
import os

import pytest
from ansible.module_utils import basic

from ansible_collections.ovpnas.fleet.plugins.modules import login_soak

T0 = 1800000000.0
TIMEOUT = "/usr/bin/timeout"
ENV = dict(LC_ALL="C", LANG="C", LC_MESSAGES="C", TZ="UTC")
BAD = "local auth failed: password verification failed"
NEW = "post_auth: this client is not allowed"


class Clock:
    """The module's clock and sleep: sleeping moves the clock on at once."""

    def __init__(self, now=T0):
        self.now = now
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Logdba:
    """logdba as run_command sees it: prints the rows written by now that start within --start_time_ge."""

    def __init__(self, clock, shape="list"):
        self.clock = clock
        self.shape = shape
        self.rows = []        # (written at, start time, row)
        self.outputs = []     # (rc, out, err) or an exception, answered before any rows
        self.calls = []

    def login(self, at, user="user", auth=True, error="", platform="win", service="VPN", delay=2.0):
        row = dict(node="as1", username=user, start_time=int(at), service=service, auth="1" if auth else "0",
                   error=error, platform=platform, real_address="198.51.100.7")
        self.rows.append((at + delay, at, row))

    def logins(self, start, end, count, **options):
        """``count`` logins spread evenly over [start, end)."""
        step = (end - start) / float(count)
        for index in range(count):
            self.login(start + index * step, user="user%d" % index, **options)

    def run_command(self, argv, check_rc=False, environ_update=None, handle_exceptions=True):
        self.calls.append(dict(argv=list(argv), at=self.clock.now, env=environ_update, check_rc=check_rc,
                               handle_exceptions=handle_exceptions))
        if self.outputs:
            answer = self.outputs.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        minutes = int(argv[-1].split("=-")[1].rstrip("m"))
        since = self.clock.now - minutes * 60
        rows = [row for written, at, row in self.rows if written <= self.clock.now and at >= since]
        if self.shape == "rows":
            return 0, json.dumps({"rows": rows, "total": len(rows)}), ""
        return 0, json.dumps(rows), ""

    def argvs(self):
        return [call["argv"] for call in self.calls]

    def minutes(self):
        return [int(call["argv"][-1].split("=-")[1].rstrip("m")) for call in self.calls]

    def times(self):
        return [call["at"] - T0 for call in self.calls]


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(login_soak, "clock", fake.time)
    monkeypatch.setattr(login_soak, "sleep", fake.sleep)
    return fake


@pytest.fixture
def scripts(tmp_path):
    """An Access Server scripts folder with sacli and logdba (never run: run_command is replaced)."""
    folder = tmp_path / "openvpn_as" / "scripts"
    folder.mkdir(parents=True)
    for name in ("sacli", "logdba"):
        (folder / name).write_text("#!/bin/sh\nexit 99\n")
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture
def logdba(monkeypatch, clock):
    fake = Logdba(clock)

    def get_bin_path(module, name, required=False, opt_dirs=None):
        return TIMEOUT if name == "timeout" else None

    def run_command(module, argv, **options):
        return fake.run_command(argv, **options)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    return fake


def run(run_module, scripts, check_mode=False, **args):
    args.setdefault("sacli_path", str(scripts / "sacli"))
    return run_module(login_soak.main, args, check_mode=check_mode)


def command(scripts, minutes, services="VPN", timeout="60"):
    argv = [str(scripts / "logdba"), "--json", "--service_filt=%s" % services, "--start_time_ge=-%dm" % minutes]
    return ([TIMEOUT, "--kill-after=5", timeout] if timeout else []) + argv


def warnings(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def steady(logdba, before=30, after=30, start=-60, end=60, **options):
    """Good logins in both windows of a 60-second soak."""
    logdba.logins(T0 + start, T0, before, **options)
    logdba.logins(T0, T0 + end, after, **options)


# the polls ---------------------------------------------------------------------------------

def test_a_pass_polls_until_the_lag_with_exact_commands(run_module, scripts, logdba, clock):
    steady(logdba)
    logdba.login(T0 - 90, auth=False, error=BAD)  # before the window before: not counted

    result = run(run_module, scripts, duration=60, poll_interval=20, lag=5, min_logins=20)

    assert not result["failed"], result
    assert result["changed"] is False
    assert result["verdict"] == "pass"
    # polls at t0, +20, +40, +60, then at the end of the lag
    assert logdba.times() == [0, 20, 40, 60, 65]
    assert clock.sleeps == [20, 20, 20, 5]
    # minutes back from each call to the start of the window before (t0 - 60), plus a minute
    assert logdba.argvs() == [command(scripts, m) for m in (2, 3, 3, 3, 4)]
    assert all(call["env"] == ENV and call["check_rc"] is False and call["handle_exceptions"] is False
               for call in logdba.calls)
    assert result["logdba"] == command(scripts, 4, timeout=None)
    assert result["polls"] == 5
    assert result["elapsed"] == 65.0
    assert result["stopped_early"] is False
    assert result["unreadable"] == 0
    assert (result["before"]["logins"], result["after"]["logins"]) == (30, 30)
    assert (result["before"]["start"], result["before"]["end"]) == (T0 - 60, T0)
    assert (result["after"]["start"], result["after"]["end"]) == (T0, T0 + 60)
    assert result["before"]["platforms"] == {"win": dict(logins=30, failures=0, failure_rate=0.0)}
    assert (result["rises"], result["new_reasons"]) == ([], [])
    assert result["msg"] == ("pass: failures 0% before the change (0 of 30 logins), 0% after (0 of 30); "
                             "no rise above 10 points")


def test_the_window_before_ends_where_applying_began(run_module, scripts, logdba, clock):
    logdba.logins(T0 - 100, T0 - 40, 30)                          # the window before: [t0 - 100, t0 - 40)
    logdba.logins(T0 - 40, T0, 20, auth=False, error="restarting")  # the start and the gate: in neither
    logdba.logins(T0, T0 + 60, 30)

    result = run(run_module, scripts, duration=60, poll_interval=30, lag=0, applying=40)

    assert not result["failed"], result
    assert (result["before"]["start"], result["before"]["end"]) == (T0 - 100, T0 - 40)
    assert (result["before"]["failures"], result["before"]["logins"]) == (0, 30)
    assert (result["after"]["failures"], result["after"]["logins"]) == (0, 30)
    assert logdba.times() == [0, 30, 60]
    assert logdba.minutes() == [3, 4, 4]  # (100 + 60) / 60, (130 + 60) / 60, (160 + 60) / 60, rounded up


def test_rows_written_late_are_counted_by_the_poll_after_the_lag(run_module, scripts, logdba, clock):
    steady(logdba)
    # a burst of failures at the very end of the window, written ten seconds late
    for index in range(15):
        logdba.login(T0 + 59, user="late%d" % index, auth=False, error=NEW, delay=10)

    result = run(run_module, scripts, duration=60, poll_interval=30, lag=12)

    assert result["failed"] is True
    assert result["verdict"] == "fail"
    assert logdba.times() == [0, 30, 60, 72]
    assert (result["after"]["logins"], result["after"]["failures"]) == (45, 15)
    assert result["new_reasons"] == [dict(reason=NEW, count=15, rate=33.33)]


def test_without_the_lag_late_rows_are_missed(run_module, scripts, logdba, clock):
    steady(logdba)
    for index in range(15):
        logdba.login(T0 + 59, user="late%d" % index, auth=False, error=NEW, delay=10)

    result = run(run_module, scripts, duration=60, poll_interval=30, lag=0)

    assert not result["failed"], result
    assert logdba.times() == [0, 30, 60]
    assert result["after"]["logins"] == 30


# fail fast ----------------------------------------------------------------------------------

def failing_after(logdba):
    logdba.logins(T0 - 60, T0, 30)
    logdba.logins(T0, T0 + 60, 30, auth=False, error=NEW, platform="android")


def test_fail_fast_stops_once_the_window_after_has_enough_logins(run_module, scripts, logdba, clock):
    failing_after(logdba)

    result = run(run_module, scripts, duration=60, poll_interval=10, lag=5, min_logins=20)

    assert result["failed"] is True
    assert result["verdict"] == "fail"
    assert result["stopped_early"] is True
    # at +40 the rows of [t0, t0 + 38] were written: 20 logins
    assert logdba.times() == [0, 10, 20, 30, 40]
    assert result["polls"] == 5
    assert result["after"]["logins"] == 20
    assert result["msg"] == (
        "all logins: failures rose from 0% to 100% (+100 points; 20 of 20 logins failed); "
        "android (no logins before the change): failures 100% against 0% of all logins before "
        "(+100 points; 20 of 20 logins failed); "
        "error 'post_auth: this client is not allowed' is new: 100% of logins (+100 points; 20 of 20 logins)"
    )
    assert [(r["kind"], r["name"], r["rise"]) for r in result["rises"]] == [
        ("overall", "all", 100.0), ("platform", "android", 100.0), ("reason", NEW, 100.0)]


def test_without_fail_fast_the_whole_window_is_watched(run_module, scripts, logdba, clock):
    failing_after(logdba)

    result = run(run_module, scripts, duration=60, poll_interval=10, lag=5, fail_fast=False)

    assert result["failed"] is True
    assert result["stopped_early"] is False
    assert logdba.times() == [0, 10, 20, 30, 40, 50, 60, 65]
    assert result["after"]["logins"] == 30


def test_fail_fast_waits_for_enough_logins(run_module, scripts, logdba, clock):
    failing_after(logdba)

    result = run(run_module, scripts, duration=60, poll_interval=10, lag=5, min_logins=30)

    assert result["failed"] is True
    # the 30th login (at +58) is written at +60
    assert result["stopped_early"] is True
    assert logdba.times() == [0, 10, 20, 30, 40, 50, 60]
    assert result["after"]["logins"] == 30


# verdicts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("on_inconclusive, failed", [("fail", True), ("pass", False)])
def test_too_few_logins(run_module, scripts, logdba, clock, on_inconclusive, failed):
    steady(logdba, before=30, after=12)

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=0, on_inconclusive=on_inconclusive)

    assert result["failed"] is failed
    assert result["verdict"] == "inconclusive"
    assert result["msg"].startswith(
        "inconclusive: 30 logins before the change and 12 after; each window needs at least 20")


def test_a_platform_rise_names_the_platform(run_module, scripts, logdba, clock):
    logdba.logins(T0 - 60, T0, 50)
    logdba.logins(T0 - 60, T0, 10, platform="android")
    logdba.logins(T0, T0 + 60, 50)
    logdba.logins(T0, T0 + 60, 8, platform="android", auth=False, error=NEW)

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=5, max_failure_rise=20, fail_fast=False)

    assert result["failed"] is True
    assert result["msg"] == (
        "android: failures rose from 0% to 100% (+100 points; 8 of 8 logins failed); "
        "error 'post_auth: this client is not allowed' is new (8 of 58 logins)")
    assert result["after"]["platforms"]["android"] == dict(logins=8, failures=8, failure_rate=100.0)
    # the rise counted: the lower end of the 95% Wilson interval of 8 of 8, 8 / (8 + 1.6449^2), minus 0%
    assert [(r["kind"], r["name"], r["rise"], r["sure"]) for r in result["rises"]] == [
        ("platform", "android", 100.0, 74.73)]


@pytest.mark.parametrize("android_fails", [False, True], ids=["one-mistyped-password", "android-fails"])
def test_a_platform_rise_must_be_sure(run_module, scripts, logdba, clock, android_fails):
    # mac: 0 of 30 failed before, 1 of 7 after (a mistyped password): 14.3% observed, a rise of only 3.25 sure;
    # android: 0 of 30 before, all 5 fail after: a rise of 64.89 sure
    for platform in ("win", "mac", "android"):
        logdba.logins(T0 - 60, T0, 30, platform=platform)
    logdba.logins(T0, T0 + 60, 30)
    logdba.logins(T0, T0 + 60, 6, platform="mac")
    logdba.login(T0 + 30, user="mallory", auth=False, error=BAD, platform="mac")
    if android_fails:
        logdba.logins(T0, T0 + 60, 5, platform="android", auth=False, error=NEW)

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=5)

    assert result["after"]["platforms"]["mac"] == dict(logins=7, failures=1, failure_rate=14.29)
    if not android_fails:
        assert not result["failed"], result
        assert (result["verdict"], result["rises"]) == ("pass", [])
        return
    assert result["failed"] is True
    assert [(r["kind"], r["name"], r["rise"], r["sure"]) for r in result["rises"]] == [
        ("platform", "android", 100.0, 64.89)]
    assert result["msg"] == (
        "android: failures rose from 0% to 100% (+100 points; 5 of 5 logins failed); "
        "error 'post_auth: this client is not allowed' is new (5 of 42 logins); "
        "error 'local auth failed: password verification failed' is new (1 of 42 logins)")


def test_canary_logins_and_challenges_are_not_counted(run_module, scripts, logdba, clock):
    steady(logdba)
    for index in range(10):
        logdba.login(T0 + index, user="Canary-Alice", auth=False, error="canary expected to fail")
        logdba.login(T0 + index, user="bob", auth=False, error="Challenge")

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=0, exclude_users=["canary-alice"])

    assert not result["failed"], result
    assert (result["after"]["logins"], result["after"]["excluded"], result["after"]["challenges"]) == (30, 10, 10)


def test_services_are_asked_for_and_checked(run_module, scripts, logdba, clock):
    steady(logdba)
    # rows of a service not asked for, printed anyway, do not count
    logdba.logins(T0, T0 + 60, 20, auth=False, error=BAD, service="WEB_ADMIN")
    logdba.logins(T0, T0 + 60, 2, service="WEB_CLIENT")

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=0, services=["VPN", "WEB_CLIENT"],
                 sacli_timeout=7)

    assert not result["failed"], result
    assert logdba.argvs() == [command(scripts, m, "VPN,WEB_CLIENT", "7") for m in (2, 3)]
    assert result["after"]["logins"] == 32


def test_an_object_with_rows_and_text_times(run_module, scripts, logdba, clock):
    logdba.shape = "rows"
    steady(logdba)

    for _written, _at, row in logdba.rows:
        moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=row["start_time"])
        row["start_time"] = moment.strftime("%Y-%m-%d %H:%M:%S")

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=0)

    assert not result["failed"], result
    assert (result["before"]["logins"], result["after"]["logins"]) == (30, 30)


def test_unreadable_rows_are_counted_and_warned_about(run_module, scripts, logdba, clock, module_warnings):
    steady(logdba)
    logdba.rows.append((T0, T0, dict(username="mallory", start_time="sometime", auth="0")))

    result = run(run_module, scripts, duration=60, poll_interval=60, lag=0)

    assert not result["failed"], result
    assert result["unreadable"] == 1
    assert warnings(result) == [
        "1 log row without a readable time, counted in neither window: time 'sometime' (user 'mallory')"]


# the logdba path and its failures --------------------------------------------------------------------

def test_logdba_is_found_beside_the_real_sacli(run_module, scripts, logdba, clock, tmp_path):
    link = tmp_path / "bin" / "sacli"
    link.parent.mkdir()
    link.symlink_to(scripts / "sacli")
    steady(logdba)

    result = run(run_module, scripts, sacli_path=str(link), duration=60, poll_interval=60, lag=0)

    assert not result["failed"], result
    assert logdba.calls[0]["argv"][3] == str(scripts / "logdba")


def test_an_explicit_logdba_path_and_no_timeout(run_module, scripts, logdba, clock, tmp_path):
    tool = tmp_path / "my-logdba"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    steady(logdba)

    result = run(run_module, scripts, logdba_path=str(tool), sacli_timeout=0, duration=60, poll_interval=60, lag=0)

    assert not result["failed"], result
    assert logdba.argvs()[0] == [str(tool), "--json", "--service_filt=VPN", "--start_time_ge=-2m"]


def test_a_missing_logdba(run_module, scripts, logdba, clock):
    os.unlink(str(scripts / "logdba"))

    result = run(run_module, scripts, duration=60)

    assert result["failed"] is True
    assert result["msg"] == "logdba not found or not executable at %s (set logdba_path)" % (scripts / "logdba")
    assert logdba.calls == []
    assert result["polls"] == 0


@pytest.mark.parametrize("answer, msg, details", [
    ((2, "", "logdba: error: unrecognized arguments: --json\n"),
     "logdba failed with exit code 2: logdba: error: unrecognized arguments: --json",
     dict(rc=2, stderr="logdba: error: unrecognized arguments: --json\n")),
    ((1, "Traceback: database is locked", ""), "logdba failed with exit code 1: Traceback: database is locked",
     dict(rc=1, stdout="Traceback: database is locked")),
    ((1, "", ""), "logdba failed with exit code 1: nothing", dict(rc=1)),
    ((3, "", "x" * 300), "logdba failed with exit code 3: " + "x" * 200 + "...", dict(rc=3)),
    ((124, "", ""), "logdba did not finish within 60 seconds", dict(rc=124)),
    ((137, "", ""), "logdba did not finish within 60 seconds", dict(rc=137)),
    ((0, "<html>502</html>", "warning: x"), "logdba printed neither JSON nor CSV with a header that names start_time",
     dict(rc=0, stdout="<html>502</html>", stderr="warning: x")),
    ((0, '{"error": "no access"}', ""), "logdba printed JSON that holds no log rows",
     dict(rc=0, stdout='{"error": "no access"}')),
    (OSError(13, "Permission denied"), "cannot run logdba: [Errno 13] Permission denied", dict()),
], ids=["usage", "traceback", "silent", "long-stderr", "timeout", "killed", "html", "json-error", "exec"])
def test_logdba_failures(run_module, scripts, logdba, clock, answer, msg, details):
    logdba.outputs = [answer]

    result = run(run_module, scripts, duration=60)

    assert result["failed"] is True
    assert result["msg"] == msg
    for name, value in details.items():
        assert result[name] == value
    assert len(logdba.calls) == 1, "the first poll is made at once"
    assert result["polls"] == 1
    assert result["logdba"] == command(scripts, 2, timeout=None)
    assert "verdict" not in result


def test_a_failure_in_a_later_poll(run_module, scripts, logdba, clock):
    steady(logdba)
    logdba.outputs = [(0, "[]", ""), (1, "", "database is locked")]

    result = run(run_module, scripts, duration=60, poll_interval=20)

    assert result["failed"] is True
    assert result["msg"] == "logdba failed with exit code 1: database is locked"
    assert result["polls"] == 2
    assert logdba.times() == [0, 20]


# check mode and options ------------------------------------------------------------------------------

def test_check_mode_runs_nothing(run_module, scripts, logdba, clock):
    result = run(run_module, scripts, check_mode=True, duration=600, applying=30)

    assert not result["failed"], result
    assert result["changed"] is False
    assert result["check_mode_skipped"] is True
    assert result["msg"] == "check mode: the soak of 600 seconds was not run"
    assert result["logdba"] == command(scripts, 12, timeout=None)  # (630 + 60) / 60, rounded up
    assert result["polls"] == 0
    assert logdba.calls == [] and clock.sleeps == []


@pytest.mark.parametrize("args, msg", [
    (dict(duration=0), "duration must be at least 1"),
    (dict(duration=60, poll_interval=0), "poll_interval must be at least 1"),
    (dict(duration=60, lag=-1, applying=-2), "lag must be at least 0; applying must be at least 0"),
    (dict(duration=60, min_logins=0), "min_logins must be at least 1"),
    (dict(duration=60, max_failure_rise=-1), "max_failure_rise must be between 0 and 100 percentage points"),
    (dict(duration=60, max_failure_rise=100.5), "max_failure_rise must be between 0 and 100 percentage points"),
    (dict(duration=60, services=[]), "services must name at least one service"),
    (dict(duration=60, services=["VPN,WEB_ADMIN"]), "the service 'VPN,WEB_ADMIN' holds a comma or a blank"),
    (dict(duration=60, services=["-x"]),
     "the service '-x' starts with '-', which a command would read as an option"),
], ids=["duration", "poll", "lag-applying", "min-logins", "negative-rise", "rise-above-100", "no-services", "comma",
        "option"])
def test_bad_options(run_module, scripts, logdba, clock, args, msg):
    result = run(run_module, scripts, **args)

    assert result["failed"] is True
    assert result["msg"] == msg
    assert logdba.calls == []
