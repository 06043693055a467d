# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's root-only folder on the server: lock, pending-apply record, staging, backups.

Everything lives under ``etc/ovpnas_fleet`` of the Access Server folder (found from the sacli
path), mode 0700, files 0600:

* ``lock``: a run holds it (flock) from its read to its last write, so two runs never mix;
* ``pending_apply.json``: written before a change that needs ``sacli start``, removed only
  after a start with every service up (or, for a gated start, after its gate passed), so a
  failed, skipped or ungated start is never forgotten;
* ``staging/``: private copies of what a run tests or loads, removed when the run ends, and by
  the next run when a killed run left them behind;
* ``backups/``: the previous script and query file;
* ``last_change.json`` and ``applied.json``: see ``last_change.py``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import sha256_text


class LockTimeoutError(Exception):
    """Another run holds the server's lock."""


def as_folder(sacli_path):
    """The Access Server folder that holds ``scripts/sacli``, from sacli's real path: a link to sacli
    elsewhere (``/usr/local/bin/sacli``) names the same folder, and so the same lock and records."""
    return os.path.dirname(os.path.dirname(os.path.realpath(sacli_path)))


def fleet_dir(sacli_path):
    """``etc/ovpnas_fleet`` of the Access Server folder that holds ``scripts/sacli``."""
    return os.path.join(as_folder(sacli_path), "etc", "ovpnas_fleet")


def _as_conf(sacli_path, name):
    """The value of ``name`` in etc/as.conf of the Access Server that holds ``scripts/sacli`` (its last line of
    that name), or None."""
    found = None
    try:
        with open(os.path.join(as_folder(sacli_path), "etc", "as.conf")) as handle:
            for line in handle:
                key, sep, value = line.partition("=")
                if sep and key.strip() == name and value.strip():
                    found = value.strip()
    except (OSError, UnicodeDecodeError):
        pass
    return found


def agent_socket(sacli_path):
    """The agent socket of the Access Server that holds ``scripts/sacli`` (``sa.sock`` of etc/as.conf).

    ``~`` in as.conf stands for its folder; without a readable as.conf, ``etc/sock/sagent``.
    """
    etc = os.path.join(as_folder(sacli_path), "etc")
    path = _as_conf(sacli_path, "sa.sock") or "~/sock/sagent"
    return os.path.join(etc, path[2:]) if path.startswith("~/") else path


def _machine():
    """This machine's id (/etc/machine-id) and host name: two servers cloned from one image differ by the second."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as handle:
                return "%s/%s" % (handle.read().strip(), socket.gethostname())
        except OSError:
            continue
    return socket.gethostname()


def database_identity(sacli_path):
    """Which configuration database the Access Server that holds ``scripts/sacli`` uses (``config_db`` of
    etc/as.conf), or None where it cannot be told.

    A database server (a cluster's MySQL) is named by its scheme, host and database, never its credentials; an
    SQLite file by this machine and the file's real path, device and inode. Nodes of one cluster name one database;
    one server reached under two inventory names names one database twice.
    """
    value = _as_conf(sacli_path, "config_db")
    scheme, sep, rest = (value or "").partition("://")
    if not sep:
        return None
    if scheme.lower().startswith("sqlite"):
        path = rest[1:] if rest.startswith("/") else rest
        etc = os.path.join(as_folder(sacli_path), "etc")
        path = os.path.join(etc, path[2:]) if path.startswith("~/") else os.path.join(etc, path)
        path = os.path.realpath(path)
        try:
            info = os.stat(path)
        except OSError:
            return None
        return "sqlite on %s: %s (%d:%d)" % (_machine(), path, info.st_dev, info.st_ino)
    location, _sep, database = rest.partition("/")
    return "%s://%s/%s" % (scheme.lower(), location.rpartition("@")[2].lower(), database.partition("?")[0])


def standby_reason(sacli_path):
    """Why sacli cannot reach the services of an installed Access Server whose agent socket is missing (a
    failover standby), or None: anything else (no Access Server there, no sacli) is a failure, not a standby."""
    sacli = os.path.realpath(sacli_path)
    if not (os.path.isfile(sacli) and os.path.isfile(os.path.join(as_folder(sacli_path), "etc", "as.conf"))):
        return None
    sock = agent_socket(sacli_path)
    if os.path.exists(sock):
        return None
    return ("the Access Server agent socket %s does not exist: the services do not run on this node "
            "(a failover standby, or stopped)" % sock)


def private_dir(path):
    """Create ``path`` (and its parents) owner-only, or make an existing one owner-only."""
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path, text):
    """Write ``text`` to ``path`` (mode 0600) through a temporary file and a rename."""
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


class HostLock:
    """flock on ``DIR/lock``: exclusive for a run that writes, shared for one that only reads."""

    def __init__(self, directory, timeout, exclusive=True):
        self.path = os.path.join(private_dir(directory), "lock")
        self.timeout = timeout
        self.exclusive = exclusive
        self.handle = None

    def holder(self):
        try:
            with open(self.path) as handle:
                info = json.loads(handle.read() or "{}")
        except (OSError, ValueError):
            return "another run"
        return "another run (pid %s on %s) since %s" % (info.get("pid"), info.get("host"), info.get("since"))

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.handle = os.fdopen(fd, "r+")
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, mode | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    self.handle.close()
                    raise LockTimeoutError("%s holds the lock %s; gave up after %s seconds"
                                           % (holder, self.path, self.timeout)) from None
                time.sleep(0.2)
        if self.exclusive:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
            self.handle.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def write_backup(directory, what, text):
    """Save ``text`` as ``directory/<what>.<UTC time>.<sha256 prefix>.<ext>`` (mode 0600); return the path.

    ``what`` is a name with its extension, such as ``post_auth_script.py``.
    """
    stem, ext = os.path.splitext(what)
    digest = sha256_text(text)[:12]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(private_dir(directory), "%s.%s.%s%s" % (stem, stamp, digest, ext))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
    return path


PENDING = "pending_apply.json"


def read_pending(directory):
    """The pending-apply record, or None; a record that cannot be read still counts as pending."""
    path = os.path.join(directory, PENDING)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return {"since": "unknown"}


def write_pending(directory, record):
    """Write ``record`` as the pending-apply record (mode 0600)."""
    write_private(os.path.join(private_dir(directory), PENDING), json.dumps(record, sort_keys=True))


def record_pending(directory, changes, sha256=None, run=None):
    """Note that ``changes`` (names of keys and users) await `sacli start`; keeps earlier ones.

    ``sha256`` maps the script and query file keys written to the sha256 of what is now live;
    ``run`` names the controller run that made a new record (an earlier record keeps its own).
    """
    record = read_pending(directory)
    if record is None:
        record = {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "changes": []}
        if run:
            record["run"] = run
    record["changes"] = sorted(set(record.get("changes", [])) | set(changes))
    record["sha256"] = dict(record.get("sha256") or {}, **(sha256 or {}))
    write_pending(directory, record)
    return record


def clear_pending(directory):
    try:
        os.unlink(os.path.join(directory, PENDING))
        return True
    except OSError:
        return False


def staging(directory, clean):
    """A new private folder under ``DIR/staging``.

    With ``clean`` (the exclusive lock held: no other run can be using one), the folders a
    killed run left there are removed first.
    """
    root = private_dir(os.path.join(directory, "staging"))
    if clean:
        for name in os.listdir(root):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return tempfile.mkdtemp(dir=root)
