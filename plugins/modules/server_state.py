#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: server_state
short_description: Converge everything a play manages on an OpenVPN Access Server from one read
version_added: 0.1.0
description:
  - Brings configuration keys, the post-auth script, the host-checker query file (C(vpn.client.app_verify))
    and user properties (device registrations, TOTP seeds) to the wanted state with ONE C(sacli ConfigQuery),
    plus one C(sacli UserPropGet) when O(users) is given.
  - A server whose live state already equals the wanted state costs that read and nothing else.
  - Only where the post-auth script differs, it is staged in a private folder, compiled by every interpreter
    given and run against the policy cases (also in check mode); a script that fails is not loaded and nothing
    changes.
  - Refuses a host-checker policy whose applications the query file that will be live does not list, since
    clients are only asked about the applications of that file.
  - Writes only what differs, after backing up the live script and query file. When a write fails, the writes
    already made are undone, so that the server is left as it was.
  - Does not apply the change. Notify the C(ovpnas_fleet_apply) handler (role C(ovpnas.fleet.apply)), which runs
    M(ovpnas.fleet.sacli_start) once, when RV(restart_required) is true.
  - The roles C(ovpnas.fleet.post_auth) and C(ovpnas.fleet.host_checker) compose what this module loads; with
    O(compose), this task composes it itself on the controller from those roles' variables, and renders the script
    only for a server whose live script is not the one they produce.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ovpnas.fleet.sacli
  - ovpnas.fleet.sacli.ATTRIBUTES
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ovpnas.fleet.sacli.SECRETS
  - ovpnas.fleet.sacli.WRITES
attributes:
  check_mode:
    support: full
    details:
      - A script that differs is compiled and its policy cases run in check mode too, so check mode fails where
        a real run would.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  compose:
    description:
      - Roles whose variables this task composes on the controller, as the roles would (their defaults, then
        their argument specs, naming the variable at fault). V(host_checker) fills O(app_verify) and O(backup);
        V(post_auth) fills O(post_auth), O(users), O(users_exclusive_prefixes) and O(backup) (its choice wins over
        the host_checker role's), and adds its secret keys to O(secret_keys). Options given explicitly win, except
        O(secret_keys), which adds to the composed keys.
      - With V(post_auth), the script is rendered on the controller and sent with its identity (what it does, the
        sha256 of its text without its C(# ovpnas.fleet.<field>) header lines). A live script with the same
        identity, whichever release wrote it, is left as it is. With O(probe), only the identity is sent, which
        the controller keeps per distinct set of settings, so a probe renders nothing once it is known.
      - Handled by the action plugin on the controller; C(playbooks/deploy_postauth.yml) uses it.
    type: list
    elements: str
    choices: [host_checker, post_auth]
    default: []
  cluster:
    description:
      - The Access Server cluster of this server (C(ovpnas_cluster)). Its nodes share one configuration database, so
        only one node, the writer, converges it; on every other node the task is skipped. The writer is the node
        that C(ovpnas_cluster_writer) names on a node of the cluster, else the cluster's first node among the play's
        hosts.
      - Handled by the action plugin on the controller; the writer's rollout starts and gates every node.
      - With O(probe), the task runs on the other nodes with O(identify), without C(sacli), and returns RV(database)
        and RV(standby) of each.
    type: str
  cluster_writer:
    description:
      - The node of O(cluster) that writes its configuration, instead of the one C(ovpnas_cluster_writer) names (or
        the first); the rollout passes the cluster's first live node where the chosen one is a standby.
      - Handled by the action plugin on the controller.
    type: str
  report:
    description:
      - Also return what is live (RV(live)), for a drift audit. With O(compose), the script is rendered at once, so
        the wanted sha256 is known with one read; in check mode, a script that differs is not tested.
    type: bool
    default: false
  probe:
    description:
      - Only find out whether the server differs from the wanted state, as cheaply as possible, in check mode
        (C(check_mode=true)), returned as RV(differs). With O(compose), a server whose live script is another one
        differs, without the wanted script being rendered or tested.
      - Handled by the action plugin; C(playbooks/deploy_postauth.yml) probes every server at once, then rolls out
        to those that differ.
    type: bool
    default: false
  settings:
    description:
      - Configuration keys to set, mapped to their values. Booleans become V(true) or V(false), numbers their
        decimal text.
      - The post-auth script and the query file are managed with O(post_auth) and O(app_verify), not here.
    type: dict
    default: {}
  absent_keys:
    description: Configuration keys to remove.
    type: list
    elements: str
    default: []
  post_auth:
    description:
      - The post-auth script (C(auth.module.post_auth_script)). Not managed when omitted.
    type: dict
    suboptions:
      state:
        description: V(present) loads O(post_auth.content); V(absent) removes the script.
        type: str
        choices: [present, absent]
        default: present
      content:
        description:
          - The script text, for example rendered on the controller by the C(ovpnas.fleet.post_auth) role.
          - The live script is replaced only when its identity differs from this one's. The identity is what a
            script does, the sha256 of its text without its C(# ovpnas.fleet.<field>) lines (the header fields that
            say which collection version wrote it, from which settings and policy cases, and the seal). A live
            script that differs only there is left as it is, with no write and no restart.
          - Lines that end with C(# ovpnas.fleet.secret) (the generated script keeps its secrets there) are masked
            wherever the script is shown (the task's arguments, the diff).
        type: str
      identity:
        description:
          - The identity of the wanted script (see O(post_auth.content)), for a check-mode comparison that needs no
            text. Ignored when O(post_auth.content) is given.
          - Without O(post_auth.content), a live script with this identity is the wanted one; where another script is
            live, the result says so with RV(content_required), and nothing is checked. Only in check mode, since a
            run that would write needs the text.
        type: str
      python:
        description: The interpreter that runs the policy cases, the one Access Server runs scripts with.
        type: str
        default: python3
      validate_interpreters:
        description: More interpreters that must compile the script.
        type: list
        elements: str
        default: []
      policy_harness:
        description: The source of the policy harness that runs O(post_auth.policy_cases) (the role ships it).
        type: str
      policy_cases:
        description: Cases the script must pass before it is loaded; see the C(ovpnas.fleet.post_auth) role.
        type: list
        elements: dict
        default: []
      required_apps:
        description:
          - Applications the script's host-checker policy checks, each with C(name) and C(platform)
            (V(win), V(mac) or V(all)). The query file that will be live must list each for its platforms.
        type: list
        elements: dict
        default: []
      query_file:
        description:
          - The query file an earlier task of the play loads (for example the C(ovpnas.fleet.host_checker) role, whose
            fact C(host_checker_desired) the C(ovpnas.fleet.post_auth) role passes), checked against
            O(post_auth.required_apps) instead of the live one, so that check mode predicts the real run.
          - Ignored when this task manages O(app_verify) itself.
        type: str
      secrets:
        description: Values held by the script that are never shown; they are masked in the diff and every result.
        type: list
        elements: str
        default: []
      secret_assignments:
        description:
          - Names of an own script's assignments that hold secrets (C(SKEY = "...")), which carries no
            C(# ovpnas.fleet.secret) markers. What they are assigned is masked wherever a script is shown, in the live
            script as in the wanted one (a secret rotated away included).
          - The C(ovpnas.fleet.post_auth) role sets it from C(post_auth_source_secrets) and the names that look secret.
        type: list
        elements: str
        default: []
  app_verify:
    description: The host-checker query file (C(vpn.client.app_verify)). Not managed when omitted.
    type: dict
    suboptions:
      state:
        description: V(present) loads O(app_verify.content); V(absent) removes the key.
        type: str
        choices: [present, absent]
        default: present
      content:
        description: Lines C([PLATFORM:]NAME=REGEX), for example rendered by the C(ovpnas.fleet.host_checker) role.
        type: str
  users:
    description:
      - User properties to set, by user name, for example device registrations (C(pvt_hw_addr)) and TOTP seeds.
      - A user that does not exist is created with C(type=user_connect).
    type: dict
    default: {}
  users_exclusive_prefixes:
    description:
      - Properties of the users in O(users) that start with one of these prefixes and are not wanted are removed,
        for example V(pvt_hw_addr) so that stale registrations go away.
    type: list
    elements: str
    default: []
  run:
    description:
      - Names the controller run (ansible-playbook) the task belongs to; the action plugin sets it, replacing any
        value given. A pending-apply record that an earlier task of the same run made (the
        C(ovpnas.fleet.host_checker) role before C(ovpnas.fleet.post_auth)) awaits the handler that task notified;
        it still counts as a change to apply, but is not reported as never applied. Without it, every record counts
        as another run's.
    type: str
  runs_alive:
    description:
      - The runs of Ansible on the controller that still go, named as O(run) names a run; the action plugin sets it,
        replacing any value given.
      - A pending-apply record that one of them made is a change that run is applying (between its write and its
        gate). A run that would write waits (up to O(lock_timeout) seconds, the lock released meanwhile) until that
        run has ended, then reads what it left. A record of a run that is not among them (killed), or of a run on
        another controller, is a change to start and gate again.
    type: list
    elements: str
    default: []
  planned_read:
    description:
      - What the read a run planned from found (RV(read_sha256) of an earlier task on this server, such as the
        rollout's probe). Where what the module reads now differs, another run or someone wrote in between, and the
        module fails with RV(overtaken) true and changes nothing, instead of writing over a change it never saw.
      - Ignored in check mode.
    type: dict
  verify_after:
    description:
      - Only read the keys, compare them with what an earlier task left (its RV(after_sha256)) and return whether
        someone changed them since, in RV(overtaken). Nothing more is read (no C(UserPropGet)), compared or written.
      - The rollout checks this way, at its end, that every server it changed still holds its change.
    type: dict
  identify:
    description:
      - Only say which configuration database the server uses (RV(database)) and whether it runs no services
        (RV(standby)), without C(sacli) and without the lock. The action plugin runs it so on the nodes of a cluster
        that another node writes, so that a rollout can tell that the nodes share one database.
    type: bool
    default: false
  remove_module_leftovers:
    description:
      - Remove the module files of this collection that a killed run left in Ansible's remote_tmp on the server
        (C(ansible-tmp-*/AnsiballZ_*.py), which hold a module's arguments, secrets included), when no process uses
        them and they are older than two minutes. Without it they are only returned, in RV(module_leftovers).
      - The action plugin sets it, replacing any value given, unless the run is in check mode (C(--check)).
    type: bool
    default: false
notes:
  - What is staged to be tested (the script, its cases, values for C(sacli)) goes to a private folder under
    O(state_dir), removed when the module ends; folders a killed run left behind are removed by the next run.
  - Values that differ only in trailing newlines are equal (whether C(sacli) keeps them is not known).
  - The script is loaded last, after the query file, the keys and the user properties it relies on.
  - A node whose read fails while its agent socket (C(sa.sock) of C(etc/as.conf)) does not exist runs no services,
    like a failover standby; the task is then skipped with RV(standby) true.
seealso:
  - module: ovpnas.fleet.sacli_start
  - module: ovpnas.fleet.sacli_info
  - module: ovpnas.fleet.post_auth_script
"""

EXAMPLES = r"""
- name: Converge keys, the query file and the script from one read
  ovpnas.fleet.server_state:
    settings:
      host.name: vpn.example.com
      vpn.client.routing.reroute_gw: false
    app_verify:
      content: "all:FIREFOX=^mozilla firefox"
    post_auth:
      content: "{{ lookup('ansible.builtin.file', 'post_auth.py') }}"
      python: /usr/bin/python3
      required_apps: [{name: FIREFOX, platform: all}]
  notify: ovpnas_fleet_apply

- name: Register devices for the script's device pinning
  ovpnas.fleet.server_state:
    users:
      alice: {pvt_hw_addr: "00:11:22:33:44:55"}
    users_exclusive_prefixes: [pvt_hw_addr]

- name: Remove the script and the query file
  ovpnas.fleet.server_state:
    post_auth: {state: absent}
    app_verify: {state: absent}
  notify: ovpnas_fleet_apply
"""

RETURN = r"""
restart_required:
  description: Whether something changed, or an earlier change is still pending, that C(sacli start) must apply.
  returned: always
  type: bool
  sample: true
changed_keys:
  description: Keys written or removed (or that would be, in check mode), the script and the query file included.
  returned: always
  type: list
  elements: str
  sample: [auth.module.post_auth_script, host.name]
changed_users:
  description: Users whose properties changed (or would change).
  returned: always
  type: list
  elements: str
  sample: [alice]
post_auth:
  description:
    - The script before and after (sha256 without trailing newlines), and where it was backed up.
    - With O(report=true), where the live script differs from the wanted one, C(differing_lines) holds the lines in
      which they differ (a unified diff, C(-) live and C(+) wanted, secrets masked, header fields left out).
  returned: when O(post_auth) is given
  type: dict
  sample: {changed: true, sha256_before: null, sha256_after: 89e6c98d9288, backup_file: null}
app_verify:
  description: The query file before and after (sha256 without trailing newlines), and where it was backed up.
  returned: when O(app_verify) is given
  type: dict
  sample: {changed: false, sha256_before: 0c2d5e7f, sha256_after: 0c2d5e7f, backup_file: null}
validation:
  description: The interpreters that compiled the script and how many policy cases it passed.
  returned: when the script differed and was checked
  type: dict
  sample: {interpreters: [/usr/bin/python3], cases_passed: 3}
differs:
  description:
    - With O(probe), whether the server differs from the wanted state (a run would change it); true also when the
      live post-auth script is not the wanted one, which the probe does not render to compare.
  returned: when O(probe=true)
  type: bool
  sample: true
live:
  description:
    - What is live, for a drift audit; RV(post_auth) and RV(app_verify) hold the wanted sha256 (C(sha256_after)).
    - C(post_auth.identity) is what the live script does (the sha256 of its text without its header fields), the
      value compared with the wanted script's; C(post_auth.header) holds the header fields the script declares, and
      C(post_auth.sealed) whether its seal holds (the text is as the collection wrote it).
    - C(applied) is when the start that applied the live script ran, as recorded by M(ovpnas.fleet.sacli_start);
      null when the live script is not one this collection applied.
  returned: when O(report=true)
  type: dict
  sample:
    post_auth: {sha256: 89e6c98d9288, header: {version: 0.1.0, identity: 5f1c}, identity: 5f1c, sealed: true}
    app_verify: {sha256: 0c2d5e7f}
    applied: "2026-12-01T08:00:00Z"
standby:
  description:
    - True when the first read failed and the node runs no services (its agent socket is missing), like a failover
      standby; the task is then skipped and nothing is changed.
    - With O(identify), whether the node runs no services, without a read.
  returned: when true, and with O(identify)
  type: bool
  sample: true
pending_apply:
  description: The record of a change an earlier run made that was never applied with C(sacli start).
  returned: when such a record was found
  type: dict
  sample: {since: "2026-12-01T08:00:00Z", changes: [auth.module.post_auth_script]}
content_required:
  description:
    - True when O(post_auth.identity) was given without O(post_auth.content) and the live script is another one. The
      server differs, and the script's text is needed to say more (to show, test or load it). Nothing was checked.
  returned: when true
  type: bool
  sample: true
database:
  description:
    - Which configuration database the server uses (C(config_db) of C(etc/as.conf)), without credentials; null where it
      cannot be told. A database server (a cluster's) is named by its scheme, host and database; an SQLite file by
      the machine (its machine id and host name) and the file's real path, device and inode.
    - Nodes of one cluster name one database; two servers that name one database are one server, or nodes of one
      cluster.
  returned: always, except where the task was skipped on a node a cluster's writer converges
  type: str
  sample: "mysql://db.example.com:3306/as_config"
read_sha256:
  description:
    - What the read found of what the task manages, as sha256 digests, to pass as O(planned_read) to a later task that
      must not write over a change made in between; C(config) covers the managed keys (settings, removed keys, the
      script and the query file), C(users) the managed users, when they were read.
  returned: when the configuration was read
  type: dict
  sample: {config: 3f1c9a0b, users: 9d2e41aa}
after_sha256:
  description:
    - What RV(read_sha256) C(config) will be once the task's writes are made (or would be, in check mode), if nobody
      else writes; a later read that finds another digest shows that someone changed the keys since.
  returned: when the configuration was read and compared
  type: dict
  sample: {config: 7be0c2d1}
overtaken:
  description:
    - True when the server changed after the read O(planned_read) describes (nothing was changed), or, with
      O(verify_after), since the task whose writes it describes.
  returned: when true, or with O(verify_after)
  type: bool
  sample: true
module_leftovers:
  description:
    - Folders of module files of this collection that killed runs left on the server (see
      O(remove_module_leftovers)), removed unless the run is in check mode.
  returned: when some were found
  type: list
  elements: str
  sample: [/root/.ansible/tmp/ansible-tmp-1796556042.0236719-32620-7810172133228]
reads:
  description: The C(sacli) reads made (one C(ConfigQuery), and one C(UserPropGet) when O(users) is given).
  returned: always
  type: list
  elements: str
  sample: [sacli ConfigQuery]
commands:
  description: The C(sacli) write commands run (or, in check mode, that would run); values are never shown.
  returned: always
  type: list
  elements: str
  sample: ["sacli --key auth.module.post_auth_script --value_file=<private file> ConfigPut"]
"""

import hashlib
import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import read_applied
from ansible_collections.ovpnas.fleet.plugins.module_utils.leftovers import remove_module_leftovers
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    APP_VERIFY_KEY,
    MANAGED_KEYS,
    POST_AUTH_KEY,
    SacliError,
    SacliRunner,
    fail_from_error,
    key_problem,
    sacli_argument_spec,
    to_sacli_string,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.script_check import ScriptCheckError, check_script
from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import (
    mask_secret_lines,
    parse_script_header,
    query_file_entries,
    script_diff,
    script_identity,
    sealed,
    sha256_text,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import hide_secrets, secret_matcher
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import (
    database_identity,
    fleet_dir,
    read_pending,
    record_pending,
    staging,
    standby_reason,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.transaction import (
    Plan,
    commit,
    locked,
    refuse_bad_names,
    write_argument_spec,
)


def covered(entries, app):
    """Whether the entries of a query file (``query_file_entries``) make clients report ``app`` on its platforms."""
    platforms = {"win", "mac"} if app.get("platform", "all") == "all" else {app["platform"]}
    listed = set()
    for entry in entries:
        if entry["name"] == app["name"]:
            listed |= {"win", "mac"} if entry["platform"] == "all" else {entry["platform"]}
    return platforms <= listed


class Wanted:
    """What a managed key (the script, the query file) should hold: its text, or only its identity (the script's)."""

    def __init__(self, module, name, option, identify=sha256_text):
        self.managed = option is not None
        self.absent = self.managed and option["state"] == "absent"
        self.text = self.identity = None
        if not self.managed or self.absent:
            return
        self.text = option.get("content")
        if self.text is None and option.get("identity"):
            self.identity = option["identity"]
            if not module.check_mode:
                # a run that writes may have to load the script: it needs the text
                module.fail_json(msg="%s.identity without %s.content compares only, in check mode; give the content "
                                     "(the compose option renders it)" % (name, name))
        elif not (self.text or "").strip():
            module.fail_json(msg="%s.content is empty; use %s.state=absent to remove it" % (name, name))
        else:
            self.identity = identify(self.text)


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        # composed by the action plugin on the controller
        compose=dict(type="list", elements="str", choices=["host_checker", "post_auth"], default=[]),
        cluster=dict(type="str"),
        cluster_writer=dict(type="str"),
        report=dict(type="bool", default=False),
        probe=dict(type="bool", default=False),
        settings=dict(type="dict", default={}),
        absent_keys=dict(type="list", elements="str", default=[], no_log=False),
        post_auth=dict(type="dict", options=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            content=dict(type="str"),
            identity=dict(type="str"),
            python=dict(type="str", default="python3"),
            validate_interpreters=dict(type="list", elements="str", default=[]),
            policy_harness=dict(type="str"),
            policy_cases=dict(type="list", elements="dict", default=[]),
            required_apps=dict(type="list", elements="dict", default=[]),
            query_file=dict(type="str"),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
            secret_assignments=dict(type="list", elements="str", default=[], no_log=False),
        )),
        app_verify=dict(type="dict", options=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            content=dict(type="str"),
        )),
        users=dict(type="dict", default={}),
        users_exclusive_prefixes=dict(type="list", elements="str", default=[]),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        run=dict(type="str"),
        runs_alive=dict(type="list", elements="str", default=[]),
        planned_read=dict(type="dict"),
        verify_after=dict(type="dict"),
        remove_module_leftovers=dict(type="bool", default=False),
        identify=dict(type="bool", default=False),
    )
    argument_spec.update(write_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    is_secret = secret_matcher(params["secret_keys"])

    # the wanted state, checked before anything is read
    try:
        settings = {str(k): to_sacli_string(v, "settings.%s" % k) for k, v in params["settings"].items()}
        users = {}
        for name, props in params["users"].items():
            if not isinstance(props, dict):
                module.fail_json(msg="users.%s must map property names to values" % name)
            users[str(name)] = {str(k): to_sacli_string(v, "users.%s.%s" % (name, k)) for k, v in props.items()}
    except TypeError as exc:
        module.fail_json(msg=str(exc))
    for key in list(settings) + params["absent_keys"]:
        if key in MANAGED_KEYS:
            module.fail_json(msg="%s is managed with the post_auth and app_verify options" % key)
        if key_problem(key):
            module.fail_json(msg=key_problem(key))
    script = Wanted(module, "post_auth", params["post_auth"], script_identity)
    query_file = Wanted(module, "app_verify", params["app_verify"])
    hide_secrets(module, settings, is_secret, script=script.text, names=secret_assignments(params),
                 known=(params["post_auth"] or {}).get("secrets") or [])
    for props in users.values():
        hide_secrets(module, props, is_secret)

    leftovers = remove_module_leftovers(module, params["remove_module_leftovers"])
    if leftovers:
        module.warn("%s %d folder(s) of module files that killed runs left in %s (they hold the modules' arguments)"
                    % ("removed" if params["remove_module_leftovers"] else "found", len(leftovers),
                       os.path.dirname(leftovers[0])))

    runner = SacliRunner(module)
    known = dict(database=database_identity(runner.path))
    if leftovers:
        known["module_leftovers"] = leftovers
    if params["identify"]:
        # a node of a cluster that another node writes: which database it uses, and whether its services run
        module.exit_json(changed=False, standby=standby_reason(runner.path) is not None, **known)
    directory = params["state_dir"] or fleet_dir(runner.path)
    wanted = dict(settings=settings, users=users, script=script, query_file=query_file)
    staged = None
    deadline = time.monotonic() + params["lock_timeout"]
    try:
        while True:
            with locked(module, directory):
                # another run that still goes is applying its change here (between its write and its gate): a
                # write now would change what it starts and gates; wait for it, then read what it left
                applying = another_run(read_pending(directory), params)
                if applying is None or module.check_mode:
                    staged = staging(directory, clean=not module.check_mode)
                    runner.tmpdir = staged
                    converge(module, runner, directory, staged, wanted, is_secret, known, applying)
                if time.monotonic() >= deadline:
                    module.fail_json(msg="%s has been applying its change on this server since %s, and did not end "
                                         "within lock_timeout (%s s); nothing was changed"
                                     % (applying["run"], applying["since"], params["lock_timeout"]), changed=False)
            time.sleep(1)
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)


def another_run(pending, params):
    """The pending-apply record when another run of ansible-playbook on the same controller made it and still goes
    (``runs_alive``), with ``run`` described; None otherwise. A record of a run on another controller, or of an
    earlier release (no run named), counts as one whose run has ended: it is started and gated again."""
    run, own = (pending or {}).get("run"), params["run"]
    if not (isinstance(run, str) and own) or run == own or run not in params["runs_alive"]:
        return None
    host, _boot, pid, _start = (run.split(":") + [""] * 4)[:4]
    return dict(pending, run="another run (pid %s on %s)" % (pid, host))


def read_server(module, runner, wanted, result):
    """The one read: the configuration, and the users when some are managed; ends the module where that is all."""
    script, users = wanted["script"], wanted["users"]
    try:
        config = runner.config_query()
        result["reads"].append(runner.describe("ConfigQuery"))
        result["read_sha256"] = dict(config=keys_digest(config, managed_keys(module, wanted)))
        after = module.params["verify_after"]
        if after is not None:
            result["overtaken"] = after.get("config") != result["read_sha256"]["config"]
            module.exit_json(**result)
        if script.text is None and script.identity and script_identity(config.get(POST_AUTH_KEY)) != script.identity:
            # the server differs; what more there is to say (show, test, load) needs the script's text
            result.update(changed=True, restart_required=True, content_required=True, changed_keys=[POST_AUTH_KEY],
                          msg="the live post-auth script is not the one post_auth.identity names")
            module.exit_json(**result)
        current_users = {}
        if users:
            current_users = runner.userprop_get(pfilt=next(iter(users)) if len(users) == 1 else None)
            result["reads"].append(runner.describe("UserPropGet"))
            result["read_sha256"]["users"] = read_digest({name: current_users.get(name) for name in users})
    except SacliError as exc:
        reason = standby_reason(runner.path)
        if reason is not None:
            module.exit_json(msg="%s; %s failed; skipped, nothing was changed" % (reason, exc.cmd), skipped=True,
                             standby=True, **result)
        fail_from_error(module, exc, **result)
    return config, current_users


def managed_keys(module, wanted):
    """The keys this task manages: its settings, the keys it removes, the script and the query file."""
    keys = set(wanted["settings"]) | set(module.params["absent_keys"])
    keys.update(key for key, option in ((POST_AUTH_KEY, "script"), (APP_VERIFY_KEY, "query_file"))
                if wanted[option].managed)
    return sorted(keys)


def read_digest(values):
    """The sha256 of what a read found of ``values`` (keys or users), to tell later whether it changed since."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


def keys_digest(config, keys):
    """``read_digest`` of ``keys`` in ``config``, values that differ only in trailing newlines being the same."""
    return read_digest({key: None if config.get(key) is None else config[key].rstrip("\r\n") for key in keys})


def plan_changes(module, runner, wanted, config, current_users):
    """The writes from the read to the wanted state; the script compared by what it does (its identity)."""
    params, script, query_file = module.params, wanted["script"], wanted["query_file"]
    plan = Plan(runner, config, current_users)
    for key, value in wanted["settings"].items():
        plan.set_key(key, value)
    for key in params["absent_keys"]:
        plan.set_key(key, None)
    if query_file.managed:
        plan.set_key(APP_VERIFY_KEY, query_file.text)
    # a live script that differs only in its header fields stays
    if script.absent:
        plan.set_key(POST_AUTH_KEY, None)
    elif script.text is not None and script_identity(config.get(POST_AUTH_KEY)) != script.identity:
        plan.keys[POST_AUTH_KEY] = script.text
    plan.set_users(wanted["users"], True, params["users_exclusive_prefixes"])
    return plan


def missing_apps(module, wanted, config, plan):
    """The applications the host-checker policy of the script that will be live checks, and the query file that
    will be live does not list."""
    params, script, query_file = module.params, wanted["script"], wanted["query_file"]
    live = script.text if POST_AUTH_KEY in plan.keys else (config.get(POST_AUTH_KEY) if script.managed else None)
    if live is None or not params["post_auth"]["required_apps"]:
        return []
    if query_file.managed:
        live_query_file = query_file.text
    elif params["post_auth"]["query_file"] is not None:
        live_query_file = params["post_auth"]["query_file"]
    else:
        live_query_file = config.get(APP_VERIFY_KEY)
    entries = query_file_entries(live_query_file)
    return ["%s (%s)" % (app.get("name"), app.get("platform", "all"))
            for app in params["post_auth"]["required_apps"] if not covered(entries, app)]


def overtaken(module, read):
    """What this server's read shows changed since the read the run planned from (O(planned_read)), or None."""
    planned = module.params["planned_read"]
    if not planned or module.check_mode:
        return None
    moved = [part for part in ("config", "users") if part in planned and part in read and planned[part] != read[part]]
    return moved or None


def converge(module, runner, directory, staged, wanted, is_secret, known, applying=None):
    params = module.params
    result = dict(changed=False, restart_required=False, changed_keys=[], changed_users=[], commands=[], reads=[],
                  **known)
    config, current_users = read_server(module, runner, wanted, result)
    moved = overtaken(module, result["read_sha256"])
    if moved:
        what = " and ".join("the users" if part == "users" else "the keys" for part in moved)
        module.fail_json(msg="this server changed after this run planned its change (%s of what it manages: another "
                             "run, or someone, wrote in between); nothing was changed; run again to plan from what is "
                             "live now" % what, overtaken=True, **result)
    hide_secrets(module, config, is_secret, script=config.get(POST_AUTH_KEY), names=secret_assignments(params))
    for name in wanted["users"]:
        hide_secrets(module, current_users.get(name), is_secret)

    plan = plan_changes(module, runner, wanted, config, current_users)
    # what a read of the keys would find once the plan is written, if nobody else writes
    result["after_sha256"] = dict(config=keys_digest(dict(config, **plan.keys), managed_keys(module, wanted)))
    missing = missing_apps(module, wanted, config, plan)
    if missing:
        module.fail_json(
            msg="the host-checker policy checks %s, which the query file (%s) does not list: clients would never "
                "report them and every Windows and macOS login would be refused; nothing was changed"
                % (", ".join(missing), APP_VERIFY_KEY), **result)

    # a change that awaits `sacli start`: an earlier run's, never applied (its start failed or never ran), or one
    # an earlier task of this run made (the host_checker role before post_auth), whose handler may still run; both
    # count as a change to apply (a second notification costs nothing), only the first is worth a warning
    pending = read_pending(directory)
    unapplied = [] if pending else unapplied_keys(wanted, config, plan, read_applied(directory))
    if unapplied:
        # what the database holds was never applied by a start of this collection: its pending record was removed,
        # or it was loaded without sacli start; noted as pending, so that the handler starts and gates it
        pending = dict(since=None, changes=unapplied, sha256={key: sha256_text(config.get(key)) for key in unapplied})
        module.warn("the live %s is not what the last sacli start of this collection applied (a pending-apply "
                    "record was removed, or it was loaded without a start): the server is started again"
                    % " and ".join(unapplied))
        if not module.check_mode:
            try:
                pending = record_pending(directory, unapplied, pending["sha256"], run=params["run"])
            except OSError as exc:
                module.fail_json(msg="cannot write the pending-apply record in %s: %s; nothing was changed"
                                     % (directory, exc), **result)
    changed_keys = sorted(plan.keys)
    restart = plan.restart_required
    result.update(changed=bool(plan.keys or plan.user_writes or pending), restart_required=restart or bool(pending),
                  changed_keys=changed_keys, changed_users=sorted(plan.user_writes), commands=plan.commands())
    if pending:
        result["pending_apply"] = pending
        if applying is not None:
            module.warn("%s is applying a change made on this server at %s (%s): a run waits until it has ended, "
                        "then reads what it left" % (applying["run"], applying.get("since"),
                                                     ", ".join(applying.get("changes", [])) or "unknown"))
        elif not unapplied and not (params["run"] and pending.get("run") == params["run"]):
            module.warn("a change made on this server at %s (%s) was never applied (its sacli start failed or did "
                        "not run): the server is started again" % (pending.get("since"),
                                                                   ", ".join(pending.get("changes", [])) or "unknown"))
    for option, key in (("post_auth", POST_AUTH_KEY), ("app_verify", APP_VERIFY_KEY)):
        if params[option] is not None:
            before = sha256_text(config.get(key))
            result[option] = dict(changed=key in plan.keys, sha256_before=before, backup_file=None,
                                  sha256_after=sha256_text(plan.keys[key]) if key in plan.keys else before)
    if module._diff:
        result["diff"] = diff(plan, config, current_users, secret_assignments(params))
    if params["report"]:
        result["live"] = live_report(config, directory)
        if plan.keys.get(POST_AUTH_KEY) is not None and config.get(POST_AUTH_KEY) is not None:
            # what a drift audit shows of a script edited by hand, or of one another inventory made
            result["post_auth"]["differing_lines"] = script_diff(config[POST_AUTH_KEY], plan.keys[POST_AUTH_KEY],
                                                                 names=secret_assignments(module.params))
    if not (plan.keys or plan.user_writes):
        module.exit_json(**result)
    refuse_bad_names(module, plan, result, pending)

    if plan.keys.get(POST_AUTH_KEY) is not None and not (params["report"] and module.check_mode):
        post_auth = params["post_auth"]
        try:
            result["validation"] = check_script(module, staged, wanted["script"].text, post_auth["python"],
                                                post_auth["validate_interpreters"], post_auth["policy_harness"],
                                                post_auth["policy_cases"])
        except ScriptCheckError as exc:
            result.update(changed=bool(pending), restart_required=bool(pending), commands=[])
            module.fail_json(msg="%s; nothing was changed" % exc.msg, **dict(result, **exc.details))
    if module.check_mode:
        module.exit_json(**result)

    backups = commit(module, directory, plan, result, run=params["run"])
    for option, key in (("post_auth", POST_AUTH_KEY), ("app_verify", APP_VERIFY_KEY)):
        if key in backups:
            result[option]["backup_file"] = backups[key]
    module.exit_json(**result)


def unapplied_keys(wanted, config, plan, applied):
    """The script and query file keys, managed here and not written now, whose live value is not the one the
    last start of this collection applied (``applied.json``); none where nothing was recorded."""
    digests = (applied or {}).get("sha256")
    if not isinstance(digests, dict):
        return []
    managed = [key for key, option in ((POST_AUTH_KEY, "script"), (APP_VERIFY_KEY, "query_file"))
               if wanted[option].managed and key not in plan.keys]
    return [key for key in managed
            if isinstance(digests.get(key), str) and sha256_text(config.get(key)) != digests[key]]


def live_report(config, directory):
    """What is live: the script's sha256 and header, the query file's sha256, and when the script was applied."""
    script, query_file = config.get(POST_AUTH_KEY), config.get(APP_VERIFY_KEY)
    live = dict(post_auth=dict(sha256=sha256_text(script), header=parse_script_header(script) if script else {},
                               identity=script_identity(script), sealed=sealed(script)),
                app_verify=dict(sha256=sha256_text(query_file)), applied=None)
    applied = read_applied(directory)
    if applied and (applied.get("sha256") or {}).get(POST_AUTH_KEY) == live["post_auth"]["sha256"]:
        # the start that applied the live script, as this collection recorded it
        live["applied"] = applied.get("applied")
    return live


def secret_assignments(params):
    """The names of an own script's assignments that hold secrets."""
    return (params["post_auth"] or {}).get("secret_assignments") or []


def diff(plan, config, current_users, names=()):
    """One diff per kind of change (secrets are masked by ``no_log_values``; in an own script, what ``names``
    are assigned)."""
    diffs = []
    keys = [k for k in sorted(plan.keys) if k not in MANAGED_KEYS]
    if keys:
        diffs.append(dict(before_header="configuration keys (live)", after_header="configuration keys (wanted)",
                          before={k: config.get(k) for k in keys},
                          after={k: plan.keys[k] for k in keys}))
    if plan.user_writes:
        before = {name: None if current_users.get(name) is None else dict(sorted(current_users[name].items()))
                  for name in sorted(plan.user_writes)}
        after = plan.users_after()
        diffs.append(dict(before_header="user properties (live)", after_header="user properties (wanted)",
                          before=before, after=after))
    for key in (APP_VERIFY_KEY, POST_AUTH_KEY):
        if key in plan.keys:
            diffs.append(dict(before_header="%s (live)" % key, after_header="%s (wanted)" % key,
                              before=mask_secret_lines(config.get(key) or "", names),
                              after=mask_secret_lines(plan.keys[key] or "", names)))
    return diffs


if __name__ == "__main__":
    main()
