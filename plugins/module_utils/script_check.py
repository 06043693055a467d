# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Prove a post-auth script on the managed host before it is loaded.

The script is compiled the way Access Server compiles it (from its text, as ``<string>``)
by every interpreter it may run under, then the policy harness runs the policy cases
against it with the interpreter that Access Server uses. Everything is staged in a private
folder the caller gives (mode 0700, files 0600) and removed with it.
"""

from __future__ import annotations

import json
import os

COMPILE = "import sys; compile(open(sys.argv[1], 'rb').read().decode('utf-8'), '<string>', 'exec')"


class ScriptCheckError(Exception):
    """The script did not compile or a policy case failed; ``msg`` says which, without secrets."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def _stage(directory, name, text):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
    return path


def _first_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def check_script(module, directory, content, python, interpreters, harness, cases):
    """Compile ``content`` with ``python`` and each of ``interpreters``, then run ``cases``.

    The files are staged in ``directory``, a private folder. Returns {interpreters: [...],
    cases_passed: n}; raises ScriptCheckError otherwise.
    """
    every = [python] + [i for i in interpreters if i != python]
    for interpreter in every:
        found = os.access(interpreter, os.X_OK) if os.path.isabs(interpreter) else module.get_bin_path(interpreter)
        if not interpreter or not found:
            raise ScriptCheckError(
                "the interpreter %r that must compile the post-auth script is not on the server (post_auth.python, "
                "post_auth.validate_interpreters; in the post_auth role post_auth_python, "
                "post_auth_validate_interpreters)" % interpreter[:80], interpreter=interpreter[:80])
    script = _stage(directory, "post_auth.py", content)
    compiled = []
    for interpreter in every:
        rc, _out, err = module.run_command([interpreter, "-c", COMPILE, script], check_rc=False)
        if rc != 0:
            raise ScriptCheckError(
                "the post-auth script does not compile with %s: %s" % (interpreter, _first_line(err) or "exit %s" % rc),
                interpreter=interpreter, rc=rc)
        compiled.append(interpreter)
    passed = 0
    if harness:
        runner = _stage(directory, "policy_harness.py", harness)
        case_file = _stage(directory, "cases.json", json.dumps(cases or []))
        rc, out, err = module.run_command([python, runner, script, case_file], check_rc=False)
        try:
            report = json.loads(out)
        except ValueError:
            raise ScriptCheckError("the policy harness did not run with %s: %s" % (python, _first_line(err)),
                                   rc=rc) from None
        if rc != 0:
            raise ScriptCheckError("a policy case failed: %s" % "; ".join(report.get("summary") or ["exit %s" % rc]),
                                   rc=rc, policy=report)
        passed = report.get("passed", 0)
    return dict(interpreters=compiled, cases_passed=passed)
