#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sacli_start
short_description: Apply OpenVPN Access Server configuration with sacli start and wait until it is healthy
version_added: 0.1.0
description:
  - Runs C(sacli start), which applies the configuration with a selective ("warm") restart of the services
    whose settings changed.
  - Fails when C(start) exits non-zero, prints output that does not parse, or reports errors.
  - Then polls C(sacli status) (bounded by O(wait_timeout)) until every service is on.
  - Restarting the C(openvpn_N) services drops VPN tunnels. Run this module from a handler notified by the
    modules that change configuration, so it runs once per host and only when something changed.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ovpnas.fleet.sacli
  - ovpnas.fleet.sacli.ATTRIBUTES
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is started and the module reports a change, as a real run always restarts.
        With O(report_clients), C(VPNSummary) still counts the clients.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run applies the configuration; guard it with a handler.
options:
  wait:
    description:
      - Wait until C(sacli status) shows every service on (or just restarted).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the services in total.
    type: int
    default: 120
  wait_interval:
    description:
      - Seconds between two C(sacli status) calls.
    type: float
    default: 2.0
  report_clients:
    description:
      - Count the connected VPN clients with C(sacli VPNSummary) just before C(start), to show what a restart of
        the C(openvpn_N) services costs (RV(vpn_clients)).
    type: bool
    default: false
  record:
    description:
      - What this start applies, noted with the time in C(applied.json) of O(state_dir) after every service is up,
        when no pending-apply record names it; for example the sha256 of the script a cluster's writer loaded.
      - A pending-apply record of M(ovpnas.fleet.server_state) wins.
    type: dict
  state_dir:
    description:
      - The folder where M(ovpnas.fleet.server_state) keeps its pending-apply record; a start after which every
        service is on removes the record and notes in C(applied.json) what it applied (with O(gated=true), the gate
        does).
      - Defaults to C(etc/ovpnas_fleet) under the Access Server folder, found from O(sacli_path).
    type: path
  gated:
    description:
      - A gate follows this start (M(ovpnas.fleet.auth_check) with O(ovpnas.fleet.auth_check#module:settle=true)),
        as in the collection's handler. The pending-apply record then stays, noted as started, until the gate has
        passed, so that a run killed between the start and the gate (or whose gate failed) leaves the change
        pending, and the next run starts and gates it again. O(record) is then the gate's to note.
    type: bool
    default: false
notes:
  - The C(errors) object of C(start) holds C([severity, message]) entries per service. Entries with severity
    C(info), C(debug) or C(notice) are reported in RV(messages) and do not fail the task; anything else does,
    whatever its shape.
  - Exit codes of C(sacli) are not documented; any non-zero exit fails the task.
  - A node whose first C(sacli) call fails while its agent socket (C(sa.sock) of C(etc/as.conf)) does not exist runs
    no services, like a failover standby; the task is then skipped with RV(standby) true, and nothing is started.
seealso:
  - module: ovpnas.fleet.sacli_config
  - module: ovpnas.fleet.post_auth_script
"""

EXAMPLES = r"""
# the collection's handler (topic ovpnas_fleet_apply, role ovpnas.fleet.apply) runs this module, then gates and,
# where the gate fails, restores; a task that restarts right away and reports what restarted:
- name: Apply the configuration now
  ovpnas.fleet.sacli_start:
    wait_timeout: 180
  register: applied

- name: Show the restarted services
  ansible.builtin.debug:
    var: applied.restarted
"""

RETURN = r"""
vpn_clients:
  description:
    - The connected VPN clients C(sacli VPNSummary) counted just before C(start) (C(n_clients)); null when it
      printed no count.
  returned: when O(report_clients=true)
  type: int
  sample: 12
standby:
  description: True when the node runs no services (its agent socket is missing) and the start was skipped.
  returned: when true
  type: bool
  sample: true
pending_apply_cleared:
  description:
    - Whether a pending-apply record of M(ovpnas.fleet.server_state) was removed, every service being up (never with
      O(gated=true), whose gate removes it).
  returned: when every service was seen up
  type: bool
  sample: true
service_status:
  description: The state of each service from the last C(sacli status) (from C(start) when O(wait=false)).
  returned: success
  type: dict
  sample: {api: "on", auth: "on", openvpn_0: "on", web: "on"}
restarted:
  description: The services that C(start) reported as restarted.
  returned: success
  type: list
  elements: str
  sample: [auth, web]
will_restart:
  description: The C(WILL_RESTART) list printed by C(start); null when the server did not print one.
  returned: success
  type: list
  elements: str
  sample: [web, client]
run_start:
  description: The mode printed on the C(RunStart) line (for example V(warm)); null when not printed.
  returned: success
  type: str
  sample: warm
last_restarted:
  description: The C(last_restarted) date printed by C(start).
  returned: success
  type: str
  sample: Sat Nov 28 22:47:24 2026
messages:
  description: Informational entries of the C(errors) object (severity info, debug or notice).
  returned: success
  type: dict
  sample: {openvpn_0: [[info, process started successfully on 172.27.224.1]]}
errors:
  description: The error entries of C(start) that failed the task.
  returned: failure
  type: dict
  sample: {auth: [[error, "post_auth_script does not compile"]]}
status_checks:
  description: How many times C(sacli status) was called while waiting.
  returned: success
  type: int
  sample: 1
commands:
  description: The C(sacli) commands that changed something (C(start)); in check mode, the one that would run.
  returned: always
  type: list
  elements: str
  sample: [sacli start]
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import mark_started, settle
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    SacliError,
    SacliRunner,
    fail_from_error,
    parse_json_object,
    sacli_argument_spec,
    services_not_up,
    split_start_errors,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import fleet_dir, standby_reason


def vpn_clients(module, runner):
    """The client count of `sacli VPNSummary`, or None (with a warning) when it prints none."""
    rc, out, err = runner.run("VPNSummary", check=False, record=False)
    count = None
    if rc != 0:
        skip_standby(module, runner, SacliError("sacli VPNSummary failed", "sacli VPNSummary", rc, out, err))
    else:
        try:
            summary = parse_json_object(out, "sacli VPNSummary", rc, err, what="sacli VPNSummary")
            count = summary.get("n_clients")
        except SacliError:
            pass
    if isinstance(count, bool) or not isinstance(count, int):
        module.warn("sacli VPNSummary printed no client count (exit code %s); the clients a restart drops are "
                    "not known" % rc)
        return None
    return count


def wait_until_up(module, runner, deadline, interval):
    """Poll `status` until every service is up; return (status, checks) or fail."""
    checks, last_error, status = 0, None, None
    while True:
        checks += 1
        try:
            rc, out, err = runner.run("status", record=False)
            status = parse_json_object(out, "sacli status", rc, err, what="sacli status")
            last_error = None
            if not services_not_up(status):
                return status, checks
        except SacliError as exc:
            # the agent may be restarting: keep trying until the deadline
            last_error = exc
        if time.monotonic() + interval > deadline:
            break
        time.sleep(interval)
    details = dict(changed=True, commands=runner.commands, status_checks=checks)
    if last_error is not None:
        fail_from_error(module, last_error, **details)
    down = services_not_up(status)
    module.fail_json(
        msg="services not on after %s seconds: %s" % (module.params["wait_timeout"], ", ".join(down)),
        service_status=status.get("service_status"),
        **details,
    )


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        wait_interval=dict(type="float", default=2.0),
        report_clients=dict(type="bool", default=False),
        record=dict(type="dict"),
        state_dir=dict(type="path"),
        gated=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner = SacliRunner(module)
    if module.params["wait_timeout"] < 0 or module.params["wait_interval"] <= 0:
        module.fail_json(msg="wait_timeout must be 0 or more and wait_interval more than 0")
    clients = {}
    if module.params["report_clients"]:
        # a read: check mode counts them too
        try:
            clients["vpn_clients"] = vpn_clients(module, runner)
        except SacliError as exc:
            skip_standby(module, runner, exc)
            fail_from_error(module, exc, changed=False, commands=runner.commands)
    if module.check_mode:
        module.exit_json(changed=True, commands=[runner.describe("start")], **clients)

    deadline = time.monotonic() + module.params["wait_timeout"]
    try:
        parsed = runner.start()
    except SacliError as exc:
        skip_standby(module, runner, exc)
        fail_from_error(module, exc, changed=True, commands=runner.commands)
    output = parsed["result"]
    fatal, info = split_start_errors(output.get("errors"))
    services = output.get("service_status") or {}
    result = dict(
        changed=True,
        commands=runner.commands,
        restarted=sorted(name for name, state in services.items() if state == "restarted"),
        will_restart=parsed["will_restart"],
        run_start=parsed["run_start"],
        last_restarted=output.get("last_restarted"),
        messages=info,
        service_status=services,
        status_checks=0,
        **clients
    )
    if fatal:
        module.fail_json(msg="sacli start reported errors: %s" % ", ".join(sorted(fatal)), errors=fatal, **result)
    if module.params["wait"]:
        status, checks = wait_until_up(module, runner, deadline, module.params["wait_interval"])
        result.update(service_status=status.get("service_status"), status_checks=checks)
    elif services_not_up(output):
        module.exit_json(**result)
    # every service is up: the change a run recorded as pending is applied (once its gate passed, when gated)
    directory = module.params["state_dir"] or fleet_dir(runner.path)
    if module.params["gated"]:
        mark_started(module, directory)
        result["pending_apply_cleared"] = False
    else:
        result["pending_apply_cleared"] = settle(module, directory, module.params["record"])
    module.exit_json(**result)


def skip_standby(module, runner, error):
    """A node that runs no services (its agent socket is missing) is skipped, not failed."""
    reason = standby_reason(runner.path)
    if reason is not None:
        module.exit_json(changed=False, skipped=True, standby=True, commands=runner.commands,
                         msg="%s; %s failed; skipped, nothing was started" % (reason, error.cmd or "sacli"))


if __name__ == "__main__":
    main()
