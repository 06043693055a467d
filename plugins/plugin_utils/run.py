# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A token that names one run of ansible-playbook (or ansible), for the modules it calls.

Action plugins run in worker processes forked from the run's main process, so the parent's
process id and start time (since boot), with the boot's id, name the run: no other run, now,
later or after a reboot, has all three. Where they cannot be read (no /proc), there is no token,
and the modules behave as if every earlier record came from another run.
"""

from __future__ import annotations

import os
import socket


def controller_run(proc="/proc"):
    """``host:boot:pid:start`` of the run's main process, or None where it cannot be told."""
    return process_token(os.getppid(), proc)


def process_token(pid, proc="/proc"):
    """``host:boot:pid:start`` of process ``pid``, or None where it cannot be told."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            # the fields after the command name, whose parentheses may hold anything
            fields = handle.read().rsplit(")", 1)[1].split()
        start = fields[19]  # starttime, field 22 of proc(5)
        with open(os.path.join(proc, "sys", "kernel", "random", "boot_id")) as handle:
            boot = handle.read().strip()
    except (OSError, IndexError):
        return None
    return "%s:%s:%d:%s" % (socket.gethostname(), boot, int(pid), start)


def live_runs(proc="/proc"):
    """The tokens of the processes of Ansible (``ansible`` on their command line) that run on this controller now:
    a run named by a token that is not among them has ended."""
    tokens = []
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return tokens
    for pid in pids:
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as handle:
                if b"ansible" not in handle.read():
                    continue
        except OSError:
            continue
        token = process_token(pid, proc)
        if token is not None:
            tokens.append(token)
    return sorted(tokens)
