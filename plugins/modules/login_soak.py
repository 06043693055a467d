#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: login_soak
short_description: Compare OpenVPN Access Server's real logins after a change with those before it
version_added: 0.1.0
description:
  - A soak after a change, run on a server once the new post-auth script passed its canary gate
    (M(ovpnas.fleet.auth_check)). It watches the server's real logins for O(duration) seconds and compares their
    failure rate with that of the same length of time before the change; the task fails when failures rose.
  - Access Server records every authentication, failures included, in its log database. The module reads it with
    C(logdba) every O(poll_interval) seconds, one call a poll, and judges the last poll, taken O(lag) seconds after
    the window closed so that rows written late are counted.
  - "The windows: the soak begins when the module starts (t0). The window after the change is
    C([t0, t0 + duration]); the window before it is as long and ends where the change began to be applied,
    C([t0 - applying - duration, t0 - applying)). Logins of the O(applying) seconds in between, while the server
    started and was gated, count in neither."
  - "The verdict: V(inconclusive) when either window has fewer than O(min_logins) logins. V(fail) when a failure
    rate rose by more than O(max_failure_rise) percentage points with 95% confidence (see below): the failure
    rate of all logins; or that of one platform that has at least the greater of 3 and O(min_logins) // 4 logins
    after the change (a platform without logins before the change is compared with the rate of all logins before
    it); or the share of all logins that failed with one error reason (a reason that never occurred before rises
    from 0%). V(pass) otherwise."
  - "The rise that counts is not the one the logins show but the one they show with 95% confidence: the lower end
    of the one-sided 95% Wilson score interval (z = 1.6449) of the rate after the change, in percent, minus the
    rate before it. Only a rise of strictly more than O(max_failure_rise) fails; one of exactly
    O(max_failure_rise) passes. With few logins the lower end lies far below the rate: 1 failed login of 7
    (14.3%) after none before counts as a rise of 3.3 points and passes, while 5 failed logins of 5 count as one
    of 64.9 points. With many logins it nears the rate: 116 failed logins of 1000 (11.6%) after none before
    count as a rise of 10.04 points."
  - The task fails with a message that names each platform and error reason that rose, and by how much, the
    largest observed rise first; the message shows the rates the logins show. The results stay in the return
    values; each entry of RV(rises) also holds C(sure), the rise that counted.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ovpnas.fleet.sacli
  - ovpnas.fleet.sacli.ATTRIBUTES
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: partial
    details:
      - In check mode nothing runs and nothing is waited for, because the change a check run would make is not
        live. The module returns RV(check_mode_skipped) and the C(logdba) command of the first poll.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The module only reads; it never reports a change.
options:
  logdba_path:
    description:
      - Path of C(logdba) on the managed host.
      - Defaults to C(logdba) in the folder of O(sacli_path) (of its real path, when it is a link).
      - O(sacli_timeout) limits each C(logdba) call.
    type: path
  duration:
    description:
      - Seconds to watch the logins after the change; the window before the change is as long.
      - The task runs for that long, plus O(lag). For long soaks, run the task with C(async) and C(poll).
    type: int
    required: true
  poll_interval:
    description:
      - Seconds between two C(logdba) calls; at least V(1).
      - The first call is made at once, so that a C(logdba) that does not work fails the task before the wait.
    type: int
    default: 10
  lag:
    description:
      - Seconds to wait after the window closed before the last call, whose rows the verdict judges. Access Server
        writes its log rows a few seconds after the login.
    type: int
    default: 5
  applying:
    description:
      - Seconds before the soak began during which the change was being applied (the start and the gate).
        Logins of that time count in neither window, and the window before the change ends where it begins.
    type: int
    default: 0
  min_logins:
    description:
      - The fewest logins each window needs for a verdict; with fewer, the verdict is V(inconclusive), see
        O(on_inconclusive).
      - A platform needs the greater of 3 and a quarter of it (O(min_logins) // 4) logins after the change before
        its failure rate can fail the soak.
      - Few logins only show a large rise for sure (see O(max_failure_rise)). With O(max_failure_rise=10) and no
        failures before, 20 logins after the change fail the soak only when at least 5 of them fail (25%), 100
        logins when 15 do (15%), and a platform of 5 logins when 2 do.
    type: int
    default: 20
  max_failure_rise:
    description:
      - The largest rise, in percentage points, of a failure rate that still passes.
      - The rise compared is the lower end of the one-sided 95% Wilson score interval of the rate after the change,
        minus the rate before it; the soak fails only when that is more than O(max_failure_rise). So the observed
        rise may be larger, the more so the fewer the logins after the change.
      - With V(10), no failures before and 200 logins after, 26 failures (13%) pass and 27 (13.5%) fail; with 5%
        before and 1000 logins after, 168 failures (16.8%) pass and 169 (16.9%) fail.
    type: float
    default: 10
  on_inconclusive:
    description:
      - What an V(inconclusive) verdict does to the task, V(fail) it or let it V(pass).
    type: str
    choices: [fail, pass]
    default: fail
  exclude_users:
    description:
      - Users whose logins count in neither window (compared without regard to case), such as the canary users of
        the gate, whose logins are no sample of the real ones.
    type: list
    elements: str
    default: []
  services:
    description:
      - The services whose logins count, as C(logdba --service_filt) takes them (V(VPN), V(WEB_ADMIN),
        V(WEB_CLIENT), V(XML_API); C(%) matches any text).
    type: list
    elements: str
    default: [VPN]
  fail_fast:
    description:
      - Stop before the end of the window once the window after the change has O(min_logins) logins and the verdict
        is already V(fail), instead of watching a broken change for the rest of O(duration).
    type: bool
    default: true
notes:
  - "Each poll runs C(logdba --json --service_filt=<services> --start_time_ge=-<N>m), N the whole minutes from the
    start of the window before the change up to the call plus one, rounded up; the rows are sorted into the windows by
    their C(start_time) on the managed host."
  - Rows with the error C(challenge) are the first step of a login with a second factor, not logins; they are
    counted apart. An error that starts with C(LOCKOUT) is a failure.
  - C(logdba)'s output is read as JSON (a list of rows, an object that holds one, C(columns) and C(rows), or one row
    a line), else as CSV with a header. Its times may be epoch numbers or dates and times; a date and time without
    an offset is UTC unless that puts the newest rows more than ten minutes after the host's clock, when they are
    the host's local time. C(logdba) runs with C(LC_ALL=C) and C(TZ=UTC). Rows whose time does not read are
    counted in RV(unreadable) and reported in a warning.
  - A C(logdba) that is missing, exits non-zero, does not finish within O(sacli_timeout) or prints nothing that
    holds log rows fails the task, with what it printed on standard error.
seealso:
  - module: ovpnas.fleet.auth_check
  - module: ovpnas.fleet.sacli_start
"""

EXAMPLES = r"""
- name: Apply the new post-auth script
  ovpnas.fleet.sacli_start:

- name: Gate the rollout on canary logins
  ovpnas.fleet.auth_check:
    logins:
      - user: canary-alice
        password: "{{ vault_canary_alice_password }}"

- name: Watch the real logins for ten minutes before the next batch
  ovpnas.fleet.login_soak:
    duration: 600
    applying: 60
    exclude_users: [canary-alice]
  register: soak

- name: Show how the failure rates moved
  ansible.builtin.debug:
    msg: "{{ soak.before.failure_rate }}% before, {{ soak.after.failure_rate }}% after"

- name: A quiet server, web logins too; pass when there are too few logins to judge
  ovpnas.fleet.login_soak:
    duration: 300
    min_logins: 8
    max_failure_rise: 20
    services: [VPN, WEB_CLIENT]
    on_inconclusive: pass
"""

RETURN = r"""
verdict:
  description:
    - V(pass), V(fail) or V(inconclusive) (too few logins in a window, see O(min_logins)).
  returned: outside check mode, once the first poll read
  type: str
  sample: fail
msg:
  description: The verdict in one line, naming each rise and new error reason; in check mode, what was skipped.
  returned: always
  type: str
  sample: >-
    android: failures rose from 3.3% to 100% (+96.7 points; 24 of 24 logins failed); error 'post_auth: this client
    is not allowed' is new: 40% of logins (+40 points; 24 of 60 logins)
before:
  description:
    - The logins of the window before the change, as the last poll read them.
    - O(exclude_users) and challenge rows are not logins and are counted apart.
  returned: outside check mode, once the first poll read
  type: dict
  contains:
    start:
      description: The start of the window (epoch seconds).
      type: float
      sample: 1700000000.0
    end:
      description: The end of the window (epoch seconds).
      type: float
      sample: 1700000600.0
    logins:
      description: The logins.
      type: int
      sample: 60
    failures:
      description: The logins that failed.
      type: int
      sample: 2
    failure_rate:
      description: The share of logins that failed, in percent, rounded to two decimals.
      type: float
      sample: 3.33
    challenges:
      description: The challenge rows (first steps of logins with a second factor), not counted as logins.
      type: int
      sample: 4
    excluded:
      description: The rows of O(exclude_users), not counted as logins.
      type: int
      sample: 3
    platforms:
      description: Per platform (lower case; V(unknown) when the row names none), its C(logins), C(failures) and
        C(failure_rate).
      type: dict
      sample: {android: {logins: 30, failures: 1, failure_rate: 3.33}, win: {logins: 30, failures: 1,
               failure_rate: 3.33}}
    reasons:
      description: The error texts of the failures and how many failures had each.
      type: dict
      sample: {"local auth failed: password verification failed": 2}
after:
  description: The logins of the window after the change, as the last poll read them, with the fields of RV(before).
  returned: outside check mode, once the first poll read
  type: dict
  sample: {start: 1700000660.0, end: 1700001260.0, logins: 60, failures: 26, failure_rate: 43.33, challenges: 0,
           excluded: 3, platforms: {android: {logins: 24, failures: 24, failure_rate: 100.0}},
           reasons: {"post_auth: this client is not allowed": 24}}
rises:
  description:
    - Every failure rate whose sure rise (RV(rises[].sure)) is more than O(max_failure_rise) points, the largest
      observed rise first; empty unless the verdict is V(fail).
  returned: outside check mode, once the first poll read
  type: list
  elements: dict
  contains:
    kind:
      description: V(overall) (all logins), V(platform) or V(reason) (the share of all logins that failed with one
        error text).
      type: str
      sample: platform
    name:
      description: The platform or the error text; V(all) for RV(rises[].kind=overall).
      type: str
      sample: android
    before_rate:
      description: The rate before the change, in percent (for a platform without logins before, that of all logins).
      type: float
      sample: 3.33
    after_rate:
      description: The rate after the change, in percent.
      type: float
      sample: 100.0
    rise:
      description: The rise in percentage points, as observed.
      type: float
      sample: 96.67
    sure:
      description:
        - The rise the logins show with 95% confidence, in percentage points, which the verdict compares with
          O(max_failure_rise) (the lower end of the Wilson score interval of the rate after the change, minus the rate
          before).
      type: float
      sample: 85.6
    before_failures:
      description: The failures counted before the change (of the platform, or with the reason).
      type: int
      sample: 1
    before_logins:
      description: The logins counted before the change (of the platform, or all).
      type: int
      sample: 30
    after_failures:
      description: The failures counted after the change.
      type: int
      sample: 24
    after_logins:
      description: The logins counted after the change.
      type: int
      sample: 24
    new:
      description: Whether the reason never occurred before the change, or the platform had no logins before it.
      type: bool
      sample: false
new_reasons:
  description: The error texts of failures after the change that never occurred before it, the most frequent first.
  returned: outside check mode, once the first poll read
  type: list
  elements: dict
  sample: [{reason: "post_auth: this client is not allowed", count: 24, rate: 40.0}]
polls:
  description: How many times C(logdba) was called.
  returned: when the options are valid
  type: int
  sample: 62
stopped_early:
  description: Whether O(fail_fast) ended the soak before the end of the window.
  returned: outside check mode
  type: bool
  sample: false
elapsed:
  description: Seconds from the start of the soak to the verdict.
  returned: outside check mode
  type: float
  sample: 605.2
unreadable:
  description: The rows of the last poll whose time did not read; they count in neither window.
  returned: outside check mode, once the first poll read
  type: int
  sample: 0
logdba:
  description: The command line of the last C(logdba) call (in check mode, of the first one), without the
    C(timeout) that limits it.
  returned: when the options are valid
  type: list
  elements: str
  sample: [/usr/local/openvpn_as/scripts/logdba, --json, --service_filt=VPN, --start_time_ge=-21m]
check_mode_skipped:
  description: True in check mode, when nothing was run.
  returned: in check mode
  type: bool
  sample: true
"""

import math
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import TIMEOUT_RC, bad_name, sacli_argument_spec
from ansible_collections.ovpnas.fleet.plugins.module_utils.soak import (
    SoakParseError,
    parse_output,
    service_matches,
    split,
    summarize,
    verdict,
    windows,
)

# the clock and the wait, replaced in tests
clock = time.time
sleep = time.sleep

# seconds logdba is asked to read beyond the start of the window before the change
MARGIN = 60
EXCERPT = 200
ENVIRONMENT = dict(LC_ALL="C", LANG="C", LC_MESSAGES="C", TZ="UTC")


class LogdbaError(Exception):
    """A logdba call failed; carries what it printed."""

    def __init__(self, msg, rc=None, stdout=None, stderr=None):
        super().__init__(msg)
        self.msg = msg
        found = (("rc", rc), ("stdout", stdout), ("stderr", stderr))
        self.details = {name: value for name, value in found if value is not None}


def excerpt(text):
    text = (text or "").strip()
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def minutes_back(now, since):
    """The whole minutes ``--start_time_ge`` must reach back from ``now`` to cover ``since``, with MARGIN."""
    return max(1, math.ceil((now - since + MARGIN) / 60.0))


class Logdba:
    """Runs logdba for one soak: one call a poll, under a timeout."""

    def __init__(self, module, path, services, timeout):
        self.module = module
        self.path = path
        self.services = services
        self.timeout = timeout
        self.last = None
        self._timeout_bin = module.get_bin_path("timeout") if timeout else None

    def argv(self, minutes):
        return [self.path, "--json", "--service_filt=%s" % ",".join(self.services), "--start_time_ge=-%dm" % minutes]

    def read(self, minutes):
        """Run one call; return its standard output."""
        argv = self.argv(minutes)
        self.last = argv
        full = argv
        if self._timeout_bin:
            full = [self._timeout_bin, "--kill-after=5", str(self.timeout)] + argv
        try:
            rc, out, err = self.module.run_command(full, check_rc=False, environ_update=ENVIRONMENT,
                                                   handle_exceptions=False)
        except (OSError, ValueError) as exc:
            raise LogdbaError("cannot run logdba: %s" % exc) from None
        if self._timeout_bin and rc in (TIMEOUT_RC, 128 + 9):
            raise LogdbaError("logdba did not finish within %s seconds" % self.timeout, rc, excerpt(out), err)
        if rc != 0:
            said = excerpt(err) or excerpt(out) or "nothing"
            raise LogdbaError("logdba failed with exit code %s: %s" % (rc, said), rc, excerpt(out), err)
        return out, err


def option_problems(params):
    problems = []
    for name, least in (("duration", 1), ("poll_interval", 1), ("lag", 0), ("applying", 0), ("min_logins", 1)):
        if params[name] < least:
            problems.append("%s must be at least %d" % (name, least))
    if not 0 <= params["max_failure_rise"] <= 100:
        problems.append("max_failure_rise must be between 0 and 100 percentage points")
    if not params["services"]:
        problems.append("services must name at least one service")
    for service in params["services"]:
        why = bad_name(service)
        if why is None and ("," in service or any(char.isspace() for char in service)):
            why = "holds a comma or a blank"
        if why:
            problems.append("the service %r %s" % (service, why))
    return problems


class Soak:
    """The polls of one soak and their latest reading."""

    def __init__(self, module, logdba, start):
        params = module.params
        self.module = module
        self.logdba = logdba
        self.params = params
        self.start = start
        self.spans = windows(start, params["duration"], params["applying"])
        self.polls = 0
        self.reading = None

    def poll(self):
        now = clock()
        self.polls += 1
        out, err = self.logdba.read(minutes_back(now, self.spans["before"][0]))
        try:
            parsed = parse_output(out, now=now)
        except SoakParseError as exc:
            raise LogdbaError("logdba %s" % exc, 0, excerpt(out), err) from None
        params = self.params
        rows = [row for row in parsed["rows"] if service_matches(row["service"], params["services"])]
        before_rows, after_rows = split(rows, self.spans)
        before = summarize(before_rows, params["exclude_users"])
        after = summarize(after_rows, params["exclude_users"])
        judged = verdict(before, after, params["min_logins"], params["max_failure_rise"], params["on_inconclusive"])
        for summary, name in ((before, "before"), (after, "after")):
            summary["start"], summary["end"] = (round(value, 3) for value in self.spans[name])
        self.reading = dict(before=before, after=after, judged=judged, parsed=parsed)
        return now

    def failing_early(self):
        judged = self.reading["judged"]
        return (self.params["fail_fast"] and judged["verdict"] == "fail"
                and self.reading["after"]["logins"] >= self.params["min_logins"])

    def run(self):
        """Poll until the last poll, ``lag`` seconds after the window closed (or a failure that is already sure)."""
        final = self.spans["after"][1] + self.params["lag"]
        stopped_early = False
        while True:
            now = self.poll()
            if now >= final:
                break
            if self.failing_early():
                stopped_early = True
                break
            sleep(max(0.0, min(self.params["poll_interval"], final - now)))
        return stopped_early

    def result(self, stopped_early):
        reading = self.reading
        judged = reading["judged"]
        return dict(
            changed=False,
            verdict=judged["verdict"],
            msg=judged["msg"],
            before=reading["before"],
            after=reading["after"],
            rises=judged["rises"],
            new_reasons=judged["new_reasons"],
            polls=self.polls,
            stopped_early=stopped_early,
            elapsed=round(clock() - self.start, 1),
            unreadable=reading["parsed"]["unreadable"],
            logdba=self.logdba.last,
        ), judged["passed"]


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        logdba_path=dict(type="path"),
        duration=dict(type="int", required=True),
        poll_interval=dict(type="int", default=10),
        lag=dict(type="int", default=5),
        applying=dict(type="int", default=0),
        min_logins=dict(type="int", default=20),
        max_failure_rise=dict(type="float", default=10),
        on_inconclusive=dict(type="str", choices=["fail", "pass"], default="fail"),
        exclude_users=dict(type="list", elements="str", default=[]),
        services=dict(type="list", elements="str", default=["VPN"]),
        fail_fast=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems = option_problems(params)
    if problems:
        module.fail_json(msg="; ".join(problems), changed=False)
    path = params["logdba_path"] or os.path.join(os.path.dirname(os.path.realpath(params["sacli_path"])), "logdba")
    logdba = Logdba(module, path, params["services"], params["sacli_timeout"])
    start = clock()
    soak = Soak(module, logdba, start)

    if module.check_mode:
        module.exit_json(
            changed=False,
            check_mode_skipped=True,
            msg="check mode: the soak of %d seconds was not run" % params["duration"],
            polls=0,
            logdba=logdba.argv(minutes_back(start, soak.spans["before"][0])),
        )

    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        module.fail_json(msg="logdba not found or not executable at %s (set logdba_path)" % path, changed=False,
                         polls=0, logdba=logdba.argv(minutes_back(start, soak.spans["before"][0])))
    try:
        stopped_early = soak.run()
    except LogdbaError as exc:
        module.fail_json(msg=exc.msg, changed=False, polls=soak.polls, logdba=logdba.last, **exc.details)

    result, passed = soak.result(stopped_early)
    unreadable = soak.reading["parsed"]
    if unreadable["unreadable"]:
        module.warn("%d log row%s without a readable time, counted in neither window: %s" % (
            unreadable["unreadable"], "" if unreadable["unreadable"] == 1 else "s", "; ".join(unreadable["examples"])))
    if not passed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
