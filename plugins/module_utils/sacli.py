# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one runner every ovpnas.fleet module uses to talk to ``sacli``.

* ``sacli`` runs without a shell, with ``LC_ALL=C``, under a timeout;
* every value travels in a private (0600) temporary file passed with
  ``--value_file``, removed afterwards: no value is ever on a command line;
* every command is recorded (in a form that names keys, never values);
* output is parsed defensively: JSON that does not parse, a non-zero exit or
  a timeout raise typed errors that carry cmd, rc, stdout and stderr.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tempfile

DEFAULT_SACLI = "/usr/local/openvpn_as/scripts/sacli"
POST_AUTH_KEY = "auth.module.post_auth_script"
APP_VERIFY_KEY = "vpn.client.app_verify"
# the keys that hold whole files, managed as such (backed up, compared by content, recorded when applied)
MANAGED_KEYS = (POST_AUTH_KEY, APP_VERIFY_KEY)
VALUE_FILE_PLACEHOLDER = "<private file>"
TIMEOUT_RC = 124

# Severities in the `errors` object of `start` that report, not fail.
INFORMATIONAL_SEVERITIES = frozenset(("info", "debug", "notice"))
SERVICE_UP = frozenset(("on", "restarted"))


def sacli_argument_spec():
    """Options shared by all modules (documented in the ovpnas.fleet.sacli doc fragment)."""
    return dict(
        sacli_path=dict(type="path", default=DEFAULT_SACLI),
        sacli_timeout=dict(type="int", default=60),
    )


# --- errors -------------------------------------------------------------------


class SacliError(Exception):
    """A sacli call failed; carries what is needed to understand why."""

    def __init__(self, msg, cmd=None, rc=None, stdout=None, stderr=None):
        super().__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def as_dict(self):
        result = dict(msg=self.msg)
        for name in ("cmd", "rc", "stdout", "stderr"):
            value = getattr(self, name)
            if value is not None:
                result[name] = value
        return result


class SacliArgumentError(SacliError):
    """A key or user name that cannot be given to sacli as it is; nothing was run."""


class SacliNotFoundError(SacliError):
    """sacli is not at the configured path."""


class SacliCommandError(SacliError):
    """sacli exited non-zero."""


class SacliTimeoutError(SacliError):
    """sacli did not finish within the timeout and was killed."""


class SacliOutputError(SacliError):
    """sacli printed something other than what the command prints."""


# --- values -----------------------------------------------------------------


def to_sacli_string(value, name="value"):
    """Turn a YAML scalar into the string sacli stores.

    Booleans become ``true``/``false`` (the spelling Access Server uses),
    numbers their decimal text.  Anything else is refused, so that a list or
    a mapping never lands in the database as its Python repr.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError("%s must be a string, number or boolean, not %s" % (name, type(value).__name__))


def key_problem(key):
    """Why ``key`` cannot be a configuration key, or None: keys are non-empty and hold no white space."""
    if not key or key != key.strip() or any(c.isspace() for c in key):
        return "invalid configuration key %r: keys are non-empty and contain no whitespace" % key
    return None


def same_value(current, desired):
    """Compare a stored value with a desired one.

    Whether sacli keeps trailing newlines of ``--value_file`` content is not
    known, so values that differ only in trailing newlines are equal.
    """
    if current is None or desired is None:
        return current is desired
    return current == desired or current.rstrip("\r\n") == desired.rstrip("\r\n")


def withheld(output, limit=200):
    """Output of a read that may hold secrets, made safe to put in an error."""
    if not output:
        return output
    text = output.strip()
    if len(text) <= limit and not text.startswith(("{", '"', "[")):
        return output
    return "<%d bytes withheld: this output may hold secrets>" % len(output)


# --- parsing ------------------------------------------------------------------


def parse_json_object(out, cmd=None, rc=None, err=None, what="sacli"):
    """Parse output that must be one JSON object (ConfigQuery, UserPropGet, status)."""
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise SacliOutputError("%s printed output that is not JSON: %s" % (what, exc), cmd, rc, out, err) from exc
    if not isinstance(data, dict):
        raise SacliOutputError("%s printed JSON that is not an object" % what, cmd, rc, out, err)
    return data


def parse_start_output(out, cmd=None, rc=None, err=None):
    """Parse what `sacli start` prints.

    Known variants: ``RunStart warm None``, a JSON object and a
    ``WILL_RESTART [...]`` line; or the JSON object alone.  Returns a dict
    with ``run_start`` (the word after RunStart, or None), ``result`` (the
    JSON object) and ``will_restart`` (a list, or None when not printed).
    """
    text = out or ""
    decoder = json.JSONDecoder()
    match = re.search(r"^[ \t]*\{", text, re.MULTILINE)
    if match is None:
        raise SacliOutputError("sacli start printed no JSON object", cmd, rc, out, err)
    start = text.index("{", match.start())
    try:
        result, end = decoder.raw_decode(text, start)
    except ValueError as exc:
        raise SacliOutputError(
            "sacli start printed a JSON object that does not parse: %s" % exc, cmd, rc, out, err
        ) from exc
    if not isinstance(result, dict):
        raise SacliOutputError("sacli start printed JSON that is not an object", cmd, rc, out, err)
    if not isinstance(result.get("errors", {}), dict) or not isinstance(result.get("service_status", {}), dict):
        raise SacliOutputError("sacli start printed an object without the expected fields", cmd, rc, out, err)

    run_start = None
    head = re.search(r"^RunStart[ \t]+(\S+)", text[:start], re.MULTILINE)
    if head:
        run_start = head.group(1)
    will_restart = None
    tail = re.search(r"^WILL_RESTART[ \t]+(.*?)[ \t]*$", text[end:], re.MULTILINE)
    if tail:
        try:
            parsed = ast.literal_eval(tail.group(1))
        except (ValueError, SyntaxError):
            parsed = [tail.group(1)]
        will_restart = [str(item) for item in parsed] if isinstance(parsed, (list, tuple, set)) else [str(parsed)]
    return dict(run_start=run_start, result=result, will_restart=will_restart)


def split_start_errors(errors):
    """Split the `errors` object of start/status into (fatal, informational).

    Entries are lists of ``[severity, message]`` pairs per service; entries
    whose severity is info/debug/notice only report.  Any other shape counts
    as an error, so an unknown format never hides a failure.
    """
    fatal, info = {}, {}
    for service, entries in (errors or {}).items():
        items = entries if isinstance(entries, list) else [entries]
        for entry in items:
            severity = None
            if isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str):
                severity = entry[0].lower()
            target = info if severity in INFORMATIONAL_SEVERITIES else fatal
            target.setdefault(service, []).append(entry)
    return fatal, info


def services_not_up(status):
    """Services of a status object that are neither on nor just restarted."""
    services = status.get("service_status")
    if not isinstance(services, dict) or not services:
        return ["<no service_status>"]
    return sorted(name for name, state in services.items() if state not in SERVICE_UP)


# What a write prints when it prints anything: `[True, {}]` (older versions)
WRITE_ANSWER = re.compile(r"^\[\s*True\s*(,.*)?\]$", re.DOTALL)

# --- the runner -----------------------------------------------------------------


# the longest key or user name given to sacli: far above any real one, far below what a command line holds
NAME_LIMIT = 4096


def bad_name(name):
    """Why ``name`` (a configuration key, a user or property name) cannot be given to sacli, or None."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if name.startswith("-"):
        return "starts with '-', which a command would read as an option"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "holds a control character"
    if len(name) > NAME_LIMIT:
        return "is longer than %d characters" % NAME_LIMIT
    return None


def shown_name(name):
    """A name as messages show it: quoted, control characters escaped, at most 60 characters."""
    text = repr(name[:60]) if isinstance(name, str) else repr(name)
    return text + ("..." if isinstance(name, str) and len(name) > 60 else "")


class SacliRunner:
    """Runs sacli for one module invocation and records what it ran."""

    def __init__(self, module, path=None, timeout=None):
        self.module = module
        # where value files are written: the module's private temporary folder, or a staging folder
        self.tmpdir = None
        self.path = path or module.params.get("sacli_path") or DEFAULT_SACLI
        self.timeout = module.params.get("sacli_timeout") if timeout is None else timeout
        self.commands = []
        self._timeout_bin = None
        if self.timeout:
            self._timeout_bin = module.get_bin_path("timeout")

    # building command lines
    @staticmethod
    def options(command, key=None, user=None, pfilt=None, value_file=None):
        argv = []
        if user is not None:
            argv += ["--user", user]
        if key is not None:
            argv += ["--key", key]
        if pfilt is not None:
            argv += ["--pfilt", pfilt]
        if value_file is not None:
            argv.append("--value_file=%s" % value_file)
        argv.append(command)
        return argv

    def describe(self, command, key=None, user=None, pfilt=None, value=False):
        """How a command is shown in results: keys and names, never values."""
        argv = ["sacli"] + self.options(command, key, user, pfilt, VALUE_FILE_PLACEHOLDER if value else None)
        return " ".join(argv)

    def argv(self, command, key=None, user=None, pfilt=None, value_file=None):
        argv = [self.path] + self.options(command, key, user, pfilt, value_file)
        if self._timeout_bin:
            argv = [self._timeout_bin, "--kill-after=5", str(self.timeout)] + argv
        return argv

    def _check_path(self):
        if not os.path.isfile(self.path) or not os.access(self.path, os.X_OK):
            raise SacliNotFoundError(
                "sacli not found or not executable at %s (set sacli_path)" % self.path, cmd=[self.path]
            )

    # running
    def run(self, command, key=None, user=None, pfilt=None, value=None, value_path=None, check=True, record=True):
        """Run one sacli command; return (rc, stdout, stderr).

        ``value`` is written to a private temporary file that is removed
        afterwards; ``value_path`` names an existing file to pass instead.
        """
        self._check_path()
        for what, name in (("key", key), ("user", user), ("user filter", pfilt)):
            why = None if name is None else bad_name(name)
            if why:
                message = "sacli %s: the %s name %s %s; it was not run" % (command, what, shown_name(name), why)
                raise SacliArgumentError(message)
        temp = None
        try:
            if value is not None:
                try:
                    fd, temp = tempfile.mkstemp(prefix="sacli-value-", dir=self.tmpdir or self.module.tmpdir)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(value.encode("utf-8"))
                except OSError as exc:
                    # a full disk, say: a failed call like any other, undone by the caller
                    raise SacliCommandError("cannot write the value file of sacli %s: %s" % (command, exc),
                                            self.describe(command, key, user, pfilt, True)) from None
                value_path = temp
            argv = self.argv(command, key, user, pfilt, value_path)
            try:
                rc, out, err = self.module.run_command(
                    argv,
                    check_rc=False,
                    environ_update=dict(LC_ALL="C", LANG="C", LC_MESSAGES="C"),
                    handle_exceptions=False,
                )
            except (OSError, ValueError) as exc:
                # a failure to run is a failed call like any other: the caller undoes what it wrote before
                raise SacliCommandError("cannot run sacli %s: %s" % (command, exc),
                                        self.describe(command, key, user, pfilt, value_path is not None)) from None
        finally:
            if temp is not None and os.path.exists(temp):
                os.unlink(temp)
        shown = self.describe(command, key, user, pfilt, value_path is not None)
        if record:
            self.commands.append(shown)
        if self._timeout_bin and rc in (TIMEOUT_RC, 128 + 9):
            raise SacliTimeoutError(
                "sacli %s did not finish within %s seconds" % (command, self.timeout), shown, rc, out, err
            )
        if check and rc != 0:
            raise SacliCommandError("sacli %s failed with exit code %s" % (command, rc), shown, rc, out, err)
        return rc, out, err

    # reads
    def _read_object(self, command, pfilt=None):
        """Run a command that prints one JSON object holding settings or properties.

        Such output holds secrets (bind passwords, the post-auth script), so
        when the command fails, its stdout is withheld from the error unless it
        is short and does not look like JSON.
        """
        shown = self.describe(command, pfilt=pfilt)
        try:
            rc, out, err = self.run(command, pfilt=pfilt, record=False)
            return parse_json_object(out, shown, rc, err, what=shown)
        except SacliError as exc:
            exc.stdout = withheld(exc.stdout)
            raise

    def config_query(self):
        config = self._read_object("ConfigQuery")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}

    def userprop_get(self, pfilt=None):
        data = self._read_object("UserPropGet", pfilt=pfilt)
        return {name: props if isinstance(props, dict) else {} for name, props in data.items()}

    def status(self):
        rc, out, err = self.run("status", record=False)
        return parse_json_object(out, "sacli status", rc, err, what="sacli status")

    def version(self):
        return self.run("Version", record=False)[1].strip()

    # writes
    def write(self, command, **options):
        """Run a write: it answers with nothing (newer versions) or ``[True, {...}]`` (older ones).

        Anything else (an error page from a broken server, say) is not known to have written,
        so it fails like a non-zero exit.
        """
        rc, out, err = self.run(command, **options)
        if out.strip() and not WRITE_ANSWER.match(out.strip()):
            shown = self.describe(command, options.get("key"), options.get("user"), None,
                                  options.get("value") is not None or options.get("value_path") is not None)
            raise SacliOutputError("sacli %s printed an answer that is not a write's" % command, shown, rc,
                                   out[:200], err)

    def config_put(self, key, value=None, value_path=None):
        self.write("ConfigPut", key=key, value=value, value_path=value_path)

    def config_del(self, key):
        self.write("ConfigDel", key=key)

    def userprop_put(self, user, key, value):
        self.write("UserPropPut", key=key, user=user, value=value)

    def userprop_del(self, user, key):
        self.write("UserPropDel", key=key, user=user)

    def userprop_del_all(self, user):
        self.write("UserPropDelAll", user=user)

    def start(self):
        """Run `start`; return the parsed output.  Raises on a non-zero exit."""
        rc, out, err = self.run("start", check=False)
        if rc != 0:
            raise SacliCommandError("sacli start failed with exit code %s" % rc, "sacli start", rc, out, err)
        return parse_start_output(out, "sacli start", rc, err)


def fail_from_error(module, error, **result):
    """fail_json with everything a SacliError carries."""
    details = error.as_dict()
    msg = details.pop("msg")
    details.update(result)
    module.fail_json(msg=msg, **details)
