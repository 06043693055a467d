# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Module files of this collection that a killed run left on the server.

Without pipelining, Ansible copies each module with its arguments (``AnsiballZ_NAME.py`` in an
``ansible-tmp-*`` folder of its remote_tmp) and removes the folder when the task ends. A run that
is killed (SIGTERM, SIGKILL) may never remove it, and the arguments of this collection's modules
can hold secrets (a Duo secret key, a bind password, a TOTP seed). Such a folder is a leftover when
it holds a module of this collection, no process uses it (its path in a command line or working
folder), and its module file is older than ``MIN_AGE`` seconds (a run copies a module just before it
starts it).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import time
import zipfile

MIN_AGE = 120
COLLECTION = "ansible_collections/ovpnas/fleet/"
FOLDER = re.compile(r"^ansible-tmp-[0-9.]+-[0-9]+-[0-9]+$")
MODULE_FILE = re.compile(r"^AnsiballZ_\w+\.py$")
# the module's code, base64 in the wrapper: ZIPDATA = '...' (ansible-core 2.17, 2.18), zip_data='...' (2.19 on)
ZIP_DATA = re.compile(rb"""(?:ZIPDATA = |zip_data=)[rb]?['"]([A-Za-z0-9+/=]+)['"]""")


def ours(path):
    """Whether the Ansible module file ``path`` carries a module of this collection."""
    try:
        with open(path, "rb") as handle:
            match = ZIP_DATA.search(handle.read())
        if match is None:
            return False
        names = zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1)))).namelist()
    except (OSError, ValueError, binascii.Error, zipfile.BadZipFile):
        return False
    return any(name.startswith(COLLECTION) for name in names)


def in_use(proc="/proc"):
    """The command lines and working folders of every process that can be read."""
    used = []
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
                used.append(handle.read().replace(b"\0", b" ").decode("utf-8", "replace"))
        except OSError:
            pass
        try:
            used.append(os.readlink(os.path.join(proc, pid, "cwd")) + "/")
        except OSError:
            pass
    return used


def stale_module_folders(folders, min_age=MIN_AGE, proc="/proc", now=None):
    """The ``ansible-tmp-*`` folders under ``folders`` that are leftovers (see the module's text); none where the
    processes cannot be read, since a folder in use could not be told from a leftover."""
    now = time.time() if now is None else now
    candidates = []
    for top in sorted(set(folders)):
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            folder = os.path.join(top, name)
            if not FOLDER.match(name) or os.path.islink(folder) or not os.path.isdir(folder):
                continue
            try:
                files = [os.path.join(folder, entry) for entry in os.listdir(folder) if MODULE_FILE.match(entry)]
                old = files and all(now - os.lstat(path).st_mtime >= min_age for path in files)
            except OSError:
                continue
            if old and any(ours(path) for path in files):
                candidates.append(folder)
    if not candidates:
        return []
    used = in_use(proc)
    if used is None:
        return []
    return [folder for folder in candidates
            if not any(folder + "/" in text or text.endswith(folder) for text in used)]


def remove_module_leftovers(module, remove):
    """Remove (with ``remove``, else only name) the leftovers of earlier runs in this module's remote_tmp."""
    folders = []
    remote_tmp = getattr(module, "_remote_tmp", None)
    if remote_tmp:
        folders.append(os.path.expanduser(os.path.expandvars(remote_tmp)))
    found = stale_module_folders(folders)
    if remove:
        for folder in found:
            shutil.rmtree(folder, ignore_errors=True)
    return found
