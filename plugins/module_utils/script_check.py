# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Prove a post-auth script on the managed host before it is loaded.

The one check of a script before it is loaded, whichever module loads it: the script is compiled the way
Access Server compiles it (from its text, as ``<string>``) by every interpreter it may run under and must
define ``post_auth`` or ``post_auth_cr``; then the policy harness runs the policy cases against it with the
interpreter that Access Server uses. Everything is staged in a private
folder the caller gives (mode 0700, files 0600) and removed with it.
"""

from __future__ import annotations

import json
import os

# Runs in every interpreter the script must compile with (as old as Python 3.6): compiles the script the way
# Access Server does (from its text, as <string>) and finds an entry point; prints one JSON object.
VALIDATOR = r"""
import ast, json, sys
result = {"python_version": "%d.%d.%d" % sys.version_info[:3]}
try:
    with open(sys.argv[1], "rb") as handle:
        text = handle.read().decode("utf-8")
    tree = compile(text, "<string>", "exec", ast.PyCF_ONLY_AST)
    compile(tree, "<string>", "exec")
except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
    result["error"] = "%s: %s" % (type(exc).__name__, exc)
else:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if not names & {"post_auth", "post_auth_cr"}:
        result["error"] = "the script defines neither post_auth nor post_auth_cr"
print(json.dumps(result))
"""


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


def _last_line(text):
    """The last line that is not empty: where a traceback names its error."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def check_script(module, directory, content, python, interpreters=(), harness=None, cases=None,
                 options="post_auth.python, post_auth.validate_interpreters; in the post_auth role post_auth_python, "
                         "post_auth_validate_interpreters"):
    """Compile ``content`` with ``python`` and each of ``interpreters``, then run ``cases`` (with a ``harness``).

    The files are staged in ``directory``, a private folder. Returns {interpreters: [...], versions:
    {interpreter: Python version}, cases_passed: n}; raises ScriptCheckError otherwise. ``options``
    names where the interpreters come from, for the message that one is missing.
    """
    every = [python] + [i for i in interpreters if i != python]
    for interpreter in every:
        found = os.access(interpreter, os.X_OK) if os.path.isabs(interpreter) else module.get_bin_path(interpreter)
        if not interpreter or not found:
            raise ScriptCheckError(
                "the interpreter %r that must compile the post-auth script is not on the server (%s)"
                % (interpreter[:80], options), interpreter=interpreter[:80])
    script = _stage(directory, "post_auth.py", content)
    compiled, versions = [], {}
    for interpreter in every:
        rc, out, err = module.run_command([interpreter, "-I", "-c", VALIDATOR, script], check_rc=False)
        try:
            report = json.loads(out)
        except ValueError:
            report = {"error": _last_line(err) or "exit %s" % rc}
        if "error" in report:
            version = " (Python %s)" % report["python_version"] if "python_version" in report else ""
            raise ScriptCheckError("the post-auth script does not compile with %s%s: %s"
                                   % (interpreter, version, report["error"]), interpreter=interpreter, rc=rc)
        compiled.append(interpreter)
        versions[interpreter] = report.get("python_version")
    passed = 0
    if harness:
        runner = _stage(directory, "policy_harness.py", harness)
        case_file = _stage(directory, "cases.json", json.dumps(cases or []))
        rc, out, err = module.run_command([python, runner, script, case_file], check_rc=False)
        try:
            report = json.loads(out)
        except ValueError:
            raise ScriptCheckError("the policy harness did not run with %s: %s" % (python, _last_line(err)),
                                   rc=rc) from None
        if rc != 0:
            raise ScriptCheckError("a policy case failed: %s" % "; ".join(report.get("summary") or ["exit %s" % rc]),
                                   rc=rc, policy=report)
        passed = report.get("passed", 0)
    return dict(interpreters=compiled, versions=versions, cases_passed=passed)
