#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: server_restore
short_description: Take back the last change the collection made on an OpenVPN Access Server
version_added: 0.1.0
description:
  - Restores what was live before the last change that a module of the collection (M(ovpnas.fleet.server_state),
    M(ovpnas.fleet.sacli_config), M(ovpnas.fleet.sacli_userprop), M(ovpnas.fleet.post_auth_script)) made on this
    server, the post-auth script, the host-checker query file, the configuration keys and the user properties, from
    the record the writes kept (C(last_change.json) in O(state_dir)).
  - The last change is everything written since the last C(sacli start) that applied the configuration with every
    service up, however many tasks wrote it, so that a restore takes back all that a start applied; writes made
    after such a start begin a new record.
  - First checks with one C(sacli ConfigQuery) that what that run wrote is still live, so that a change made since
    (by hand, or by another tool) is never overwritten; the module then fails and restores nothing, unless
    O(force=true).
  - User properties are checked one by one against what the change wrote (in records of this release and later). A
    property that holds something else now, or a user the change created or removed whole and that someone changed
    since, is kept as it is and named in RV(users_changed_since); the rest is restored. O(force) does not apply to
    them.
  - Does not apply the restored state. Notify the C(ovpnas_fleet_apply) handler, or run M(ovpnas.fleet.sacli_start),
    when RV(restart_required) is true. The rollout of C(playbooks/deploy_postauth.yml) runs it when the health gate
    of a server fails, then starts and gates the server again.
  - The record is removed once the change is taken back, so a second run restores nothing.
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
  diff_mode:
    support: full
    details:
      - The diff names the keys and users restored; values are never shown, since they may be secrets.
  idempotent:
    support: full
    details:
      - A second run finds no record and changes nothing.
options:
  force:
    description:
      - Restore even when keys the last change wrote no longer hold what it wrote.
    type: bool
    default: false
notes:
  - The restore is a change like any other of the collection (see the notes on writes). It holds the same lock, backs
    up the script and query file it replaces, leaves a pending-apply record, and undoes its own writes when one of
    them fails, so that the server is then left wholly as it was before the restore and the record is kept for
    another try.
  - Only what differs from the record is written. The live state is read first, with one C(ConfigQuery), and one
    C(UserPropGet) when the change wrote user properties.
seealso:
  - module: ovpnas.fleet.server_state
  - module: ovpnas.fleet.sacli_start
"""

EXAMPLES = r"""
- name: Take the last change back
  ovpnas.fleet.server_restore:
  register: restored
  notify: ovpnas_fleet_apply

- name: Take it back even though the script was edited since
  ovpnas.fleet.server_restore:
    force: true
"""

RETURN = r"""
restart_required:
  description: Whether something was restored (or would be) that C(sacli start) must apply.
  returned: always
  type: bool
  sample: true
restored_keys:
  description: The configuration keys restored (or that would be), the script and the query file included.
  returned: always
  type: list
  elements: str
  sample: [auth.module.post_auth_script, vpn.client.app_verify]
restored_users:
  description: The users whose properties were restored (or would be).
  returned: always
  type: list
  elements: str
  sample: [alice]
changed_since:
  description: Keys the last change wrote that no longer hold what it wrote.
  returned: always
  type: list
  elements: str
  sample: []
users_changed_since:
  description:
    - What the last change wrote of the users that holds something else now, left as it is, as C(user.property),
      or C(user) for a user the change created or removed whole.
  returned: always
  type: list
  elements: str
  sample: [alice.pvt_hw_addr, carol]
msg:
  description: What was kept, when something was.
  returned: when RV(users_changed_since) is not empty
  type: str
  sample: "kept what was changed since the change wrote it: alice.pvt_hw_addr, carol"
change_since:
  description: When the change taken back was made (UTC).
  returned: when a record was found
  type: str
  sample: "2026-12-01T08:00:00Z"
post_auth:
  description: The sha256 of the script live before and after the restore (without trailing newlines).
  returned: when the record names the script
  type: dict
  sample: {sha256_before: 89e6c98d9288, sha256_after: 0c2d5e7f}
commands:
  description: The C(sacli) write commands run (or, in check mode, that would run); values are never shown.
  returned: always
  type: list
  elements: str
  sample: ["sacli --key auth.module.post_auth_script --value_file=<private file> ConfigPut"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import drop_change, read_change
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    POST_AUTH_KEY,
    SacliError,
    SacliRunner,
    fail_from_error,
    sacli_argument_spec,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import sha256_text
from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import hide_secrets, secret_matcher
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import fleet_dir
from ansible_collections.ovpnas.fleet.plugins.module_utils.transaction import (
    Plan,
    commit,
    locked,
    write_argument_spec,
)

KINDS = ("key", "delete_user", "restore_user", "user_prop")


def text_or_none(value):
    return value is None or isinstance(value, str)


def well_formed(record):
    """The record's undo entries and after-hashes, or None when it is not one the collection writes."""
    undo, after = record.get("undo"), record.get("after")
    if not isinstance(undo, list) or not isinstance(after, dict):
        return None
    for entry in undo:
        if not (isinstance(entry, list) and len(entry) == 3 and entry[0] in KINDS and isinstance(entry[1], str)):
            return None
        kind, previous = entry[0], entry[2]
        if kind == "key" and not text_or_none(previous):
            return None
        if kind == "user_prop" and not (isinstance(previous, list) and len(previous) == 2
                                        and isinstance(previous[0], str) and text_or_none(previous[1])):
            return None
        if kind == "restore_user" and not (previous is None or (isinstance(previous, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in previous.items()))):
            return None
    return undo, after


def before_the_change(undo):
    """What the change found, from its undo entries (the first entry of a name holds what was there first)."""
    keys, users, props = {}, {}, {}
    for kind, name, previous in undo:
        if kind == "key":
            keys.setdefault(name, previous)
        elif kind == "delete_user":
            users.setdefault(name, None)
        elif kind == "restore_user":
            users.setdefault(name, previous or {})
        elif name not in users:
            # a property written after the whole user was recorded: the user's entry holds what was there first
            props.setdefault(name, {}).setdefault(previous[0], previous[1])
    return keys, users, props


def changed_since(after, config, before):
    """The keys the change wrote that hold something else now: neither what it wrote nor what was there before
    it (a write that a killed run never made has nothing to restore, and nothing to protect)."""
    changed = []
    for key, digest in sorted(after.items()):
        live = sha256_text(config.get(key))
        if live != digest and not (key in before and live == sha256_text(before[key])):
            changed.append(key)
    return changed


def _digest(value):
    return sha256_text(None if value is None else str(value))


def as_written(have, wrote):
    """Whether a user the change created or deleted whole (``wrote``: its properties' digests, or None) is still so."""
    if wrote is None or have is None:
        return wrote is None and have is None
    written = {key: digest for key, digest in wrote.items() if digest is not None}
    return set(have) == set(written) and all(_digest(have[key]) == digest for key, digest in written.items())


def same_user(have, before):
    """Whether a user's live properties (``have``, None when the user does not exist) are those of ``before``."""
    if have is None or before is None:
        return have is None and before is None
    return {key: str(value) for key, value in have.items()} == {key: str(value) for key, value in before.items()}


def plan_restore(runner, config, live_users, undo, written=None):
    """The writes that bring back what the change found: only where the live state differs from it.

    ``written`` is what the change left of each user it wrote (the record's ``users_after``; absent in
    records of earlier releases). A user or property that holds something else now was changed by
    someone else since: it is kept as it is, and named in the second value returned.
    """
    keys, users, props = before_the_change(undo)
    # only entries of the shape the collection writes are trusted to keep something
    written = {name: wrote for name, wrote in (written if isinstance(written, dict) else {}).items()
               if wrote is None or (isinstance(wrote, dict) and all(
                   isinstance(key, str) and (digest is None or isinstance(digest, str))
                   for key, digest in wrote.items()))}
    plan = Plan(runner, config, live_users)
    kept = []
    for key, value in keys.items():
        plan.set_key(key, value)
    for name in sorted(set(users) | set(props)):
        have = live_users.get(name)
        if name in users and same_user(have, users[name]):
            # a user the change created or deleted whole holds what it held before (a write a killed run never
            # made, or set back): nothing to restore, nothing to keep
            continue
        if name in written and name in users and not as_written(have, written[name]):
            # created or deleted whole by the change, and changed since
            kept.append(name)
            continue
        if name in users and users[name] is None:
            # the change created the user
            if have is not None:
                plan.user_writes[name] = ({}, [], True)
            continue
        previous = dict(props.get(name, {}))
        wrote = written.get(name)
        if name not in users and isinstance(wrote, dict):
            for key in sorted(previous):
                live = _digest((have or {}).get(key))
                if key in wrote and live != wrote[key] and live != _digest(previous[key]):
                    kept.append("%s.%s" % (name, key))
                    del previous[key]
        wanted = dict(users.get(name) or {}, **{k: v for k, v in previous.items() if v is not None})
        puts = {k: v for k, v in wanted.items() if (have or {}).get(k) != v}
        deletes = sorted(k for k, v in previous.items() if v is None and k in (have or {}))
        if puts or deletes:
            plan.user_writes[name] = (puts, deletes, False)
    return plan, kept


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        force=dict(type="bool", default=False),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
    )
    argument_spec.update(write_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    runner = SacliRunner(module)
    directory = module.params["state_dir"] or fleet_dir(runner.path)
    with locked(module, directory, "nothing was restored"):
        restore(module, runner, directory)


def restore(module, runner, directory):
    result = dict(changed=False, restart_required=False, restored_keys=[], restored_users=[], changed_since=[],
                  users_changed_since=[], commands=[])
    try:
        record = read_change(directory)
    except ValueError as exc:
        module.fail_json(msg="%s; nothing was restored" % exc, **result)
    if record is None:
        module.exit_json(msg="no change recorded in %s: nothing to restore" % directory, **result)
    parts = well_formed(record)
    if parts is None:
        module.fail_json(msg="the record in %s is not one the collection writes; nothing was restored"
                         % directory, **result)
    undo, after = parts
    is_secret = secret_matcher(module.params["secret_keys"])
    for kind, name, previous in undo:
        # the values restored are never shown where they are secrets
        if kind == "key":
            values = {name: previous}
        elif kind == "restore_user":
            values = previous if isinstance(previous, dict) else {}
        elif kind == "user_prop":
            values = {previous[0]: previous[1]}
        else:
            values = {}
        hide_secrets(module, values, is_secret, script=previous if kind == "key" and name == POST_AUTH_KEY else None)
    result["change_since"] = record.get("since")

    try:
        config = runner.config_query()
        live_users = runner.userprop_get() if any(kind != "key" for kind, _name, _previous in undo) else {}
    except SacliError as exc:
        fail_from_error(module, exc, **result)
    hide_secrets(module, config, is_secret, script=config.get(POST_AUTH_KEY))
    for props in live_users.values():
        hide_secrets(module, props, is_secret)
    result["changed_since"] = changed_since(after, config, before_the_change(undo)[0])
    if result["changed_since"] and not module.params["force"]:
        module.fail_json(msg="keys the last change wrote were changed since (%s); nothing was restored (force=true "
                             "restores anyway)" % ", ".join(result["changed_since"]), **result)
    plan, kept = plan_restore(runner, config, live_users, undo, record.get("users_after"))
    result["users_changed_since"] = kept
    if kept:
        result["msg"] = "kept what was changed since the change wrote it: %s" % ", ".join(kept)
    keys = sorted({name for kind, name, _previous in undo if kind == "key"})
    users = sorted({name for kind, name, _previous in undo if kind != "key"} - set(kept))
    previous_script = [entry[2] for entry in undo if entry[0] == "key" and entry[1] == POST_AUTH_KEY]
    if previous_script:
        result["post_auth"] = dict(sha256_before=sha256_text(config.get(POST_AUTH_KEY)),
                                   sha256_after=sha256_text(previous_script[0]))
    result.update(changed=not plan.empty, restart_required=plan.restart_required, restored_keys=keys,
                  restored_users=users, commands=plan.commands())
    if module._diff:
        result["diff"] = dict(before_header="last change (live)", after_header="before the last change",
                              before="keys: %s\nusers: %s\n" % (", ".join(keys), ", ".join(users)),
                              after="restored\n")
    if module.check_mode:
        module.exit_json(**result)
    if not plan.empty:
        backups = commit(module, directory, plan, result)
        if POST_AUTH_KEY in backups:
            result["backup_file"] = backups[POST_AUTH_KEY]
    # taken back: the change is no longer one to restore (commit recorded the restore itself as the last change)
    drop_change(directory)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
