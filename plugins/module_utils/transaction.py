# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way the collection's modules change a server: read, plan, write the difference, undo on failure.

Every module that writes (server_state, sacli_config, sacli_userprop, post_auth_script, and
server_restore, whose plan is the undo of the last change) goes through here, with the same rules:

* **Lock**: the run holds ``STATE_DIR/lock`` from its read to its last write, exclusive when it
  may write, shared in check mode, so that two runs never mix their changes.
* **Plan**: what differs from one read, as writes (``ConfigPut``, ``ConfigDel``, ``UserPropPut``,
  ``UserPropDel``, ``UserPropDelAll``), each with what undoes it; check mode stops at the plan.
* **Backup**: before the script (``auth.module.post_auth_script``) or the query file
  (``vpn.client.app_verify``) is replaced or removed, its live text is saved in the backup folder
  (mode 0600), when ``backup`` is on (the default of every module).
* **Pending record**: before the first write of a change that ``sacli start`` must apply,
  ``pending_apply.json`` names it; only a start with every service up (in the collection's
  handler: the gate after it) removes it.
* **Undo**: when a write fails, the writes made before it are taken back, the last first, and the
  pending record is left as it was before the run; the failure says what was undone.
* **Last change**: after the writes, ``last_change.json`` records what takes them back, for
  ``server_restore``; while an earlier change still waits for ``sacli start`` (the pending record),
  the record takes back both, so that a restore undoes all that the start applies.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import record_change, undo_writes
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    MANAGED_KEYS,
    SacliError,
    bad_name,
    fail_from_error,
    same_value,
    shown_name,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import sha256_text
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import (
    HostLock,
    LockTimeoutError,
    clear_pending,
    read_pending,
    record_pending,
    write_backup,
    write_pending,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.userprops import needs_restart, plan_users, put_order

# what the backup of each managed key is called
BACKUP_NAMES = {MANAGED_KEYS[0]: "post_auth_script.py", MANAGED_KEYS[1]: "app_verify.txt"}


def write_argument_spec():
    """Options of every module that writes (documented in the ovpnas.fleet.sacli.WRITES doc fragment)."""
    return dict(
        backup=dict(type="bool", default=True),
        backup_dir=dict(type="path"),
        state_dir=dict(type="path"),
        lock_timeout=dict(type="int", default=300),
    )


@contextlib.contextmanager
def locked(module, directory, nothing="nothing was changed"):
    """Hold the server's lock (exclusive unless in check mode); a lock that cannot be had fails the module.

    Only the lock's own failures are reported here, as changing nothing; what fails while it is held
    reports itself, saying what it changed.
    """
    try:
        lock = HostLock(directory, module.params["lock_timeout"], exclusive=not module.check_mode)
        lock.__enter__()
    except LockTimeoutError as exc:
        module.fail_json(msg="%s; %s" % (exc, nothing), changed=False)
    except OSError as exc:
        module.fail_json(msg="cannot use %s: %s; %s" % (directory, exc, nothing), changed=False)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


class Plan:
    """The writes that bring one server from what one read showed to the wanted state, each with its undo."""

    def __init__(self, runner, config=None, users=None):
        self.runner = runner
        self.config = config or {}
        self.users = users or {}
        self.keys = {}  # key -> new value, None to remove
        self.user_writes = {}  # name -> (puts, deletes, delete_all)
        self.undo = []  # [kind, name, previous] per write made, in order

    def set_key(self, key, value):
        """Write ``key`` (remove it when ``value`` is None) unless it already holds ``value``."""
        if not same_value(self.config.get(key), value):
            self.keys[key] = value

    def set_users(self, wanted, present=True, prefixes=(), kind="user"):
        self.user_writes.update(plan_users(wanted, self.users, present, prefixes, kind))

    @property
    def empty(self):
        return not (self.keys or self.user_writes)

    @property
    def restart_required(self):
        """Whether ``sacli start`` must apply the plan (private user properties take effect at the next login)."""
        return bool(self.keys) or any(needs_restart(p, d) or a for p, d, a in self.user_writes.values())

    def bad_names(self):
        """Why names the plan would give to sacli cannot be given (option-like, control characters, too long)."""
        names = [("key", key) for key in sorted(self.keys)] + [("user", name) for name in sorted(self.user_writes)]
        for name in sorted(self.user_writes):
            puts, deletes, _delete_all = self.user_writes[name]
            names += [("property", key) for key in sorted(puts) + sorted(deletes)]
        problems = []
        for what, name in names:
            why = bad_name(name)
            if why:
                problems.append("the %s name %s %s" % (what, shown_name(name), why))
        return problems

    def changes(self):
        """The names the plan changes: keys, then users."""
        return sorted(self.keys) + sorted(self.user_writes)

    def key_order(self):
        """The script last: what it relies on (query file, keys, registrations) is in place first."""
        return sorted(self.keys, key=lambda k: (k == MANAGED_KEYS[0], k == MANAGED_KEYS[1], k))

    def commands(self):
        """The writes, as results show them (no values)."""
        describe = self.runner.describe
        commands = []
        for name in sorted(self.user_writes):
            puts, deletes, delete_all = self.user_writes[name]
            if delete_all:
                commands.append(describe("UserPropDelAll", user=name))
            commands += [describe("UserPropPut", key=k, user=name, value=True) for k in put_order(puts)]
            commands += [describe("UserPropDel", key=k, user=name) for k in deletes]
        for key in self.key_order():
            commands.append(describe("ConfigDel", key=key) if self.keys[key] is None
                            else describe("ConfigPut", key=key, value=True))
        return commands

    def users_after(self):
        """{name: properties after the plan, or None when the user goes} of the users it changes."""
        after = {}
        for name in sorted(self.user_writes):
            puts, deletes, delete_all = self.user_writes[name]
            if delete_all:
                after[name] = None
                continue
            new = dict(self.users.get(name) or {}, **puts)
            for key in deletes:
                new.pop(key, None)
            after[name] = dict(sorted(new.items()))
        return after

    def users_written(self):
        """{name: {property: sha256 of what the plan writes, None where it deletes}, or None when the user goes}."""
        written = {}
        for name in sorted(self.user_writes):
            puts, deletes, delete_all = self.user_writes[name]
            if delete_all:
                written[name] = None
                continue
            props = {key: sha256_text(str(value)) for key, value in puts.items()}
            props.update((key, None) for key in deletes)
            written[name] = props
        return written

    def apply(self):
        """Run the writes; on a failure undo those made, then raise the failure.

        Each undo is recorded before its write: a write that fails may still have happened (it
        timed out, or answered with something else), and undoing one that did not is harmless.
        """
        undo = self.undo = []
        try:
            for name in sorted(self.user_writes):
                have = self.users.get(name)
                puts, deletes, delete_all = self.user_writes[name]
                if delete_all:
                    undo.append(("restore_user", name, have))
                    self.runner.userprop_del_all(name)
                    continue
                if have is None:
                    undo.append(("delete_user", name, None))
                for key in put_order(puts):
                    if have is not None:
                        undo.append(("user_prop", name, (key, have.get(key))))
                    self.runner.userprop_put(name, key, puts[key])
                for key in deletes:
                    undo.append(("user_prop", name, (key, have.get(key))))
                    self.runner.userprop_del(name, key)
            for key in self.key_order():
                value = self.keys[key]
                undo.append(("key", key, self.config.get(key)))
                if value is None:
                    self.runner.config_del(key)
                else:
                    self.runner.config_put(key, value=value)
        except SacliError as exc:
            exc.undone, exc.not_undone = undo_writes(self.runner, undo, SacliError)
            raise


def refuse_bad_names(module, plan, result, pending=None):
    """Fail, before anything is written (also in check mode), when the plan holds a name sacli cannot be given."""
    problems = plan.bad_names()
    if problems:
        module.fail_json(msg="%s; nothing was changed" % "; ".join(problems),
                         **dict(result, changed=bool(pending), commands=[]))


def commit(module, directory, plan, result, run=None):
    """Make the writes of ``plan`` (outside check mode): backups, pending record, writes with undo, last change.

    ``result`` is the module's result so far: a failure fails the module with it, saying what was undone.
    Returns {key: backup file} of the script and query file saved before they were replaced or removed.
    """
    params = module.params
    pending = read_pending(directory)
    refuse_bad_names(module, plan, result, pending)
    backups = {}
    if params["backup"]:
        folder = params["backup_dir"] or os.path.join(directory, "backups")
        for key in plan.key_order():
            if key in BACKUP_NAMES and plan.config.get(key) is not None:
                try:
                    backups[key] = write_backup(folder, BACKUP_NAMES[key], plan.config[key])
                except OSError as exc:
                    module.fail_json(msg="cannot write the backup in %s: %s; nothing was changed" % (folder, exc),
                                     **dict(result, changed=bool(pending), commands=[]))
    restart = plan.restart_required
    if restart:
        # before the first write: a run killed after it still leaves the record
        try:
            record_pending(directory, plan.changes(), {key: sha256_text(plan.keys[key]) for key in MANAGED_KEYS
                                                       if key in plan.keys}, run=run)
        except OSError as exc:
            module.fail_json(msg="cannot write the pending-apply record in %s: %s; nothing was changed"
                                 % (directory, exc), **dict(result, changed=bool(pending), commands=[]))
    try:
        plan.apply()
    except SacliError as exc:
        not_undone = getattr(exc, "not_undone", [])
        if not not_undone and restart:
            # the server is as it was: only an earlier change (if any) still waits for start
            if pending:
                write_pending(directory, pending)
            else:
                clear_pending(directory)
        exc.msg = "%s; %s" % (exc.msg, "the writes made before it were undone" if not not_undone
                              else "undoing the writes made before it failed for %s" % ", ".join(not_undone))
        # the server is as it was, or holds writes that could not be undone and that a start must apply
        fail_from_error(module, exc, **dict(result, changed=bool(not_undone), restart_required=bool(not_undone),
                                            commands=plan.runner.commands))
    result["commands"] = plan.runner.commands
    # what takes this change back (ovpnas.fleet.server_restore), with what it left live
    try:
        record_change(directory, plan.undo, {key: sha256_text(value) for key, value in plan.keys.items()},
                      extend=bool(pending), users=plan.users_written())
    except OSError as exc:
        module.warn("cannot record the change in %s (a restore will not find it): %s" % (directory, exc))
    return backups
