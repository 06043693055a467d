"""Reading logdba's output in every shape it may take, the windows, the summaries and the verdict."""

import json
import math
import statistics
import time

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils import soak
from ansible_collections.ovpnas.fleet.plugins.module_utils.soak import (
    SoakParseError,
    candidates,
    lower_bound,
    parse_auth,
    parse_output,
    parse_time,
    service_matches,
    split,
    summarize,
    verdict,
    windows,
)

NOW = 1714564800.0  # 2024-05-01 12:00:00 UTC
EXPECTED = [
    dict(time=1714564200.0, username="alice", service="VPN", auth=True, error="", platform="win",
         version="3.4.2", gui_version=""),
    dict(time=1714564260.0, username="bob", service="VPN", auth=False,
         error="local auth failed: password verification failed", platform="android", version="", gui_version=""),
]
ALICE = dict(node="as1", username="alice", start_time=1714564200, duration=30, service="VPN", active=0, auth="1",
             real_address="198.51.100.7", error="", platform="win", version="3.4.2", bytes_in=100)
BOB = dict(node="as1", username="bob", start_time=1714564260, service="VPN", active=0, auth="0",
           error="local auth failed: password verification failed", platform="android")
COLUMNS = ["node", "username", "start_time", "service", "auth", "error", "platform", "version"]


def cells(row):
    return [row.get(name, "") for name in COLUMNS]


# --- shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, fmt", [
    (json.dumps([ALICE, BOB]), "json"),
    (json.dumps({"rows": [ALICE, BOB], "total": 2}), "json"),
    (json.dumps({"total": 2, "timestamp": 1714564800, "data": [ALICE, BOB]}), "json"),
    (json.dumps({"records": [ALICE, BOB]}), "json"),
    (json.dumps({"Logs": [ALICE, BOB]}), "json"),
    (json.dumps({"results": [ALICE, BOB], "warnings": []}), "json"),
    (json.dumps({"status": "ok", "sessions_found": [ALICE, BOB]}), "json"),
    (json.dumps({"result": {"count": 2, "rows": [ALICE, BOB]}}), "json"),
    (json.dumps({"columns": COLUMNS, "rows": [cells(ALICE), cells(BOB)]}), "json"),
    (json.dumps({"columns": [{"name": c} for c in COLUMNS], "data": [cells(ALICE), cells(BOB)]}), "json"),
    (json.dumps([COLUMNS, cells(ALICE), cells(BOB)]), "json"),
    (json.dumps([ALICE, BOB], indent=2), "json"),
    ("logdba: reading the log database\n" + json.dumps([ALICE, BOB], indent=2) + "\n", "json"),
    (json.dumps(ALICE) + "\n" + json.dumps(BOB) + "\n", "json lines"),
    (json.dumps(ALICE) + "\n\n" + json.dumps(BOB), "json lines"),
    ("\ufeff" + json.dumps([ALICE, BOB]), "json"),
    (",".join(COLUMNS) + "\n" + "\n".join(",".join(str(c) for c in cells(r)) for r in (ALICE, BOB)) + "\n", "csv"),
    ('Node,User Name,Start-Time,Service,Auth,Error,Platform,Version,Extra\r\n'
     'as1,alice,1714564200,VPN,1,,WIN,3.4.2,x\r\n'
     'as1,bob,1714564260,VPN,0,"local auth failed: password verification failed",Android,,y\r\n\r\n', "csv"),
], ids=["list", "rows-total", "data-with-timestamp", "records", "Logs", "results", "any-key", "nested",
        "columns-rows", "column-objects", "header-row", "indented", "banner", "json-lines", "json-lines-blank",
        "bom", "csv", "csv-crlf-extra"])
def test_every_shape_reads_the_same_rows(text, fmt):
    parsed = parse_output(text, now=NOW)

    assert parsed["rows"] == EXPECTED
    assert parsed["format"] == fmt
    assert (parsed["unreadable"], parsed["examples"], parsed["naive_times"]) == (0, [], None)


@pytest.mark.parametrize("text", ["[]", '{"rows": [], "total": 0}', '{"data": []}', "start_time,username\n"],
                         ids=["list", "rows", "data", "csv-header"])
def test_no_rows(text):
    assert parse_output(text, now=NOW)["rows"] == []


def test_a_single_row_object_is_one_row():
    assert parse_output(json.dumps(ALICE), now=NOW)["rows"] == EXPECTED[:1]


def test_items_that_are_no_objects_are_unreadable():
    parsed = parse_output(json.dumps([ALICE, "garbage", 3, BOB]), now=NOW)
    assert parsed["rows"] == EXPECTED
    assert parsed["unreadable"] == 2


def test_json_lines_that_do_not_parse_are_unreadable():
    parsed = parse_output(json.dumps(ALICE) + "\nTotal: 2\n" + json.dumps(BOB), now=NOW)
    assert (parsed["rows"], parsed["unreadable"], parsed["format"]) == (EXPECTED, 1, "json lines")


@pytest.mark.parametrize("text", ["", "  \n\t\n", None, "[]", '{"rows": [], "total": 0}'],
                         ids=["empty", "blank", "none", "empty-list", "empty-rows"])
def test_output_of_no_rows_is_no_logins(text):
    parsed = parse_output(text, now=NOW)
    assert (parsed["rows"], parsed["unreadable"]) == ([], 0)


@pytest.mark.parametrize("text, message", [
    ("null", "printed JSON that holds no log rows"),
    ('"done"', "printed JSON that holds no log rows"),
    ("[1, 2, 3]", "printed JSON that holds no log rows"),
    ('{"total": 3}', "printed JSON that holds no log rows"),
    ('{"error": "database is locked"}', "printed JSON that holds no log rows"),
    ("<html><body>502 Bad Gateway</body></html>", "printed neither JSON nor CSV with a header that names start_time"),
    ("Traceback (most recent call last):\n  File x\nsqlite3.OperationalError: no such table",
     "printed neither JSON nor CSV with a header that names start_time"),
    ("node,username,auth\nas1,alice,1\n", "printed neither JSON nor CSV with a header that names start_time"),
    ("[{\"username\": \"alice\"", "printed neither JSON nor CSV with a header that names start_time"),
], ids=["null", "string", "numbers", "object-without-rows", "error-object", "html",
        "traceback", "csv-without-time", "truncated"])
def test_output_without_rows_raises(text, message):
    with pytest.raises(SoakParseError) as error:
        parse_output(text, now=NOW)
    assert str(error.value) == message


def test_bytes_are_read_as_utf8():
    assert parse_output(json.dumps([ALICE, BOB]).encode("utf-8"), now=NOW)["rows"] == EXPECTED


# --- fields -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("1", True), ("0", False), (1, True), (0, False), (True, True), (False, False), ("true", True),
    ("False", False), ("yes", True), ("no", False), (" TRUE ", True), (1.0, True), ("maybe", None), (None, None),
    ("", None), ([1], None),
])
def test_auth_values(value, expected):
    assert parse_auth(value) is expected


@pytest.mark.parametrize("fields, auth", [
    (dict(auth="1", error=""), True),
    (dict(auth="0", error=""), False),
    (dict(error=""), True),
    (dict(error="local auth failed"), False),
    (dict(auth="maybe", error="local auth failed"), False),
    (dict(auth="maybe"), True),
    (dict(auth=None, error="  "), True),
    (dict(auth="1", error="LOCKOUT: user temporarily locked out"), False),
    (dict(auth=1, error="lockout"), False),
    (dict(auth=True, error="note"), True),
], ids=["1", "0", "absent-no-error", "absent-error", "unknown-error", "unknown-no-error", "null-blank-error",
        "lockout-with-auth", "lockout-lower", "auth-wins-over-error"])
def test_auth_of_a_row(fields, auth):
    row = dict(fields, username="u", start_time=NOW)
    assert parse_output(json.dumps([row]), now=NOW)["rows"][0]["auth"] is auth


@pytest.mark.parametrize("fields, expected", [
    (dict(platform="WIN"), dict(platform="win")),
    (dict(platform=""), dict(platform="unknown")),
    (dict(platform=None), dict(platform="unknown")),
    (dict(), dict(platform="unknown", username="", service="", version="", gui_version="", error="")),
    (dict(username=42, version=3.4, gui_version=1.0), dict(username="42", version="3.4", gui_version="1")),
    (dict(error="  local auth failed \n"), dict(error="local auth failed")),
    (dict(service=" WEB_CLIENT "), dict(service="WEB_CLIENT")),
])
def test_fields_are_normalized(fields, expected):
    (row,) = parse_output(json.dumps([dict(fields, start_time=NOW)]), now=NOW)["rows"]
    assert sorted(row) == ["auth", "error", "gui_version", "platform", "service", "time", "username", "version"]
    assert {name: row[name] for name in expected} == expected


# --- times --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [
    (1714564800, NOW),
    (1714564800.25, NOW + 0.25),
    ("1714564800", NOW),
    (" 1714564800.5 ", NOW + 0.5),
    (1714564800123, NOW + 0.123),
    ("1714564800000", NOW),
    ("2024-05-01T12:00:00Z", NOW),
    ("2024-05-01T12:00:00z", NOW),
    ("2024-05-01T12:00:00.250Z", NOW + 0.25),
    ("2024-05-01 12:00:00,5 UTC", NOW + 0.5),
    ("2024-05-01T14:00:00+02:00", NOW),
    ("2024-05-01T14:30:00+0230", NOW),
    ("2024-05-01T07:00:00-05", NOW),
    ("2024-05-01 07:00:00 -05:00", NOW),
    ("2024-05-01 12:00:00 GMT", NOW),
    ("2024-05-01T12:00Z", NOW),
], ids=repr)
def test_aware_times(value, seconds):
    assert parse_time(value) == (pytest.approx(seconds, abs=1e-6), None)


@pytest.mark.parametrize("value, fields", [
    ("2024-05-01 12:00:00", (2024, 5, 1, 12, 0, 0, 0.0)),
    ("2024-05-01T12:00:00", (2024, 5, 1, 12, 0, 0, 0.0)),
    ("2024-05-01T12:00:00.123456", (2024, 5, 1, 12, 0, 0, 0.123456)),
    ("2024/5/1 12:00", (2024, 5, 1, 12, 0, 0, 0.0)),
    ("2024-05-01", (2024, 5, 1, 0, 0, 0, 0.0)),
    ("Wed May  1 12:00:00 2024", (2024, 5, 1, 12, 0, 0, 0.0)),
    ("Wed, May 1 12:00:00 2024", (2024, 5, 1, 12, 0, 0, 0.0)),
])
def test_naive_times(value, fields):
    seconds, naive = parse_time(value)
    assert naive == fields
    assert seconds == pytest.approx(NOW - 12 * 3600 if value == "2024-05-01" else NOW + fields[6])


@pytest.mark.parametrize("value", [
    None, "", "yesterday", "2024-13-01 00:00:00", "2024-02-30 00:00:00", "2024-05-01T25:00:00Z",
    "2024-05-01T12:00:00+25:00", "2024-05-01T12:00:00 CEST", "Wed Mai 1 12:00:00 2024", "1 May 2024 12:00",
    -5, "nan", float("nan"), float("inf"), True, [NOW], {"t": NOW},
], ids=repr)
def test_unreadable_times(value):
    assert parse_time(value) is None


def test_rows_without_a_readable_time_are_counted_and_shown():
    rows = [dict(ALICE), dict(BOB, start_time="yesterday"), dict(BOB, start_time=None), dict(username="carol"),
            dict(username="dave", start_time="2024-02-30 00:00:00"), dict(username="erin", start_time=[1])]

    parsed = parse_output(json.dumps(rows), now=NOW)

    assert parsed["rows"] == EXPECTED[:1]
    assert parsed["unreadable"] == 5
    assert parsed["examples"] == ["time 'yesterday' (user 'bob')", "no time (user 'bob')", "no time (user 'carol')"]


def test_timestamp_stands_in_for_a_missing_start_time():
    rows = [dict(username="a", timestamp=NOW), dict(username="b", start_time="", timestamp="2024-05-01T12:00:00Z"),
            dict(username="c", start_time=NOW - 60, timestamp=NOW)]
    assert [row["time"] for row in parse_output(json.dumps(rows), now=NOW)["rows"]] == [NOW, NOW, NOW - 60]


@pytest.fixture
def zone(monkeypatch):
    """Set the host's time zone for a test (POSIX TZ rules: 'XXX-2' is two hours east of UTC)."""

    def use(name):
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("tz, newest, naive_times, shift", [
    ("EET-2", "2024-05-01 13:58:00", "local", 7200),     # local time, east of UTC: UTC would be 2 h ahead
    ("EET-2", "2024-05-01 11:58:00", "utc", 0),          # UTC on a host east of UTC
    ("UTC0", "2024-05-01 11:58:00", "utc", 0),
    ("EST5", "2024-05-01 06:58:00", "utc", 0),           # local time west of UTC cannot be told apart: UTC
    ("EET-2", "2024-05-01 12:09:00", "utc", 0),          # within the slack of ten minutes: not clearly ahead
    ("XXX-0:30", "2024-05-01 12:28:00", "local", 1800),  # half an hour ahead is clearly ahead
], ids=["local-east", "utc-east", "utc-utc", "west", "slack", "half-hour"])
def test_naive_times_are_utc_unless_that_puts_them_in_the_future(zone, tz, newest, naive_times, shift):
    zone(tz)
    rows = [dict(username="a", start_time="2024-05-01 10:00:00"), dict(username="b", start_time=newest),
            dict(username="c", start_time=NOW - 30)]

    parsed = parse_output(json.dumps(rows), now=NOW)

    assert parsed["naive_times"] == naive_times
    a, b, c = (row["time"] for row in parsed["rows"])
    assert a == NOW - 2 * 3600 - shift
    assert c == NOW - 30, "a time with an offset is never shifted"
    assert b - a == parse_time(newest)[0] - parse_time("2024-05-01 10:00:00")[0]


def test_aware_times_in_the_future_do_not_make_naive_ones_local(zone):
    zone("EET-2")
    rows = [dict(username="a", start_time="2024-05-01 11:00:00"), dict(username="b", start_time=NOW + 3600)]
    parsed = parse_output(json.dumps(rows), now=NOW)
    assert parsed["naive_times"] == "utc"
    assert [row["time"] for row in parsed["rows"]] == [NOW - 3600, NOW + 3600]


# --- services and windows ---------------------------------------------------------------------

@pytest.mark.parametrize("service, patterns, matches", [
    ("VPN", ["VPN"], True),
    ("vpn", ["VPN"], True),
    ("WEB_CLIENT", ["VPN"], False),
    ("WEB_CLIENT", ["VPN", "WEB_CLIENT"], True),
    ("WEB_ADMIN", ["WEB%"], True),
    ("XML_API", ["%API"], True),
    ("VPNX", ["VPN"], False),
    ("", ["VPN"], True),
    ("V.N", ["V.N"], True),
    ("VPN", ["V.N"], False),
])
def test_service_matches(service, patterns, matches):
    assert service_matches(service, patterns) is matches


def test_windows():
    assert windows(1000.0, 100, 20) == dict(before=(880.0, 980.0), after=(1000.0, 1100.0))
    assert windows(1000.0, 100) == dict(before=(900.0, 1000.0), after=(1000.0, 1100.0))


def test_split_at_the_edges():
    times = [879.9, 880.0, 979.99, 980.0, 999.99, 1000.0, 1100.0, 1100.01]
    rows = [dict(time=t) for t in times]

    before, after = split(rows, windows(1000.0, 100, 20))

    assert [row["time"] for row in before] == [880.0, 979.99]
    assert [row["time"] for row in after] == [1000.0, 1100.0]


# --- summaries ---------------------------------------------------------------------------------

def row(user="u", auth=True, error="", platform="win"):
    return dict(time=NOW, username=user, service="VPN", auth=auth, error=error, platform=platform, version="",
                gui_version="")


def test_summary():
    rows = [
        row(), row(platform="mac"), row(auth=False, error="local auth failed"), row(platform="unknown"),
        row(auth=False, error="local auth failed", platform="mac"), row(auth=False, error="", platform="mac"),
        row(auth=False, error="challenge"), row(auth=False, error="Challenge"), row(auth=True, error=" CHALLENGE "),
        row(auth=False, error="CRV1:R,E:abc:dXNlcg==:Enter your code"),
        row("Canary", auth=False, error="post_auth: nope"), row("canary", auth=False, error="challenge"),
        row("canary2"),
    ]

    summary = summarize(rows, exclude_users=["CANARY", "canary2"])

    assert summary == dict(
        logins=6, failures=3, failure_rate=50.0, challenges=4, excluded=3,
        platforms=dict(win=dict(logins=2, failures=1, failure_rate=50.0),
                       mac=dict(logins=3, failures=2, failure_rate=66.67),
                       unknown=dict(logins=1, failures=0, failure_rate=0.0)),
        reasons={"local auth failed": 2, "(no error text)": 1},
    )


def test_empty_summary():
    assert summarize([]) == dict(logins=0, failures=0, failure_rate=0.0, challenges=0, excluded=0, platforms={},
                                 reasons={})


def test_long_reasons_are_cut():
    reasons = summarize([row(auth=False, error="x" * 500)])["reasons"]
    assert list(reasons) == ["x" * 200 + "..."]


# --- the verdict ---------------------------------------------------------------------------------

def sample(*groups):
    """A summary of (platform, logins, failures by reason) groups."""
    rows = []
    for platform, logins, failures in groups:
        failed = [row(auth=False, error=reason, platform=platform)
                  for reason, count in failures.items() for _index in range(count)]
        rows += failed + [row(platform=platform)] * (logins - len(failed))
    return summarize(rows)


BAD = "local auth failed: password verification failed"
NEW = "post_auth: this client is not allowed"


def judge(before, after, min_logins=20, max_rise=10, on_inconclusive="fail"):
    return verdict(before, after, min_logins, max_rise, on_inconclusive)


def rises(result):
    return [(r["kind"], r["name"], r["before_rate"], r["after_rate"], r["rise"]) for r in result["rises"]]


def overall(before, after):
    """The overall entry the verdict compares, its rise and ``sure`` unrounded."""
    return candidates(before, after, 20)[0]


# failures after the change just too few, and just enough, for a sure rise of more than 10 (or 2.5) points; the
# observed rise is above the threshold in every case, so judged by it alone every case would fail
@pytest.mark.parametrize("before, logins, failures, max_rise, expected", [
    (("win", 200, {}), 200, 26, 10, "pass"),       # 13% observed, sure 9.58
    (("win", 200, {}), 200, 27, 10, "fail"),       # 13.5% observed, sure 10.01
    (("win", 100, {}), 100, 14, 10, "pass"),       # 14%, sure 9.24
    (("win", 100, {}), 100, 15, 10, "fail"),       # 15%, sure 10.05
    (("win", 20, {}), 20, 4, 10, "pass"),          # 20%, sure 9.31
    (("win", 20, {}), 20, 5, 10, "fail"),          # 25%, sure 12.74
    (("win", 30, {BAD: 7}), 60, 26, 10, "pass"),   # 23.33% to 43.33%, sure 9.99
    (("win", 30, {BAD: 7}), 60, 27, 10, "fail"),   # 23.33% to 45%, sure 11.55
    (("win", 100, {}), 100, 5, 2.5, "pass"),       # 5%, sure 2.45
    (("win", 100, {}), 100, 6, 2.5, "fail"),       # 6%, sure 3.13
], ids=["200-below", "200-above", "100-below", "100-above", "20-below", "20-above", "rate-before-below",
        "rate-before-above", "decimal-below", "decimal-above"])
def test_a_rise_fails_only_when_it_is_sure(before, logins, failures, max_rise, expected):
    before, after = sample(before), sample(("win", logins, {BAD: failures}))
    entry = overall(before, after)
    # one failure more (for a pass) or fewer (for a fail) puts the bound on the other side of the threshold
    other = failures + (1 if expected == "pass" else -1)
    neighbour = overall(before, sample(("win", logins, {BAD: other})))

    result = judge(before, after, max_rise=max_rise)

    assert entry["rise"] > soak.exact(max_rise), "the observed rise alone would fail every case"
    assert result["verdict"] == expected, result["msg"]
    assert (entry["sure"] > max_rise) is (expected == "fail")
    assert (neighbour["sure"] > max_rise) is (expected == "pass")
    if expected == "fail":
        assert [r["kind"] for r in result["rises"]] == ["overall", "platform", "reason"]
        assert result["rises"][0]["sure"] == round(entry["sure"], 2)
    else:
        assert result["rises"] == []
        assert "no rise above %s points" % max_rise in result["msg"]


def test_a_sure_rise_of_exactly_the_threshold_passes():
    before, after = sample(("win", 200, {})), sample(("win", 200, {BAD: 27}))
    sure = overall(before, after)["sure"]
    assert sure == lower_bound(27, 200)

    assert judge(before, after, max_rise=sure)["verdict"] == "pass"
    assert judge(before, after, max_rise=math.nextafter(sure, 0))["verdict"] == "fail"


@pytest.mark.parametrize("before, after, max_rise, expected", [
    ([("win", 100, {BAD: 50})], [("win", 100, {BAD: 60})], 10, "pass"),  # a rise of exactly 10 observed
    ([("win", 100, {BAD: 50})], [("win", 20, {BAD: 10})], 10, "pass"),   # the rate falls
    ([("win", 20, {BAD: 20})], [("win", 20, {BAD: 20})], 0, "pass"),
    ([("win", 20, {})], [("win", 20, {BAD: 1})], 0, "fail"),              # any failure after none is a sure rise
    ([("win", 20, {})], [("win", 20, {BAD: 20})], 100, "pass"),
    ([("win", 1000, {BAD: 100})], [("win", 1000, {BAD: 400})], 25, "fail"),
], ids=["half", "falls", "zero-threshold-same", "zero-threshold-rise", "hundred", "large"])
def test_overall_thresholds(before, after, max_rise, expected):
    assert judge(sample(*before), sample(*after), max_rise=max_rise)["verdict"] == expected


def wilson_lower(failures, logins, z):
    """The lower end of the Wilson score interval found by bisection: the rate p below the observed share
    at which the share lies z standard errors of p above it, (share - p) = z * sqrt(p * (1 - p) / logins)."""
    share = failures / logins
    low, high = 0.0, share
    for _step in range(200):
        middle = (low + high) / 2
        if share - middle > z * math.sqrt(middle * (1 - middle) / logins):
            low = middle
        else:
            high = middle
    return low * 100


Z95 = statistics.NormalDist().inv_cdf(0.95)


@pytest.mark.parametrize("failures, logins", [
    (1, 1), (1, 7), (5, 5), (24, 24), (1, 20), (4, 20), (10, 20), (19, 20), (27, 200), (50, 100), (3, 1000),
    (999, 1000), (116, 1000),
])
def test_lower_bound_is_the_wilson_score_bound(failures, logins):
    assert lower_bound(failures, logins) == pytest.approx(wilson_lower(failures, logins, Z95), abs=1e-9)


@pytest.mark.parametrize("failures, logins, expected", [
    (0, 0, 0.0),
    (0, 1, 0.0),
    (0, 20, 0.0),
    (0, 100000, 0.0),
    (1, 7, 3.25),
    (5, 5, 64.89),
    (24, 24, 89.87),
    (20, 20, 88.08),
    (1, 1, 26.99),
], ids=["no-logins", "0-of-1", "0-of-20", "0-of-many", "1-of-7", "5-of-5", "24-of-24", "20-of-20", "1-of-1"])
def test_lower_bound_known_values(failures, logins, expected):
    assert lower_bound(failures, logins) == pytest.approx(expected, abs=0.005)
    if logins and failures == logins:
        # all failed: the bound is n / (n + z^2)
        assert lower_bound(failures, logins) == pytest.approx(100.0 * logins / (logins + Z95 ** 2), abs=1e-9)


def test_lower_bound_lies_below_the_rate_and_nears_it_with_more_logins():
    for logins in (1, 5, 20, 100, 1000):
        for failures in range(1, logins + 1, max(1, logins // 10)):
            assert 0 < lower_bound(failures, logins) < 100.0 * failures / logins
    gaps = [10.0 - lower_bound(logins // 10, logins) for logins in (10, 100, 1000, 10000, 100000)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.2


def test_one_mistyped_password_on_a_small_platform_passes_and_five_of_five_failing_fail():
    # mac: 0 of 30 failed before, 1 of 7 after: +14.3 points observed, sure only 3.25
    before = sample(("win", 30, {}), ("mac", 30, {}))
    after = sample(("win", 30, {}), ("mac", 7, {BAD: 1}))
    (mac,) = [entry for entry in candidates(before, after, 20) if entry["name"] == "mac"]
    assert round(float(mac["rise"]), 1) == 14.3 and round(mac["sure"], 2) == 3.25

    result = judge(before, after)

    assert (result["verdict"], result["passed"], result["rises"]) == ("pass", True, [])
    assert result["msg"] == ("pass: failures 0% before the change (0 of 60 logins), 2.7% after (1 of 37); "
                             "no rise above 10 points; error '" + BAD + "' is new (1 of 37 logins)")

    # android: 0 of 30 failed before, all 5 fail after: sure 64.89
    before = sample(("win", 30, {}), ("android", 30, {}))
    after = sample(("win", 30, {}), ("android", 5, {NEW: 5}))

    result = judge(before, after)

    assert (result["verdict"], result["passed"]) == ("fail", False)
    assert [(r["kind"], r["name"], r["rise"], r["sure"]) for r in result["rises"]] == [
        ("platform", "android", 100.0, 64.89)]
    assert result["msg"] == ("android: failures rose from 0% to 100% (+100 points; 5 of 5 logins failed); "
                             "error '" + NEW + "' is new (5 of 35 logins)")


@pytest.mark.parametrize("android, min_logins, expected", [
    (4, 20, "pass"),    # max(3, 20 // 4) = 5
    (5, 20, "fail"),
    (2, 8, "pass"),     # max(3, 8 // 4) = 3
    (3, 8, "fail"),
    (9, 40, "pass"),    # 40 // 4 = 10
    (10, 40, "fail"),
], ids=["below-min20", "at-min20", "below-min8", "at-min8", "below-min40", "at-min40"])
def test_a_platform_needs_enough_logins_after(android, min_logins, expected):
    # 200 good logins on windows keep the overall and the reason's rate below the threshold
    before = sample(("win", 200, {}), ("android", 20, {}))
    after = sample(("win", 200, {}), ("android", android, {"post_auth: old android": android}))

    result = judge(before, after, min_logins=min_logins, max_rise=10)

    assert result["verdict"] == expected, result["msg"]
    assert rises(result) == ([("platform", "android", 0.0, 100.0, 100.0)] if expected == "fail" else [])


def test_a_platform_without_logins_before_is_compared_with_all_logins_before():
    before = sample(("win", 40, {BAD: 2}))
    after = sample(("win", 40, {BAD: 2}), ("ios", 20, {BAD: 10}))

    result = judge(before, after, min_logins=20)

    assert result["verdict"] == "fail"
    (rise,) = result["rises"]
    assert (rise["kind"], rise["name"], rise["before_rate"], rise["after_rate"], rise["rise"], rise["new"]) == (
        "platform", "ios", 5.0, 50.0, 45.0, True)
    assert rise["sure"] == round(lower_bound(10, 20) - 5, 2) == 27.74
    assert (rise["before_failures"], rise["before_logins"], rise["after_failures"], rise["after_logins"]) == (
        0, 0, 10, 20)
    assert result["msg"] == ("ios (no logins before the change): failures 50% against 5% of all logins before "
                             "(+45 points; 10 of 20 logins failed)")


def test_the_rate_before_of_a_new_platform_is_subtracted_from_its_bound():
    # 5 of 20: the bound is 12.74%, a sure rise from 0% but only 7.74 points above the 5% of all logins before
    before = sample(("win", 40, {BAD: 2}))
    after = sample(("win", 40, {BAD: 2}), ("ios", 20, {BAD: 5}))
    assert lower_bound(5, 20) > 10

    result = judge(before, after, min_logins=20)

    assert (result["verdict"], result["rises"]) == ("pass", []), result["msg"]
    (ios,) = [entry for entry in candidates(before, after, 20) if entry["name"] == "ios"]
    assert (float(ios["before_rate"]), ios["rise"], round(ios["sure"], 2)) == (5.0, 20, 7.74)


def test_a_reason_rise_fails_even_when_the_overall_rate_does_not_rise_enough():
    # 10% failed before and 20% after: the overall rate rose by 10 points observed (5.76 sure), not more; but the
    # reason changed: the old one fell, a new one rose by 20 points (15.76 sure)
    before = sample(("win", 200, {BAD: 20}))
    after = sample(("win", 200, {BAD: 0, NEW: 40}))

    result = judge(before, after)

    assert result["verdict"] == "fail"
    assert rises(result) == [("reason", NEW, 0.0, 20.0, 20.0)]
    assert result["rises"][0]["sure"] == 15.76
    assert round(overall(before, after)["sure"], 2) == 5.76
    assert result["new_reasons"] == [dict(reason=NEW, count=40, rate=20.0)]
    assert result["msg"] == "error '%s' is new: 20%% of logins (+20 points; 40 of 200 logins)" % NEW


def test_a_known_reason_that_rises():
    result = judge(sample(("win", 100, {BAD: 10})), sample(("win", 100, {BAD: 32})))
    assert rises(result) == [("overall", "all", 10.0, 32.0, 22.0), ("platform", "win", 10.0, 32.0, 22.0),
                             ("reason", BAD, 10.0, 32.0, 22.0)]
    assert [r["sure"] for r in result["rises"]] == [14.89] * 3
    assert result["msg"] == (
        "all logins: failures rose from 10% to 32% (+22 points; 32 of 100 logins failed); "
        "win: failures rose from 10% to 32% (+22 points; 32 of 100 logins failed); "
        "error '" + BAD + "' rose from 10% to 32% of logins (+22 points; 32 of 100 logins)")
    assert result["new_reasons"] == []


def test_several_rises_largest_first_with_every_new_reason_named():
    before = sample(("win", 30, {BAD: 1}), ("android", 30, {BAD: 1}), ("mac", 30, {}))
    after = sample(("win", 30, {BAD: 1}), ("android", 24, {NEW: 24}), ("mac", 20, {"post_auth: mac": 6}),
                   ("linux", 20, {"timeout": 6}))

    result = judge(before, after)

    assert result["verdict"] == "fail"
    assert result["passed"] is False
    # ordered by the observed rise: linux rose less than mac, NEW less than both, though NEW's rise is surer
    assert [(kind, name, before_rate, after_rate, rise, r["sure"])
            for (kind, name, before_rate, after_rate, rise), r in zip(rises(result), result["rises"])] == [
        ("platform", "android", 3.33, 100.0, 96.67, 86.54),
        ("overall", "all", 2.22, 39.36, 37.14, 29.26),
        ("platform", "mac", 0.0, 30.0, 30.0, 16.39),
        ("platform", "linux", 2.22, 30.0, 27.78, 14.16),
        ("reason", NEW, 0.0, 25.53, 25.53, 18.89),
    ]
    assert [r["rise"] for r in result["rises"]] == sorted((r["rise"] for r in result["rises"]), reverse=True)
    assert [item["reason"] for item in result["new_reasons"]] == [NEW, "post_auth: mac", "timeout"]
    assert result["msg"] == (
        "android: failures rose from 3.3% to 100% (+96.7 points; 24 of 24 logins failed); "
        "all logins: failures rose from 2.2% to 39.4% (+37.1 points; 37 of 94 logins failed); "
        "mac: failures rose from 0% to 30% (+30 points; 6 of 20 logins failed); "
        "linux (no logins before the change): failures 30% against 2.2% of all logins before "
        "(+27.8 points; 6 of 20 logins failed); "
        "error 'post_auth: this client is not allowed' is new: 25.5% of logins (+25.5 points; 24 of 94 logins); "
        "error 'post_auth: mac' is new (6 of 94 logins); error 'timeout' is new (6 of 94 logins)"
    )


def test_equal_rises_are_ordered_by_kind_then_name():
    before = sample(("win", 20, {}), ("mac", 20, {}))
    after = sample(("win", 20, {"a": 20}), ("mac", 20, {"b": 20}))
    result = judge(before, after, max_rise=10)
    assert [(r["kind"], r["name"], r["rise"]) for r in result["rises"]] == [
        ("overall", "all", 100.0), ("platform", "mac", 100.0), ("platform", "win", 100.0),
        ("reason", "a", 50.0), ("reason", "b", 50.0),
    ]


def test_a_pass_names_new_reasons():
    result = judge(sample(("win", 40, {BAD: 2})), sample(("win", 40, {BAD: 2, "timeout": 1})))
    assert (result["verdict"], result["passed"], result["rises"]) == ("pass", True, [])
    assert result["msg"] == ("pass: failures 5% before the change (2 of 40 logins), 7.5% after (3 of 40); "
                             "no rise above 10 points; error 'timeout' is new (1 of 40 logins)")


def test_the_unknown_platform_is_named_as_such():
    result = judge(sample(("win", 20, {})), sample(("win", 20, {}), ("unknown", 10, {BAD: 10})), max_rise=40)
    assert [(r["kind"], r["name"], r["sure"]) for r in result["rises"]] == [("platform", "unknown", 78.71)]
    assert result["msg"] == ("unknown platform (no logins before the change): failures 100% against 0% of all "
                             "logins before (+100 points; 10 of 10 logins failed); error '" + BAD + "' is new "
                             "(10 of 30 logins)")


@pytest.mark.parametrize("before_logins, after_logins, on_inconclusive, expected, passed", [
    (19, 40, "fail", "inconclusive", False),
    (40, 19, "fail", "inconclusive", False),
    (0, 0, "fail", "inconclusive", False),
    (19, 40, "pass", "inconclusive", True),
    (40, 3, "pass", "inconclusive", True),
    (20, 20, "fail", "pass", True),
], ids=["few-before", "few-after", "none", "few-before-pass", "few-after-pass", "exactly-the-minimum"])
def test_too_few_logins(before_logins, after_logins, on_inconclusive, expected, passed):
    before = sample(("win", before_logins, {}))
    after = sample(("win", after_logins, {BAD: min(after_logins, 1)} if after_logins < 20 else {}))

    result = judge(before, after, on_inconclusive=on_inconclusive)

    assert (result["verdict"], result["passed"], result["rises"]) == (expected, passed, [])
    if expected == "inconclusive":
        message = "inconclusive: %d logins before the change and %d after; each window needs at least 20" % (
            before_logins, after_logins)
        assert result["msg"] == message + (" (passed: on_inconclusive=pass)" if passed else "")


def test_inconclusive_with_a_rise_still_names_new_reasons_but_no_rises():
    result = judge(sample(("win", 10, {})), sample(("win", 10, {NEW: 10})))
    assert result["verdict"] == "inconclusive"
    assert result["rises"] == []
    assert result["new_reasons"] == [dict(reason=NEW, count=10, rate=100.0)]
    assert result["msg"] == "inconclusive: 10 logins before the change and 10 after; each window needs at least 20"


def test_one_login_is_singular():
    result = judge(sample(("win", 1, {})), sample(("win", 0, {})), min_logins=2)
    assert result["msg"] == "inconclusive: 1 login before the change and 0 after; each window needs at least 2"


def test_rises_are_rounded_for_the_results_only():
    before, after = sample(("win", 30, {BAD: 1})), sample(("win", 30, {BAD: 15}))
    entry = overall(before, after)

    result = judge(before, after)

    first = result["rises"][0]
    assert (first["before_rate"], first["after_rate"], first["rise"], first["sure"]) == (3.33, 50.0, 46.67, 32.29)
    assert entry["rise"] != 46.67 and entry["sure"] != 32.29, "unrounded before the verdict"
    for rise in result["rises"]:
        for name in ("before_rate", "after_rate", "rise", "sure"):
            # a float, not a Fraction (which JSON and YAML would not take)
            assert isinstance(rise[name], float)
    assert json.dumps(result)


def test_platform_minimum():
    assert [soak.platform_minimum(n) for n in (1, 12, 15, 16, 20, 40, 41)] == [3, 3, 3, 4, 5, 10, 10]


# --- one reason for one lockout, and a message of one line ----------------------------------------

@pytest.mark.parametrize("user, error, reason", [
    ("carol", "group_mapping: carol (radius) matched no group mapping rule",
     "group_mapping: <user> (radius) matched no group mapping rule"),
    ("Bob", "group_mapping: bob matches suspended, which denies access",
     "group_mapping: <user> matches suspended, which denies access"),
    ("alice", "device_pinning: device 00:11:22:33:44:57 is not registered for alice",
     "device_pinning: device <device> is not registered for <user>"),
    ("alice", "device_pinning: device 9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7b is not registered for alice",
     "device_pinning: device <device> is not registered for <user>"),
    ("dave", "network: 192.0.2.7 is not allowed", "network: <address> is not allowed"),
    # a name within a word, an address or another name is left alone
    ("al", "host_checker: platform 'android' is not allowed; ask al.smith or al@example.com, not al.",
     "host_checker: platform 'android' is not allowed; ask al.smith or al@example.com, not <user>."),
    ("u", "local auth failed: password verification failed", "local auth failed: password verification failed"),
    ("x", "", soak.NO_REASON),
])
def test_a_reason_leaves_out_what_differs_from_login_to_login(user, error, reason):
    assert soak.reason_of(error, user) == reason


def test_a_lockout_of_many_users_is_one_new_reason_that_rises():
    users = ["user%02d" % n for n in range(40)]
    before = summarize([row(user) for user in users])
    after = summarize([row(user, auth=False, error="group_mapping: %s (radius) matched no group mapping rule" % user)
                       for user in users[:20]] + [row(user) for user in users[20:]])
    result = judge(before, after)
    assert result["verdict"] == "fail"
    assert after["reasons"] == {"group_mapping: <user> (radius) matched no group mapping rule": 20}
    assert "error 'group_mapping: <user> (radius) matched no group mapping rule' is new: 50% of logins" in result["msg"]
    assert not any(user in result["msg"] for user in users)


def test_the_message_names_the_largest_rises_and_new_reasons_and_counts_the_rest():
    platforms = ["p%d" % n for n in range(4)]
    before = sample(*((name, 30, {}) for name in platforms))
    # every platform fails with its own new error text: the overall rise, 4 platform rises, 4 reason rises
    after = sample(*((name, 30, {"error %d" % n: 30}) for n, name in enumerate(platforms)))
    result = judge(before, after)
    assert result["verdict"] == "fail"
    assert len(result["rises"]) == 1 + 4 + 4
    assert result["msg"].count("failures rose") + result["msg"].count(" is new") == soak.SHOWN_RISES
    assert result["msg"].endswith("; %d more rises" % (len(result["rises"]) - soak.SHOWN_RISES))
    # new reasons that did not rise enough are named up to a few, then counted
    many = sample(("win", 200, {}))
    some = sample(("win", 200, {"odd %d" % n: 1 for n in range(7)}))
    passed = judge(many, some)
    assert passed["verdict"] == "pass"
    assert [item["reason"] for item in passed["new_reasons"]] == ["odd %d" % n for n in range(7)]
    assert passed["msg"].count(" is new") == soak.SHOWN_NEWS
    assert passed["msg"].endswith("; %d more new errors" % (7 - soak.SHOWN_NEWS))
