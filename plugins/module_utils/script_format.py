# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The formats of the texts the collection loads into a server, shared by every module that reads them.

* the post-auth script: its ``# ovpnas.fleet.<field>: value`` header, its seal (the last line, the
  sha256 of the lines above it), its identity (what it does: the sha256 of its text without those
  lines), and the marker at the end of the lines that hold secrets (``# ovpnas.fleet.secret``), by
  which results mask them;
* the host-checker query file (``vpn.client.app_verify``): one ``[PLATFORM:]NAME=REGEX`` per app;
* the sha256 of a stored text, the way the collection compares and records them.
"""

from __future__ import annotations

import ast
import hashlib
import re

HEADER_FIELD = re.compile(r"^#\s*ovpnas\.fleet\.([A-Za-z0-9_]+):\s*(.*?)\s*$")
QUERY_FILE_LINE = re.compile(r"^(?:(?P<platform>win|mac|all):)?(?P<name>[A-Za-z0-9_]+)=(?P<regex>.*)$")


def sha256_text(text):
    """sha256 of a stored text, after the same trailing-newline normalisation."""
    if text is None:
        return None
    return hashlib.sha256(text.rstrip("\r\n").encode("utf-8")).hexdigest()


def parse_script_header(text):
    """The ``# ovpnas.fleet.<field>: value`` lines of a generated script's header."""
    fields = {}
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        match = HEADER_FIELD.match(stripped)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


# The last line of a generated script: the sha256 of everything above it, a check against hand edits.
SEAL = "# ovpnas.fleet.sha256: "
IDENTITY = "# ovpnas.fleet.identity: "
# A line that records how a script came to be (who wrote it, from what, with which version), not what it does
FIELD_LINE = re.compile(r"^#\s*ovpnas\.fleet\.[A-Za-z0-9_]+:")


def script_identity(text):
    """What a script does, as a sha256: its text without its ``# ovpnas.fleet.<field>:`` lines; None for no script.

    The header fields (the collection version that wrote it, the settings' and cases' digests, the
    identity itself) and the seal say how the script came to be: two scripts that differ only there
    behave the same, so a server that runs either needs no write and no restart. Every other line
    counts, comments included: a script whose text changes is loaded again.
    """
    if text is None:
        return None
    kept = [line for line in text.rstrip("\r\n").split("\n") if not FIELD_LINE.match(line)]
    return hashlib.sha256("\n".join(kept).encode("utf-8")).hexdigest()


def with_identity(text):
    """A rendered script (ending with a newline) with the value of its identity line filled in, then sealed.

    ``text`` holds the line ``# ovpnas.fleet.identity: `` (without a value) once.
    """
    if text.count("\n" + IDENTITY.rstrip() + "\n") != 1:
        raise ValueError("the script must hold the line %r once" % IDENTITY.rstrip())
    filled = text.replace("\n" + IDENTITY.rstrip() + "\n", "\n%s%s\n" % (IDENTITY, script_identity(text)))
    return seal(filled)


def script_diff(live, wanted, limit=60, names=()):
    """The lines in which two scripts differ, as a unified diff (``-`` live, ``+`` wanted, one line of context).

    Both are shown as results may show a script (``mask_secret_lines``, with the secret assignments
    ``names``), without their ``# ovpnas.fleet.<field>:`` lines, which their identity leaves out too; at
    most ``limit`` lines, then how many more there are.
    """
    import difflib

    def lines(text):
        return [line for line in (mask_secret_lines(text or "", names) or "").rstrip("\r\n").split("\n")
                if not FIELD_LINE.match(line)]

    found = [line for line in difflib.unified_diff(lines(live), lines(wanted), lineterm="", n=1)
             if not line.startswith(("--- ", "+++ "))]
    if len(found) > limit:
        found = found[:limit] + ["... %d more lines" % (len(found) - limit)]
    return found


def seal(text):
    """``text`` (ending with a newline) with its seal appended."""
    if not text.endswith("\n"):
        text += "\n"
    return "%s%s%s\n" % (text, SEAL, hashlib.sha256(text.encode("utf-8")).hexdigest())


def sealed(text):
    """Whether ``text`` ends with a seal that holds: it is exactly as the collection wrote it."""
    if not text:
        return False
    body, sep, last = text.rstrip("\n").rpartition("\n")
    if not sep or not last.startswith(SEAL):
        return False
    body += "\n"
    return last[len(SEAL):].strip() == hashlib.sha256(body.encode("utf-8")).hexdigest()


SECRET_MARKER = "# ovpnas.fleet.secret"
# an assignment to a plain name, as an own script keeps a secret (``SKEY = "..."``)
ASSIGNMENT = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]*)?=(?!=)\s*(?P<value>.*)$")


def _assigned(line, names):
    """Where ``line`` assigns one of ``names`` (``NAME = value``): the start of its value, else None."""
    match = ASSIGNMENT.match(line)
    return match.start("value") if match and match.group("name") in names else None


def secret_lines(text, names=()):
    """What the lines of a script that carry the secret marker hold, for ``no_log_values``.

    Secrets are rendered into scripts as Python literals (quotes escaped), which masking by
    value does not find; masking what the marked line holds does, wherever the script is quoted.
    In an own script, which carries no markers, a string literal assigned to one of ``names`` counts
    the same, as written and as the string it holds (``SKEY = None`` or code holds no secret, and
    registering it would mask every ``None`` of a result).
    """
    found = []
    for line in (text or "").split("\n"):
        line = line.rstrip()
        if line.endswith(SECRET_MARKER) and line[:-len(SECRET_MARKER)].strip():
            found.append(line[:-len(SECRET_MARKER)].strip())
            continue
        start = _assigned(line, names) if names else None
        if start is not None:
            # the literal without a comment after it, else the whole (a "#" inside the string)
            for written in (line[start:].split("#", 1)[0].strip(), line[start:].strip()):
                try:
                    literal = ast.literal_eval(written)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    continue
                if isinstance(literal, str) and literal:
                    found.extend((written, literal))
                    break
    return found


def mask_secret_lines(text, names=()):
    """A script as it may be shown: every line that carries the secret marker reads ``********``.

    ``no_log_values`` (see ``hide_secrets``) cannot mask these lines alone: a line can hold several
    secrets, some of them escaped in their Python literals, and once Ansible has masked one of them
    by value, the line no longer matches and the escaped ones would show. Replacing the marked
    lines whole, before the script goes into a result, hides them whatever else is registered.
    In an own script, the values assigned to ``names`` read ``********`` the same way.
    """
    if not text or (SECRET_MARKER not in text and not names):
        return text
    lines = []
    for line in text.split("\n"):
        start = _assigned(line, names) if names else None
        if line.rstrip().endswith(SECRET_MARKER):
            line = "%s******** %s" % (line[:len(line) - len(line.lstrip())], SECRET_MARKER)
        elif start is not None:
            line = line[:start] + "********"
        lines.append(line)
    return "\n".join(lines)


def query_file_entries(text):
    """The entries of a query file: dicts of platform (``win``, ``mac`` or ``all``), name and regex."""
    entries = []
    for line in (text or "").splitlines():
        match = QUERY_FILE_LINE.match(line.strip())
        if match:
            entries.append(dict(platform=match.group("platform") or "all", name=match.group("name"),
                                regex=match.group("regex")))
    return entries
