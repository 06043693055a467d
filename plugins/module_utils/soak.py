# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real logins before and after a change, read from what ``logdba`` prints, and the verdict on them.

Access Server records every authentication, failures included, in its log database, and
``scripts/logdba`` prints it. Neither the exact JSON shape of that output nor its time format is
published, so :func:`parse_output` reads every shape it may plausibly take:

* a JSON list of objects; an object that holds such a list under some key (``rows``, ``data``,
  ``records``, ``logs``, ``results``...); an object with ``columns`` and ``rows`` as lists of lists;
  also after lines of text (a banner, a warning) before the JSON;
* JSON lines (one object a line);
* CSV with a header line (``logdba --csv``) that names ``start_time`` or ``timestamp``.

Field names are matched without regard to case, blanks or dashes (``user_name`` or ``user`` stand
for an absent ``username``); unknown fields are ignored, absent ones are empty. ``start_time``
(else ``timestamp``) is an epoch number (a number above 1e11 counts as milliseconds), a numeric
string, a date and time (``YYYY-MM-DD HH:MM:SS``, ISO 8601 with ``T``, ``Z``, offsets and
fractions) or C's ctime format (``Tue Jul 18 19:56:21 2023``). A date and time without an offset
is UTC, unless the newest such row would then lie more than FUTURE_SLACK seconds after the host's
clock: they are all local time then. A row whose time does not read is counted as unreadable,
never raised.

``auth`` is ``1``/``0``, a boolean or a word (``true``, ``yes``, ``false``, ``no``...); without a
readable one, a row with an error text is a failure. An error that starts with ``LOCKOUT`` (an
account lock) is always a failure. Rows whose error is ``challenge`` (the first step of a login
with a second factor) or a ``CRV1:`` challenge are not logins: they are counted apart.

This file runs on the managed host (Python 3.6 and later) and imports nothing of Ansible.
"""

import calendar
import csv
import datetime
import io
import json
import math
import re
import time
from fractions import Fraction

# a naive date-time read as UTC that lies further than this after the host's clock is local time
FUTURE_SLACK = 600
# epoch numbers above this are milliseconds (1e11 seconds is the year 5138)
EPOCH_MILLISECONDS = 1e11
# the keys an object may hold its list of rows under, tried in this order before any other
LIST_KEYS = ("rows", "data", "records", "logs", "log", "results", "result", "items", "entries", "sessions",
             "values")
TIME_FIELDS = ("start_time", "timestamp")
# the fields of a log row as the Access Server API returns them (a CSV header names some of them)
KNOWN_FIELDS = frozenset((
    "node", "username", "start_time", "duration", "service", "active", "auth", "real_address",
    "virtual_ipv4_address", "error", "timestamp", "version", "gui_version", "platform", "protocol", "proxied_ip",
    "bytes_in", "bytes_out", "bytes_total", "api_method", "session_id",
))
# other names of a field, used when the field itself is absent
ALIASES = dict(user_name="username", user="username")
TRUE_WORDS = frozenset(("1", "true", "t", "yes", "y", "on", "ok", "succeed", "success", "succeeded"))
FALSE_WORDS = frozenset(("0", "false", "f", "no", "n", "off", "fail", "failed", "failure"))
NO_REASON = "(no error text)"
UNKNOWN_PLATFORM = "unknown"
REASON_LIMIT = 200
EXAMPLES = 3

DATETIME = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
    r"(?:(?:T|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
CTIME = re.compile(
    r"^(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(\d{4})$"
)
MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class SoakParseError(ValueError):
    """logdba printed nothing that holds log rows."""


# --- values ---------------------------------------------------------------------------


def field_name(name):
    """A field name as compared: lower case, blanks and dashes as underscores."""
    return re.sub(r"[\s-]+", "_", str(name).strip().lower())


def as_text(value):
    """A field's value as text: empty for null, ``true``/``false`` for booleans, JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse_auth(value):
    """True (succeeded), False (failed), or None when ``value`` says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def is_challenge(error):
    """Whether an error text marks the challenge step of a login rather than a failure."""
    text = (error or "").strip().lower()
    return text == "challenge" or text.startswith("crv1:")


def parse_time(value):
    """Read a time: ``(seconds, naive)`` or None.

    ``seconds`` is the epoch time, a naive date-time read as UTC; ``naive`` is None, or for a naive
    date-time its fields ``(year, month, day, hour, minute, second, fraction)`` to read it as local time.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if NUMBER.match(text):
        return epoch(float(text))
    match = DATETIME.match(text)
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                  float("0." + fraction) if fraction else 0.0)
        return from_fields(fields, zone)
    match = CTIME.match(text)
    if match and match.group(1).lower() in MONTHS:
        month, day, hour, minute, second, year = match.groups()
        fields = (int(year), MONTHS[month.lower()], int(day), int(hour), int(minute), int(second), 0.0)
        return from_fields(fields, None)
    return None


def epoch(seconds):
    if not math.isfinite(seconds) or seconds < 0:
        return None
    if seconds > EPOCH_MILLISECONDS:
        seconds /= 1000.0
    return seconds, None


def from_fields(fields, zone):
    try:
        datetime.datetime(*fields[:6])
    except ValueError:
        return None
    seconds = calendar.timegm(fields[:6] + (0, 0, 0)) + fields[6]
    if zone is None:
        return seconds, fields
    zone = zone.upper()
    if zone in ("Z", "UTC", "GMT"):
        return seconds, None
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    offset = (hours * 3600 + minutes * 60) * (1 if zone[0] == "+" else -1)
    return seconds - offset, None


def local_seconds(fields):
    """A naive date-time read as the host's local time."""
    return time.mktime(fields[:6] + (0, 0, -1)) + fields[6]


# --- output ---------------------------------------------------------------------------


def parse_output(text, now=None):
    """Read what logdba printed (JSON or CSV text).

    Returns a dict: ``rows`` (normalized rows with a readable time, see :func:`normalize`),
    ``unreadable`` (how many rows had no readable time), ``examples`` (a few of those, as text),
    ``format`` (``json``, ``json lines`` or ``csv``), ``naive_times`` (``utc`` or ``local``: how date-times
    without an offset were read; None when there were none). Empty text holds no rows. Raises SoakParseError
    when the text is neither JSON that holds rows nor CSV with a header.
    """
    records, unreadable, fmt = decode(text)
    now = time.time() if now is None else now
    rows, examples, naive = [], [], []
    for record in records:
        row, raw = normalize(record)
        if row is None:
            unreadable += 1
            if len(examples) < EXAMPLES:
                examples.append(raw)
            continue
        rows.append(row)
        if row["naive"] is not None:
            naive.append(row)
    naive_times = None
    if naive:
        naive_times = "utc"
        if max(row["time"] for row in naive) > now + FUTURE_SLACK:
            naive_times = "local"
            for row in naive:
                row["time"] = local_seconds(row["naive"])
    for row in rows:
        del row["naive"]
    return dict(rows=rows, unreadable=unreadable, examples=examples, format=fmt, naive_times=naive_times)


def decode(text):
    """``(records, unreadable, format)``: the objects the text holds and how many items were not objects."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = (text or "").lstrip("\ufeff").strip()
    if not text:
        # a logdba that exits 0 and prints nothing may well have found no rows: no logins, not an error
        return [], 0, "empty"
    try:
        data = json.loads(text)
    except ValueError:
        pass
    else:
        found = records_of(data)
        if found is None:
            raise SoakParseError("printed JSON that holds no log rows")
        return found[0], found[1], "json"

    # JSON after lines of text (a banner, a warning)
    start = re.search(r"^[ \t]*[\[{]", text, re.MULTILINE)
    if start is not None:
        try:
            data, end = json.JSONDecoder().raw_decode(text, start.end() - 1)
        except ValueError:
            data = end = None
        if end is not None and not text[end:].strip():
            found = records_of(data)
            if found is not None:
                return found[0], found[1], "json"

    # JSON lines
    records, others = [], 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if isinstance(item, dict):
            records.append(item)
        else:
            others += 1
    if records:
        return records, others, "json lines"

    found = csv_records(text)
    if found is not None:
        return found[0], found[1], "csv"
    raise SoakParseError("printed neither JSON nor CSV with a header that names start_time")


def looks_like_row(data):
    names = {field_name(key) for key in data}
    return any(name in names for name in TIME_FIELDS) or "username" in names


def column_names(columns):
    names = []
    for column in columns:
        if isinstance(column, dict):
            column = column.get("name", column.get("id", ""))
        names.append(as_text(column))
    return names


def records_of(data, depth=0):
    """``(records, unreadable)`` of a decoded JSON value, or None when it holds no list of rows."""
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return list(data), 0
        if any(isinstance(item, dict) for item in data):
            return [item for item in data if isinstance(item, dict)], sum(1 for i in data if not isinstance(i, dict))
        if isinstance(data[0], list) and KNOWN_FIELDS.intersection(field_name(c) for c in column_names(data[0])):
            return zipped(column_names(data[0]), data[1:])
        return None
    if not isinstance(data, dict) or depth > 3:
        return None
    keys = {field_name(key): key for key in data}
    columns = data.get(keys.get("columns")) or data.get(keys.get("fields")) or data.get(keys.get("header"))
    if isinstance(columns, list) and columns:
        names = column_names(columns)
        for name in LIST_KEYS + tuple(keys):
            value = data.get(keys.get(name))
            if isinstance(value, list) and value and all(isinstance(item, (list, tuple)) for item in value):
                return zipped(names, value)
    names = [keys[name] for name in LIST_KEYS if name in keys]
    names += [key for key in data if key not in names]
    empty = None
    for key in names:
        value = data[key]
        if isinstance(value, list):
            found = records_of(value, depth + 1) if value else None
            if found is not None:
                return found
            if not value and empty is None and field_name(key) in LIST_KEYS:
                empty = ([], 0)
    if looks_like_row(data):
        return [data], 0
    if empty is not None:
        return empty
    for key in names:
        value = data[key]
        if isinstance(value, dict):
            found = records_of(value, depth + 1)
            if found is not None:
                return found
    return None


def zipped(names, rows):
    records, others = [], 0
    for row in rows:
        if isinstance(row, (list, tuple)):
            records.append(dict(zip(names, row)))
        elif isinstance(row, dict):
            records.append(row)
        else:
            others += 1
    return records, others


def csv_records(text):
    """``(records, unreadable)`` of CSV text whose header (in its first five lines) names a time field."""
    lines = list(csv.reader(io.StringIO(text)))
    for index, header in enumerate(lines[:5]):
        names = [field_name(cell) for cell in header]
        if any(name in names for name in TIME_FIELDS):
            records = [dict(zip(names, cells)) for cells in lines[index + 1:] if any(c.strip() for c in cells)]
            return records, 0
    return None


def normalize(record):
    """One log row as ``(row, None)``, or ``(None, description)`` when its time does not read.

    A row is a dict: ``time`` (epoch seconds), ``username``, ``service``, ``auth`` (bool), ``error``,
    ``platform`` (lower case; ``unknown`` when empty), ``version``, ``gui_version``, ``naive``.
    """
    fields = {field_name(key): value for key, value in record.items()}
    for alias, name in ALIASES.items():
        if name not in fields and alias in fields:
            fields[name] = fields[alias]
    raw = None
    for name in TIME_FIELDS:
        if as_text(fields.get(name)).strip():
            raw = fields[name]
            break
    parsed = parse_time(raw)
    if parsed is None:
        shown = "no time" if raw is None else "time %r" % as_text(raw)[:60]
        return None, "%s (user %r)" % (shown, as_text(fields.get("username"))[:60])
    error = as_text(fields.get("error")).strip()
    auth = parse_auth(fields.get("auth"))
    if auth is None:
        auth = not error
    if error.upper().startswith("LOCKOUT"):
        auth = False
    row = dict(
        time=parsed[0],
        naive=parsed[1],
        username=as_text(fields.get("username")).strip(),
        service=as_text(fields.get("service")).strip(),
        auth=auth,
        error=error,
        platform=as_text(fields.get("platform")).strip().lower() or UNKNOWN_PLATFORM,
        version=as_text(fields.get("version")).strip(),
        gui_version=as_text(fields.get("gui_version")).strip(),
    )
    return row, None


def service_matches(service, patterns):
    """Whether a row's service is one of ``patterns`` (``%`` matches any text; case does not matter).

    A row without a service matches: logdba already filtered what it printed.
    """
    if not service or not patterns:
        return True
    for pattern in patterns:
        regex = "^%s$" % ".*".join(re.escape(part) for part in pattern.split("%"))
        if re.match(regex, service, re.IGNORECASE):
            return True
    return False


# --- windows ----------------------------------------------------------------------------


def windows(start, duration, applying=0):
    """The two windows of a soak that begins at ``start``.

    ``after`` is ``[start, start + duration]``; ``before`` is the same length of time ending where the
    change began to be applied, ``[start - applying - duration, start - applying)``. Logins of the
    ``applying`` seconds in between count in neither.
    """
    return dict(before=(start - applying - duration, start - applying), after=(start, start + duration))


def split(rows, spans):
    """``(before, after)``: the rows whose time lies in each window of :func:`windows`."""
    low, high = spans["before"]
    before = [row for row in rows if low <= row["time"] < high]
    low, high = spans["after"]
    after = [row for row in rows if low <= row["time"] <= high]
    return before, after


# --- summaries and the verdict -----------------------------------------------------------


# what varies from login to login within one error text: devices and addresses (the user's name is taken out first)
VARYING = (
    (re.compile(r"\b[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\b"), "<device>"),
    (re.compile(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b"), "<device>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<address>"),
)


def reason_of(error, username=""):
    """The error text of a failure as one reason of many logins: the user's name and what names a device or an
    address are replaced (``group_mapping: <user> (radius) matched no group mapping rule``), so that one lockout is
    one reason, not one per user, and the message names no user."""
    text = (error or "").strip()
    if not text:
        return NO_REASON
    name = (username or "").strip()
    if len(name) > 1:
        text = re.sub(r"(?<![\w.@-])%s(?![\w@-]|\.\w)" % re.escape(name), "<user>", text, flags=re.IGNORECASE)
    for pattern, placeholder in VARYING:
        text = pattern.sub(placeholder, text)
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "..."


def rate(failures, logins):
    """A failure rate in percent, exact (a Fraction); 0 without logins."""
    return Fraction(failures * 100, logins) if logins else Fraction(0)


def shown_rate(value):
    return round(float(value), 2)


def summarize(rows, exclude_users=()):
    """Count the logins of some rows.

    Rows of ``exclude_users`` (compared without regard to case) are dropped and counted as
    ``excluded``; challenge rows are no logins and are counted as ``challenges``. Returns ``logins``,
    ``failures``, ``failure_rate`` (percent, two decimals), ``challenges``, ``excluded``, ``platforms``
    (name to ``logins``, ``failures``, ``failure_rate``) and ``reasons`` (error text of failures to count).
    """
    excluded_names = {name.lower() for name in exclude_users or ()}
    summary = dict(logins=0, failures=0, failure_rate=0.0, challenges=0, excluded=0, platforms={}, reasons={})
    for row in rows:
        if row["username"].lower() in excluded_names:
            summary["excluded"] += 1
            continue
        if is_challenge(row["error"]):
            summary["challenges"] += 1
            continue
        platform = summary["platforms"].setdefault(row["platform"], dict(logins=0, failures=0, failure_rate=0.0))
        summary["logins"] += 1
        platform["logins"] += 1
        if not row["auth"]:
            summary["failures"] += 1
            platform["failures"] += 1
            reason = reason_of(row["error"], row["username"])
            summary["reasons"][reason] = summary["reasons"].get(reason, 0) + 1
    for counts in [summary] + list(summary["platforms"].values()):
        counts["failure_rate"] = shown_rate(rate(counts["failures"], counts["logins"]))
    return summary


def exact(number):
    """A threshold as the exact decimal it was written as (10, 2.5, 0.1)."""
    return Fraction(repr(float(number)))


def platform_minimum(min_logins):
    """How many logins after the change a platform needs before its rise can fail the verdict."""
    return max(3, min_logins // 4)


def percent(value):
    text = "%.1f" % float(value)
    return text[:-2] if text.endswith(".0") else text


def quoted(reason, limit=80):
    text = reason if len(reason) <= limit else reason[:limit] + "..."
    return "'%s'" % text


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def describe(rise):
    """One rise as the verdict's message names it."""
    numbers = "+%s points; %d of %s" % (percent(rise["rise"]), rise["after_failures"],
                                        plural(rise["after_logins"], "login"))
    if rise["kind"] == "reason":
        if rise["new"]:
            return "error %s is new: %s%% of logins (%s)" % (
                quoted(rise["name"]), percent(rise["after_rate"]), numbers)
        return "error %s rose from %s%% to %s%% of logins (%s)" % (
            quoted(rise["name"]), percent(rise["before_rate"]), percent(rise["after_rate"]), numbers)
    name = "all logins" if rise["kind"] == "overall" else rise["name"]
    if rise["kind"] == "platform" and rise["name"] == UNKNOWN_PLATFORM:
        name = "unknown platform"
    if rise["new"]:
        return "%s (no logins before the change): failures %s%% against %s%% of all logins before (%s failed)" % (
            name, percent(rise["after_rate"]), percent(rise["before_rate"]), numbers)
    return "%s: failures rose from %s%% to %s%% (%s failed)" % (
        name, percent(rise["before_rate"]), percent(rise["after_rate"]), numbers)


# the one-sided 95% normal quantile: the confidence with which a soak says a rate rose
CONFIDENCE_Z = 1.6448536269514722


def lower_bound(failures, logins, z=CONFIDENCE_Z):
    """The lower end of the one-sided 95% Wilson score interval of a failure rate, in percent.

    A few unlucky logins on a small platform (1 mistyped password of 7) make a high rate but a low
    bound: the rise the verdict counts is this bound minus the rate before the change.
    """
    if not logins:
        return 0.0
    share, square = float(failures) / logins, z * z
    centre = share + square / (2.0 * logins)
    margin = z * math.sqrt(share * (1 - share) / logins + square / (4.0 * logins * logins))
    return max(0.0, (centre - margin) / (1 + square / logins)) * 100


def rise_entry(kind, name, before, after, new=False):
    """``before`` and ``after`` are ``(failures, logins)``; the rise is exact (a Fraction) until shown.

    ``sure`` is the rise the verdict compares with the threshold: the lower bound of the rate after the change
    (:func:`lower_bound`) minus the rate before it.
    """
    before_rate, after_rate = rate(*before), rate(*after)
    return dict(kind=kind, name=name, before_rate=before_rate, after_rate=after_rate,
                rise=after_rate - before_rate, sure=lower_bound(after[0], after[1]) - float(before_rate),
                before_failures=before[0], before_logins=before[1], after_failures=after[0], after_logins=after[1],
                new=new)


def candidates(before, after, min_logins):
    """Every rate the verdict compares: overall, each platform with enough logins after, each reason after."""
    found = [rise_entry("overall", "all", (before["failures"], before["logins"]),
                        (after["failures"], after["logins"]))]
    least = platform_minimum(min_logins)
    for name, counts in sorted(after["platforms"].items()):
        if counts["logins"] < least:
            continue
        earlier = before["platforms"].get(name)
        if earlier and earlier["logins"]:
            entry = rise_entry("platform", name, (earlier["failures"], earlier["logins"]),
                               (counts["failures"], counts["logins"]))
        else:
            # a platform without logins before is compared with the rate of all logins before
            entry = rise_entry("platform", name, (before["failures"], before["logins"]),
                               (counts["failures"], counts["logins"]))
            entry["before_failures"] = entry["before_logins"] = 0
            entry["new"] = True
        found.append(entry)
    for reason, count in sorted(after["reasons"].items()):
        earlier = before["reasons"].get(reason, 0)
        found.append(rise_entry("reason", reason, (earlier, before["logins"]), (count, after["logins"]),
                                new=earlier == 0))
    return found


KIND_ORDER = dict(overall=0, platform=1, reason=2)
# how many rises and new error texts the message names (the results hold them all)
SHOWN_RISES = 5
SHOWN_NEWS = 3


def verdict(before, after, min_logins, max_rise_points, on_inconclusive="fail"):
    """Judge the summaries of the two windows.

    * ``inconclusive`` when either window has fewer than ``min_logins`` logins; it passes only with
      ``on_inconclusive="pass"``.
    * ``fail`` when the failure rate of all logins rises by more than ``max_rise_points`` percentage
      points; or that of a platform with at least ``max(3, min_logins // 4)`` logins after the change (a
      platform without logins before is compared with the rate of all logins before); or the rate of one
      error reason (its failures among all logins of the window; a new reason rises from 0). The rise
      counted is the one the logins show with 95% confidence: the lower end of the Wilson score interval
      of the rate after the change minus the rate before it (:func:`lower_bound`), strictly more than
      ``max_rise_points``. So 1 failure of 7 logins (14%) after none before is no rise of 10 points,
      24 of 24 is one of 89 at least.
    * ``pass`` otherwise.

    Observed rates and rises are exact (fractions) until shown. Returns ``verdict``, ``passed`` (whether the
    gate lets the change through), ``msg``, ``rises`` (every rise above the threshold, the largest first)
    and ``new_reasons`` (the error texts of failures after the change that never occurred before, with
    their counts).
    """
    new_reasons = [dict(reason=reason, count=count, rate=shown_rate(rate(count, after["logins"])))
                   for reason, count in sorted(after["reasons"].items(), key=lambda item: (-item[1], item[0]))
                   if reason not in before["reasons"]]
    result = dict(verdict="pass", passed=True, msg="", rises=[], new_reasons=new_reasons)
    if before["logins"] < min_logins or after["logins"] < min_logins:
        result["verdict"] = "inconclusive"
        result["passed"] = on_inconclusive == "pass"
        result["msg"] = "inconclusive: %s before the change and %d after; each window needs at least %d" % (
            plural(before["logins"], "login"), after["logins"], min_logins)
        if result["passed"]:
            result["msg"] += " (passed: on_inconclusive=pass)"
        return result

    limit = exact(max_rise_points)
    rises = [entry for entry in candidates(before, after, min_logins) if entry["sure"] > float(limit)]
    rises.sort(key=lambda entry: (-entry["rise"], KIND_ORDER[entry["kind"]], entry["name"]))
    described = {entry["name"] for entry in rises if entry["kind"] == "reason"}
    news = ["error %s is new (%d of %s)" % (quoted(item["reason"]), item["count"], plural(after["logins"], "login"))
            for item in new_reasons if item["reason"] not in described]
    # a message of one line: the largest rises and new reasons, and how many more the results hold
    if len(news) > SHOWN_NEWS:
        news = news[:SHOWN_NEWS] + ["%d more new errors" % (len(news) - SHOWN_NEWS)]
    if rises:
        result["verdict"] = "fail"
        result["passed"] = False
        shown = [describe(entry) for entry in rises[:SHOWN_RISES]]
        if len(rises) > SHOWN_RISES:
            shown.append("%d more rises" % (len(rises) - SHOWN_RISES))
        result["msg"] = "; ".join(shown + news)
    else:
        result["msg"] = "pass: failures %s%% before the change (%d of %s), %s%% after (%d of %d); " \
                        "no rise above %s points" % (
                            percent(rate(before["failures"], before["logins"])), before["failures"],
                            plural(before["logins"], "login"), percent(rate(after["failures"], after["logins"])),
                            after["failures"], after["logins"], percent(limit))
        if news:
            result["msg"] += "; " + "; ".join(news)
    for entry in rises:
        for name in ("before_rate", "after_rate", "rise", "sure"):
            entry[name] = shown_rate(entry[name])
    result["rises"] = rises
    return result
