#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: auth_check
short_description: Check OpenVPN Access Server's services and canary logins through authcli
version_added: 0.1.0
description:
  - The health gate of a rollout, run on a server right after C(sacli start) applied a new post-auth script.
  - First checks, with one C(sacli status) call, that every service is on (or just restarted); see O(status).
  - Then runs each of O(logins) through C(authcli), which authenticates with the configured method and runs the
    live post-auth script, and compares the outcome with O(logins[].expect). The task fails when a service is
    not up or any login does not meet its expectation, naming each failing login.
  - Passwords and challenge responses never appear on a command line, where the process list would show them.
    C(authcli) is started without C(--pass), so it asks for the password; the module answers on a
    pseudo-terminal that is C(authcli)'s controlling terminal and its standard input.
  - A login answered with a dynamic challenge (C(challenge_post_auth) in the script) is answered with
    O(logins[].response) by a second C(authcli) run, as an OpenVPN client does; see O(logins[].response).
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
      - In check mode nothing runs, neither C(sacli status) nor C(authcli), because the script a check run
        would deploy is not live. The module returns RV(check_mode_skipped) and the commands it would run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The module only reads; it never reports a change. A post-auth script may still record something on
        each login (its C(proplist_save)), as it does for every real login. O(settle) removes the collection's own
        pending-apply record, not part of the server's configuration.
options:
  authcli_path:
    description:
      - Path of C(authcli) on the managed host.
      - Defaults to C(authcli) in the folder of O(sacli_path) (of its real path, when it is a link).
    type: path
  status:
    description:
      - Run C(sacli status) once, before any login, and fail, naming the services, unless every service is
        C(on) or C(restarted). No login runs when a service is down.
    type: bool
    default: true
  logins:
    description:
      - The canary logins, run one after the other. Every login runs, also after one that failed.
      - O(sacli_timeout) limits each C(authcli) run; a run that takes longer is killed with its process group.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - A label for messages and RV(logins[].name). Defaults to O(logins[].user).
        type: str
      user:
        description:
          - The user name to log in with (C(authcli --user)).
        type: str
        required: true
      password:
        description:
          - The password, typed at C(authcli)'s prompt. Without it, an empty line answers the prompt.
          - It must not hold control characters (a terminal would act on them) and may be 1024 bytes long at most.
        type: str
      response:
        description:
          - "The answer to a dynamic challenge. When the first run prints C(challenge : CRV1:...), C(authcli) runs
            again with the password C(CRV1::<state_id>::<response>), typed at the prompt, and that second result
            is judged."
          - Without it, a challenge is judged as the V(FAIL) it is, with the reason C(challenge) and the
            challenge text.
        type: str
      client_info:
        description:
          - What the VPN client sends, as C(NAME) to value (for example C(IV_PLAT) or C(UV_APPVER_<NAME>)), passed
            as C(--client-info NAME=VALUE), one option per entry.
          - Names are letters, digits and underscores, not starting with a digit; values are strings or numbers.
        type: dict
      hw_addr:
        description:
          - The client's hardware address, passed as C(--hw-addr).
        type: str
      web:
        description:
          - A web portal login instead of a VPN login, passed as C(--web).
        type: bool
        default: false
      expect:
        description:
          - What the login must return.
        type: dict
        suboptions:
          status:
            description:
              - The expected status.
            type: str
            choices: [SUCCEED, FAIL]
            default: SUCCEED
          group:
            description:
              - The expected C(conn_group) of the returned properties (C(proplist)).
              - Needs O(logins[].expect.status=SUCCEED).
            type: str
          reason:
            description:
              - A text the returned C(reason) must contain (case-sensitive).
            type: str
  settle:
    description:
      - When every check passed, remove the pending-apply record of O(state_dir) that the start before this gate
        kept (M(ovpnas.fleet.sacli_start) with O(ovpnas.fleet.sacli_start#module:gated=true)), and note in
        C(applied.json) what was applied (the record's, else O(record)). Until then the change stays pending, and
        the next run starts and gates it again.
      - The collection's handler (topic C(ovpnas_fleet_apply)) gates with it. Nothing is settled in check mode or
        when a check fails.
    type: bool
    default: false
  record:
    description:
      - With O(settle), what was applied when no pending-apply record names it; for example the sha256 of the
        script a cluster's writer loaded.
    type: dict
  state_dir:
    description:
      - With O(settle), the folder of the pending-apply record.
      - Defaults to C(etc/ovpnas_fleet) under the Access Server folder, found from O(sacli_path).
    type: path
notes:
  - The options O(logins[].client_info), O(logins[].hw_addr) and O(logins[].web) are passed as C(--client-info),
    C(--hw-addr) and C(--web) only when they are set. The project's Access Server emulator has them; whether the
    real C(authcli) accepts them is not known, so a task for real servers should leave them unset.
  - C(authcli) output is parsed with or without its C(AUTH_RETURN) line. A non-zero exit that prints a status is an
    ordinary V(FAIL); output without a status line is an error of that login, reported with at most its first 200
    characters, the password and response masked.
  - The password is typed when C(authcli) prompts for it on the terminal, standard error or standard output (text
    that ends with a colon); a tool that shows no prompt gets it after a second. A tool that never reads it runs
    until O(sacli_timeout).
seealso:
  - module: ovpnas.fleet.sacli_start
  - module: ovpnas.fleet.post_auth_script
"""

EXAMPLES = r"""
- name: Apply the new post-auth script
  ovpnas.fleet.sacli_start:

- name: Gate the rollout on canary logins
  ovpnas.fleet.auth_check:
    logins:
      - name: alice on laptop
        user: canary-alice
        password: "{{ vault_canary_alice_password }}"
        hw_addr: "00:11:22:33:44:55"
        client_info:
          IV_PLAT: win
        expect:
          group: staff
      - name: unregistered device is refused
        user: canary-alice
        password: "{{ vault_canary_alice_password }}"
        hw_addr: "66:77:88:99:aa:bb"
        expect:
          status: FAIL
          reason: hardware address
      - name: second factor
        user: canary-bob
        password: "{{ vault_canary_bob_password }}"
        response: "{{ canary_bob_totp }}"
  register: gate

- name: Show what each login returned
  ansible.builtin.debug:
    msg: "{{ gate.logins | items2dict(key_name='name', value_name='status') }}"

- name: Only the services
  ovpnas.fleet.auth_check:
    sacli_path: /usr/local/openvpn_as/scripts/sacli
"""

RETURN = r"""
pending_apply_cleared:
  description: With O(settle), whether a pending-apply record was removed.
  returned: when O(settle=true) and every check passed
  type: bool
  sample: true
logins:
  description:
    - What each login returned, in the order of O(logins); empty in check mode and when a service is down.
    - Passwords and responses are never part of it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The login's label.
      type: str
      sample: alice on laptop
    user:
      description: The user name it logged in with.
      type: str
      sample: canary-alice
    status:
      description: The status C(authcli) printed (V(SUCCEED) or V(FAIL)); null when the login could not be checked.
      type: str
      sample: SUCCEED
    group:
      description: The C(conn_group) of the returned properties; null without one or when the status is not V(SUCCEED).
      type: str
      sample: staff
    reason:
      description: The C(reason) C(authcli) printed; for an unanswered challenge, C(challenge) and its text.
      type: str
      sample: local auth succeeded
    challenge:
      description: The text of the dynamic challenge the first run returned, or null.
      type: str
      sample: Enter your authenticator code
    rc:
      description: The exit code of the last C(authcli) run of this login; null when it was killed or did not start.
      type: int
      sample: 0
    error:
      description: Why the login could not be checked (a timeout, no status printed); null otherwise.
      type: str
      sample: null
    passed:
      description: Whether the login met its expectation.
      type: bool
      sample: true
    expected:
      description: The expectation, O(logins[].expect) with its defaults.
      type: dict
      sample: {status: SUCCEED, group: staff, reason: null}
  sample:
    - {name: alice on laptop, user: canary-alice, status: SUCCEED, group: staff, reason: local auth succeeded,
       challenge: null, rc: 0, error: null, passed: true, expected: {status: SUCCEED, group: staff, reason: null}}
service_status:
  description: The state of each service, as C(sacli status) printed it.
  returned: when O(status=true), outside check mode
  type: dict
  sample: {auth: "on", openvpn_0: "on", web: restarted}
commands:
  description:
    - The commands run (in check mode, those that would run first), without any password or response.
  returned: always
  type: list
  elements: str
  sample: [sacli status, authcli --user canary-alice --hw-addr 00:11:22:33:44:55 --client-info IV_PLAT=win]
check_mode_skipped:
  description: True in check mode, when nothing was run.
  returned: in check mode
  type: bool
  sample: true
msg:
  description: What failed, one part per failing login; or a summary.
  returned: always
  type: str
  sample: 'canary login "alice on laptop" returned FAIL (reason: "hardware address not registered"), expected SUCCEED'
"""

import ast
import base64
import binascii
import os
import re
import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.authcli import (
    LOGIN_OPTIONS,
    login_label,
    login_problem,
    run_at_prompt,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import settle
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    SacliError,
    SacliRunner,
    fail_from_error,
    sacli_argument_spec,
    services_not_up,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import fleet_dir

# one line of authcli's answer: "  name : value"
FIELD = re.compile(r"^[ \t]+([A-Za-z_][A-Za-z0-9_]*) :(?: (.*))?$")
EXCERPT = 200


# --- reading authcli's answer -----------------------------------------------------


def parse_output(text):
    """The ``  name : value`` fields authcli printed (first of each name wins; a value may go on over lines)."""
    fields, last = {}, None
    for line in (text or "").splitlines():
        match = FIELD.match(line)
        if match and match.group(1) not in fields:
            last = match.group(1)
            fields[last] = match.group(2) or ""
        elif line.strip() == "AUTH_RETURN" or line.startswith("API METHOD"):
            last = None
        elif last is not None and line.strip():
            fields[last] += "\n" + line
    return fields


def parse_proplist(text):
    """The proplist (a Python dict repr) as a dict, or None when it does not parse as one."""
    if text is None:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_challenge(text):
    """``CRV1:FLAGS:STATE_ID:B64USER:TEXT`` as a dict, or None."""
    parts = (text or "").strip().split(":", 4)
    if len(parts) != 5 or parts[0] != "CRV1" or not parts[2]:
        return None
    try:
        user = base64.b64decode(parts[3], validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        user = None
    return dict(flags=parts[1], state_id=parts[2], user=user, text=parts[4])


def masked(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def excerpt(run, secrets):
    """At most the first EXCERPT characters of what a run printed, secrets masked first."""
    text = masked(((run["stdout"] or "") + (run["stderr"] or "")).strip(), secrets)
    return text[:EXCERPT]


# --- the logins -------------------------------------------------------------------


class Canary:
    """Runs the logins of one task with one authcli and judges them."""

    def __init__(self, module, path, timeout):
        self.module = module
        self.path = path
        self.timeout = timeout
        self.commands = []
        self.env = dict(os.environ, LC_ALL="C", LANG="C", LC_MESSAGES="C")

    @staticmethod
    def options(login):
        argv = ["--user", login["user"]]
        if login["hw_addr"] is not None:
            argv += ["--hw-addr", login["hw_addr"]]
        for name, value in sorted((login["client_info"] or {}).items()):
            argv += ["--client-info", "%s=%s" % (name, client_value(value))]
        if login["web"]:
            argv.append("--web")
        return argv

    def describe(self, login):
        return " ".join(["authcli"] + [shlex.quote(arg) for arg in self.options(login)])

    def authenticate(self, login, secret):
        self.commands.append(self.describe(login))
        return run_at_prompt([self.path] + self.options(login), secret, self.timeout, self.env)

    def check(self, login):
        expect = login["expect"]
        entry = dict(name=login["name"] or login["user"], user=login["user"], status=None, group=None, reason=None,
                     challenge=None, rc=None, error=None, passed=False, expected=dict(expect))
        secrets = [login["password"], login["response"]]
        run = self.run_once(login, login["password"] or "", entry, secrets)
        if run is None:
            return entry
        fields = run
        challenge = parse_challenge(fields.get("challenge")) if "challenge" in fields else None
        if "challenge" in fields and challenge is None:
            entry["error"] = "authcli printed a challenge that does not parse"
            return entry
        if challenge is not None:
            entry["challenge"] = challenge["text"]
            if login["response"] is None:
                fields = dict(fields, status="FAIL", reason="challenge: %s" % challenge["text"])
            else:
                answer = "CRV1::%s::%s" % (challenge["state_id"], login["response"])
                fields = self.run_once(login, answer, entry, secrets + [answer])
                if fields is None:
                    return entry
                again = parse_challenge(fields.get("challenge"))
                if again is not None:
                    fields = dict(fields, status="FAIL", reason="challenge again: %s" % again["text"])
        entry["status"] = fields["status"]
        entry["reason"] = fields.get("reason")
        if fields["status"] == "SUCCEED":
            group = (parse_proplist(fields.get("proplist")) or {}).get("conn_group")
            entry["group"] = None if group is None else str(group)
        entry["passed"] = meets(entry, expect)
        return entry

    def run_once(self, login, secret, entry, secrets):
        """One authcli run; its fields, or None after recording the error in ``entry``."""
        try:
            run = self.authenticate(login, secret)
        except OSError as exc:
            entry["error"] = "authcli could not be started: %s" % exc
            return None
        entry["rc"] = run["rc"]
        if run["timed_out"]:
            entry["error"] = "authcli did not finish within %s seconds and was killed" % self.timeout
            return None
        fields = parse_output(run["stdout"])
        status = fields.get("status", "").strip()
        if not status:
            entry["error"] = "authcli printed no status (exit code %s): %s" % (run["rc"], excerpt(run, secrets))
            return None
        fields["status"] = status
        return fields


def client_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def meets(entry, expect):
    if entry["status"] != expect["status"]:
        return False
    if expect["group"] is not None and entry["group"] != expect["group"]:
        return False
    return expect["reason"] is None or expect["reason"] in (entry["reason"] or "")


def shorten(text, limit=EXCERPT):
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "..."


def failure_message(entry):
    label = 'canary login "%s"' % entry["name"]
    if entry["error"]:
        return "%s could not be checked: %s" % (label, entry["error"])
    expect = entry["expected"]
    reason = '"%s"' % shorten(entry["reason"]) if entry["reason"] else "none"
    if entry["status"] != expect["status"]:
        return "%s returned %s (reason: %s), expected %s" % (label, entry["status"], reason, expect["status"])
    if expect["group"] is not None and entry["group"] != expect["group"]:
        group = 'group "%s"' % entry["group"] if entry["group"] is not None else "no group"
        return '%s returned %s with %s, expected group "%s"' % (label, entry["status"], group, expect["group"])
    return '%s returned %s (reason: %s), expected a reason containing "%s"' % (
        label, entry["status"], reason, expect["reason"])


def check_logins(module):
    """Refuse logins that cannot be run as given (the checks the rollout runs on the controller too)."""
    for index, login in enumerate(module.params["logins"]):
        problem = login_problem(login)
        if problem:
            module.fail_json(msg="%s: %s" % (login_label(index, login), problem))


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        authcli_path=dict(type="path"),
        status=dict(type="bool", default=True),
        logins=dict(type="list", elements="dict", default=[], options=LOGIN_OPTIONS),
        settle=dict(type="bool", default=False),
        record=dict(type="dict"),
        state_dir=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    logins = params["logins"]
    check_logins(module)
    runner = SacliRunner(module)
    authcli = params["authcli_path"] or os.path.join(os.path.dirname(os.path.realpath(runner.path)), "authcli")
    canary = Canary(module, authcli, params["sacli_timeout"])

    if module.check_mode:
        commands = (["sacli status"] if params["status"] else []) + [canary.describe(login) for login in logins]
        module.exit_json(
            changed=False,
            check_mode_skipped=True,
            msg="check mode: %d login%s not run" % (len(logins), "" if len(logins) == 1 else "s"),
            logins=[],
            commands=commands,
        )

    result = dict(changed=False, logins=[], commands=canary.commands)
    if params["status"]:
        canary.commands.append("sacli status")
        try:
            status = runner.status()
        except SacliError as exc:
            fail_from_error(module, exc, **result)
        result["service_status"] = status.get("service_status")
        down = services_not_up(status)
        if down:
            module.fail_json(msg="services not up: %s; no login was run" % ", ".join(down), **result)

    if logins and not (os.path.isfile(authcli) and os.access(authcli, os.X_OK)):
        module.fail_json(msg="authcli not found or not executable at %s (set authcli_path)" % authcli, **result)
    result["logins"] = [canary.check(login) for login in logins]
    failures = [failure_message(entry) for entry in result["logins"] if not entry["passed"]]
    if failures:
        module.fail_json(msg="; ".join(failures), **result)
    parts = ["every service up"] if params["status"] else []
    if logins:
        parts.append("%d login%s as expected" % (len(logins), "" if len(logins) == 1 else "s"))
    result["msg"] = "; ".join(parts) or "nothing to check"
    if params["settle"]:
        # the change the start applied passed its gate
        result["pending_apply_cleared"] = settle(module, params["state_dir"] or fleet_dir(runner.path),
                                                 params["record"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
