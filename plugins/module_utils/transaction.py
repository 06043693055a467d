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
* **Room**: before anything is written, the disks of the state folder, the value files and the
  backups must have room for the change, its undo and its records; a value file that cannot be
  written is a failed write like any other, undone.
* **Last change**: before the first write, ``last_change.json`` records what takes the writes back,
  for ``server_restore`` (a change whose undo cannot be recorded is not made); while an earlier
  change still waits for ``sacli start`` (the pending record), the record takes back both, so that
  a restore undoes all that the start applies. Writes that fail and are undone put it back as it was.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import (
    change_text,
    put_back_change,
    record_change,
    undo_writes,
)
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

# bytes a change leaves free on every disk it writes to, beyond what it writes (file system overhead)
ROOM_MARGIN = 16384
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

    def steps(self):
        """[(undo entry or None, write or None)] in the order of the writes: users, keys, query file, script."""
        steps = []
        for name in sorted(self.user_writes):
            have = self.users.get(name)
            puts, deletes, delete_all = self.user_writes[name]
            if delete_all:
                steps.append((("restore_user", name, have), functools.partial(self.runner.userprop_del_all, name)))
                continue
            if have is None:
                steps.append((("delete_user", name, None), None))
            for key in put_order(puts):
                entry = None if have is None else ("user_prop", name, (key, have.get(key)))
                steps.append((entry, functools.partial(self.runner.userprop_put, name, key, puts[key])))
            for key in deletes:
                steps.append((("user_prop", name, (key, have.get(key))),
                              functools.partial(self.runner.userprop_del, name, key)))
        for key in self.key_order():
            value = self.keys[key]
            write = (functools.partial(self.runner.config_del, key) if value is None
                     else functools.partial(self.runner.config_put, key, value=value))
            steps.append((("key", key, self.config.get(key)), write))
        return steps

    def planned_undo(self):
        """What takes back all the writes of the plan, in the order of the writes."""
        return [entry for entry, _write in self.steps() if entry is not None]

    def room_needed(self):
        """Bytes the writes need on disk at most at once: the largest value file, for a write or its undo."""
        values = [value for value in self.keys.values() if value is not None]
        values += [self.config.get(key) or "" for key in self.keys]
        for name, (puts, _deletes, _delete_all) in self.user_writes.items():
            values += [str(value) for value in puts.values()]
            values += [str(value) for value in (self.users.get(name) or {}).values()]
        return max([len(value.encode("utf-8")) for value in values] or [0])

    def apply(self):
        """Run the writes; on a failure undo those made, then raise the failure.

        Each undo is recorded before its write: a write that fails may still have happened (it
        timed out, or answered with something else), and undoing one that did not is harmless.
        """
        undo = self.undo = []
        try:
            for entry, write in self.steps():
                if entry is not None:
                    undo.append(entry)
                if write is not None:
                    write()
        except SacliError as exc:
            exc.undone, exc.not_undone = undo_writes(self.runner, undo, SacliError)
            raise


def refuse_bad_names(module, plan, result, pending=None):
    """Fail, before anything is written (also in check mode), when the plan holds a name sacli cannot be given."""
    problems = plan.bad_names()
    if problems:
        module.fail_json(msg="%s; nothing was changed" % "; ".join(problems),
                         **dict(result, changed=bool(pending), commands=[]))


def _free(path):
    """(bytes free to this user, device) of the filesystem that holds ``path``, or of its nearest folder."""
    while path and not os.path.isdir(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path or "/")
    return stat.f_bavail * stat.f_frsize, os.stat(path or "/").st_dev


def room_short(module, directory, backup_folder, plan):
    """Why the disk cannot take the change whole (with its records, backups and value files), or None.

    Checked before anything is written: a write that fails on a full disk is undone, but an undo
    needs room too, and so does the record that lets a restore take the change back.
    """
    state = 2 * (len(json.dumps(plan.planned_undo())) + len(json.dumps(plan.users_written()))
                 + len(json.dumps(plan.changes(), default=str)) + len(change_text(directory) or "")) + ROOM_MARGIN
    needs = [(directory, state), (plan.runner.tmpdir or module.tmpdir, plan.room_needed() + ROOM_MARGIN)]
    if backup_folder:
        saved = sum(len(plan.config[key].encode("utf-8")) for key in plan.key_order()
                    if key in BACKUP_NAMES and plan.config.get(key) is not None)
        needs.append((backup_folder, saved + ROOM_MARGIN))
    devices = {}
    try:
        for path, need in needs:
            free, device = _free(path)
            paths, total = devices.get(device, ([], 0))
            devices[device] = (paths + [path], total + need)
            if total + need > free:
                return "not enough room on the disk of %s: %d bytes free, about %d needed" % (
                    ", ".join(paths + [path]), free, total + need)
    except OSError as exc:
        return "cannot tell the room left on the disk of %s: %s" % (directory, exc)
    return None


def commit(module, directory, plan, result, run=None):
    """Make the writes of ``plan`` (outside check mode): backups, pending record, writes with undo, last change.

    ``result`` is the module's result so far: a failure fails the module with it, saying what was undone.
    Returns {key: backup file} of the script and query file saved before they were replaced or removed.
    """
    params = module.params
    pending = read_pending(directory)
    refuse_bad_names(module, plan, result, pending)
    folder = params["backup_dir"] or os.path.join(directory, "backups")
    short = room_short(module, directory, folder if params["backup"] else None, plan)
    if short:
        module.fail_json(msg="%s; nothing was changed" % short, **dict(result, changed=bool(pending), commands=[]))
    backups = {}
    if params["backup"]:
        for key in plan.key_order():
            if key in BACKUP_NAMES and plan.config.get(key) is not None:
                try:
                    backups[key] = write_backup(folder, BACKUP_NAMES[key], plan.config[key])
                except OSError as exc:
                    module.fail_json(msg="cannot write the backup in %s: %s; nothing was changed" % (folder, exc),
                                     **dict(result, changed=bool(pending), commands=[]))
    restart = plan.restart_required
    earlier_change = change_text(directory)

    def put_back_records():
        """The records as they were before this run: the server is as it was."""
        try:
            put_back_change(directory, earlier_change)
            if restart:
                if pending:
                    write_pending(directory, pending)
                else:
                    clear_pending(directory)
        except OSError:
            pass

    def put_back(why):
        put_back_records()
        module.fail_json(msg=why, **dict(result, changed=bool(pending), commands=[]))

    if restart:
        # before the first write: a run killed after it still leaves the record
        try:
            record_pending(directory, plan.changes(), {key: sha256_text(plan.keys[key]) for key in MANAGED_KEYS
                                                       if key in plan.keys}, run=run)
        except OSError as exc:
            put_back("cannot write the pending-apply record in %s: %s; nothing was changed" % (directory, exc))
    # what takes the change back (ovpnas.fleet.server_restore), with what it leaves live, before the first write:
    # a change whose undo cannot be kept is not made
    try:
        record_change(directory, plan.planned_undo(), {key: sha256_text(value) for key, value in plan.keys.items()},
                      extend=bool(pending), users=plan.users_written())
    except OSError as exc:
        put_back("cannot record what takes the change back in %s: %s; nothing was changed" % (directory, exc))
    try:
        plan.apply()
    except SacliError as exc:
        not_undone = getattr(exc, "not_undone", [])
        if not not_undone:
            # the server is as it was: only an earlier change (if any) still waits for start, and is the last one
            put_back_records()
        exc.msg = "%s; %s" % (exc.msg, "the writes made before it were undone" if not not_undone
                              else "undoing the writes made before it failed for %s" % ", ".join(not_undone))
        # the server is as it was, or holds writes that could not be undone and that a start must apply
        fail_from_error(module, exc, **dict(result, changed=bool(not_undone), restart_required=bool(not_undone),
                                            commands=plan.runner.commands))
    result["commands"] = plan.runner.commands
    return backups
