# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running authcli with its password typed at its prompt, never on its command line.

``run_command`` cannot give a child a new session whose controlling terminal is a pty, which is
what a tool that asks with ``getpass`` (it reads /dev/tty) needs; this runner does.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import termios
import time

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import bad_name, shown_name

# seconds to wait for a prompt before typing the password anyway (a tool that reads without asking)
PROMPT_GRACE = 1.0
# text that ends with a colon, maybe followed by blanks: a prompt ("Password: ")
PROMPT = re.compile(rb":[ \t]*\Z")

# a login of a gate (the option ``logins`` of ovpnas.fleet.auth_check, the rollout's canary logins)
LOGIN_OPTIONS = dict(
    name=dict(type="str"),
    user=dict(type="str", required=True),
    password=dict(type="str", no_log=True),
    response=dict(type="str", no_log=True),
    client_info=dict(type="dict"),
    hw_addr=dict(type="str"),
    web=dict(type="bool", default=False),
    expect=dict(
        type="dict",
        apply_defaults=True,
        options=dict(
            status=dict(type="str", choices=["SUCCEED", "FAIL"], default="SUCCEED"),
            group=dict(type="str"),
            reason=dict(type="str"),
        ),
    ),
)
CLIENT_INFO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# a terminal in canonical mode acts on these (end of line, erase, interrupt, end of file...)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SECRET_BYTES = 1024


def login_label(index, login):
    """How messages name a login: its number and its name (or user), shortened, escaped."""
    return "login %d (%s)" % (index + 1, shown_name(login.get("name") or login.get("user") or ""))


def login_problem(login):
    """Why a login (as validated by LOGIN_OPTIONS) cannot be run as given, or None. Never shows a secret."""
    why = bad_name(login["user"])
    if why:
        return "user %s" % why
    if login["hw_addr"] is not None:
        why = bad_name(login["hw_addr"])
        if why:
            return "hw_addr %s" % why
    for option in ("password", "response"):
        value = login[option]
        if value is None:
            continue
        if CONTROL.search(value):
            return "%s must not contain control characters" % option
        if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
            return "%s must be %d bytes at most" % (option, MAX_SECRET_BYTES)
    for name, value in (login["client_info"] or {}).items():
        if not CLIENT_INFO_NAME.match(str(name)):
            return "client_info name %s must be letters, digits and underscores" % shown_name(str(name))
        if not isinstance(value, (str, int, float)):
            return "client_info %s must be a string or a number" % name
    if login["expect"]["group"] is not None and login["expect"]["status"] != "SUCCEED":
        return "expect.group needs expect.status SUCCEED"
    return None


def _take_terminal():
    """In the child, a new session: make its standard input, the pty's slave, the controlling terminal."""
    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError:
        # no controlling terminal: a tool that asks with getpass falls back to standard input, the same pty
        pass


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def run_at_prompt(argv, secret, timeout, env=None):
    """Run ``argv`` on a pseudo-terminal and type ``secret`` at its password prompt.

    The pty's slave is the child's controlling terminal and its standard input, so ``getpass``
    (which reads /dev/tty) and tools that read standard input both get the line; standard output
    and standard error are pipes.  What the child writes to the terminal (the prompt, any echo)
    is read and dropped.  Returns dict(rc, stdout, stderr, timed_out); ``timeout`` 0 means no limit.
    """
    line = secret.encode("utf-8") + b"\n"
    master, slave = os.openpty()
    proc = None
    try:
        try:
            proc = subprocess.Popen(
                argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True,
                start_new_session=True, preexec_fn=_take_terminal,
            )
        finally:
            os.close(slave)
        return _converse(proc, master, line, timeout)
    finally:
        if proc is not None:
            if proc.poll() is None:
                _kill_group(proc)
            proc.stdout.close()
            proc.stderr.close()
        os.close(master)


def _converse(proc, master, line, timeout):
    started = time.monotonic()
    deadline = started + timeout if timeout else None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    captured = {out_fd: [], err_fd: [], master: None}
    tails = dict.fromkeys(captured, b"")
    open_fds = set(captured)
    typed_at_prompt = typed_blind = False
    timed_out = False
    while out_fd in open_fds or err_fd in open_fds:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            timed_out = True
            break
        wait = 0.2 if deadline is None else min(0.2, deadline - now)
        for fd in select.select(sorted(open_fds), [], [], wait)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                # EIO on the master: nobody has the terminal open any more
                data = b""
            if not data:
                open_fds.discard(fd)
                continue
            if captured[fd] is not None:
                captured[fd].append(data)
            tails[fd] = (tails[fd] + data)[-256:]
        if typed_at_prompt:
            continue
        if any(PROMPT.search(tail) for tail in tails.values()):
            # also after a blind line: a prompt that comes later flushed it (getpass does, TCSAFLUSH)
            _type(master, line)
            typed_at_prompt = True
        elif not typed_blind and time.monotonic() - started >= PROMPT_GRACE:
            _type(master, line)
            typed_blind = True
            tails = dict.fromkeys(captured, b"")
    if not timed_out:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc)
    return dict(
        rc=None if timed_out else proc.returncode,
        stdout=b"".join(captured[out_fd]).decode("utf-8", "replace"),
        stderr=b"".join(captured[err_fd]).decode("utf-8", "replace"),
        timed_out=timed_out,
    )


def _type(master, line):
    try:
        os.write(master, line)
    except OSError:
        # the terminal is gone: the tool ended without reading
        pass
