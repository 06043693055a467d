# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The identities of rendered post-auth scripts, kept on the controller by what renders them.

A script's identity is the sha256 of what it does (``script_format.script_identity``), so it is
known only once the script is rendered. Rendering costs far more than the one read a server that is
already right costs, so the identity is kept here, under a key that covers everything the rendering
depends on (the templates, the code that renders them, the ansible-core and Jinja2 versions, the
settings). A new collection or ansible-core changes the key: the script is rendered once more, on
the controller, and its identity found equal where nothing it does changed, without a write.

One small file per key, in ``ANSIBLE_HOME/ovpnas_fleet/identities`` (mode 0700, files 0600); no
file holds a secret, only two sha256 digests (its name and its content). Ansible runs each task of
each host in a process of its own: a lock per key lets the first of them render while the others
wait for its answer, instead of all rendering the same script at once. Where the folder cannot be
used, every identity is computed, which costs time and nothing else.
"""

from __future__ import annotations

import fcntl
import os
import re

DIGEST = re.compile(r"^[0-9a-f]{64}$")


def default_dir():
    from ansible import constants as C

    return os.path.join(C.config.get_config_value("ANSIBLE_HOME"), "ovpnas_fleet", "identities")


def _read(path):
    try:
        with open(path) as handle:
            value = handle.read().strip()
    except OSError:
        return None
    return value if DIGEST.match(value) else None


def identity(key, compute, directory=None):
    """The identity kept under ``key`` (a sha256), else ``compute()``'s, which is then kept."""
    if not DIGEST.match(key):
        raise ValueError("an identity is kept under a sha256, not %r" % key)
    directory = directory or default_dir()
    path = os.path.join(directory, key)
    found = _read(path)
    if found:
        return found
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return compute()
    try:
        # the file is its own lock: whoever holds it writes it, the others wait and read what was written
        fcntl.flock(fd, fcntl.LOCK_EX)
        found = os.read(fd, 200).decode("ascii", "replace").strip()
        if DIGEST.match(found):
            return found
        found = compute()
        if not DIGEST.match(found or ""):
            raise ValueError("an identity is a sha256, not %r" % (found,))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (found + "\n").encode("ascii"), 0)
        except OSError:
            # not kept (a full disk, say): the next run computes it again
            pass
        return found
    finally:
        os.close(fd)
