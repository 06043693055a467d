# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The last change a run made on a server, kept so that a rollout can take it back.

``last_change.json`` in the collection's folder (mode 0600 in a 0700 folder: it holds the
previous values, secrets included, like the backups) lists what undoes each write of the last
change, and the sha256 of what it left live, so that a restore can tell whether anything changed
the server since. The last change is everything written since the last ``sacli start`` applied
the configuration: a run that writes while an earlier run's writes still wait for the start
(a pending-apply record) adds its writes to the record, so that a restore takes back what the
start applies. ``applied.json`` records the last ``sacli start`` after
which every service was up, and what it applied.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import (
    clear_pending,
    private_dir,
    read_pending,
    write_pending,
    write_private,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.userprops import put_order

LAST_CHANGE = "last_change.json"
APPLIED = "applied.json"


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read(path):
    """A record, None when there is none, or ValueError when it cannot be read."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            record = json.loads(handle.read())
    except (OSError, ValueError) as exc:
        raise ValueError("cannot read %s: %s" % (path, exc)) from None
    if not isinstance(record, dict):
        raise ValueError("cannot read %s: not a record" % path)
    return record


def record_change(directory, undo, after, extend=False, users=None):
    """Keep ``undo`` ([kind, name, previous] in the order of the writes) and ``after`` ({key: sha256 or None}).

    ``users`` is what the writes left of each user they touched: {property: sha256, None where deleted}, or
    None for a user deleted whole. With ``extend`` (the writes of an earlier run still wait for ``sacli
    start``), the record grows: its undo takes back both runs' writes, the later first, and ``after`` and
    ``users_after`` are what both left live.
    """
    undo = [list(entry) for entry in undo]
    users = dict(users or {})
    since = now()
    if extend:
        try:
            earlier = read_change(directory)
        except ValueError:
            earlier = None
        if earlier:
            undo = list(earlier.get("undo") or []) + undo
            after = dict(earlier.get("after") or {}, **after)
            merged = dict(earlier.get("users_after") or {})
            for name, props in users.items():
                # a user deleted whole, or (re)created: what this run left; else both runs' properties
                merged[name] = props if props is None or merged.get(name) is None else dict(merged[name], **props)
            users = merged
            since = earlier.get("since") or since
    record = {"since": since, "undo": undo, "after": after, "users_after": users}
    write_private(os.path.join(private_dir(directory), LAST_CHANGE), json.dumps(record, sort_keys=True))
    return record


def read_change(directory):
    return _read(os.path.join(directory, LAST_CHANGE))


def change_text(directory):
    """The record as it is on disk (to put back when a change is undone), or None."""
    try:
        with open(os.path.join(directory, LAST_CHANGE), "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def put_back_change(directory, text):
    """Put back the record ``change_text`` returned (None: there was none)."""
    if text is None:
        drop_change(directory)
    else:
        write_private(os.path.join(private_dir(directory), LAST_CHANGE), text)


def drop_change(directory):
    try:
        os.unlink(os.path.join(directory, LAST_CHANGE))
    except OSError:
        pass


def record_applied(directory, record):
    """Note a start after which every service was up, with what it applied (a pending-apply record).

    The sha256 of the script and the query file are kept from earlier starts for a key the change did
    not write: ``applied.json`` names what the last start applied of each.
    """
    earlier = read_applied(directory) or {}
    digests = dict(earlier["sha256"]) if isinstance(earlier.get("sha256"), dict) else {}
    digests.update((record or {}).get("sha256") or {})
    applied = dict(record or {}, applied=now(), sha256=digests)
    write_private(os.path.join(private_dir(directory), APPLIED), json.dumps(applied, sort_keys=True))
    return applied


def settle(module, directory, record=None):
    """The change is applied and passed its checks: note it (the pending record's, else ``record``) in
    ``applied.json`` and remove the pending record; return whether there was one."""
    try:
        record_applied(directory, read_pending(directory) or record)
    except OSError as exc:
        module.warn("cannot note the start in %s: %s" % (directory, exc))
    return clear_pending(directory)


def mark_started(module, directory):
    """Note on the pending record that ``sacli start`` applied it, and keep it until a gate settles it."""
    pending = read_pending(directory)
    if pending is None:
        return False
    try:
        write_pending(directory, dict(pending, started=now()))
    except OSError as exc:
        module.warn("cannot note the start in %s: %s" % (directory, exc))
    return True


def read_applied(directory):
    try:
        return _read(os.path.join(directory, APPLIED))
    except ValueError:
        return None


def undo_writes(runner, undo, error_types):
    """Take back writes, the last first; return (names undone, names whose undo failed)."""
    done, failed = [], []
    for kind, name, previous in reversed(undo):
        try:
            if kind == "key":
                if previous is None:
                    runner.config_del(name)
                else:
                    runner.config_put(name, value=previous)
            elif kind == "delete_user":
                runner.userprop_del_all(name)
            elif kind == "restore_user":
                for key in put_order(previous or {}):
                    runner.userprop_put(name, key, previous[key])
            else:
                key, value = previous
                if value is None:
                    runner.userprop_del(name, key)
                else:
                    runner.userprop_put(name, key, value)
            done.append(name)
        except error_types:
            failed.append(name)
    return done, failed
