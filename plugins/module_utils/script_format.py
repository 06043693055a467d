# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The formats of the texts the collection loads into a server, shared by every module that reads them.

* the post-auth script: its ``# ovpnas.fleet.<field>: value`` header, its seal (the last line, the
  sha256 of the lines above it), and the marker at the end of the lines that hold secrets
  (``# ovpnas.fleet.secret``), by which results mask them;
* the host-checker query file (``vpn.client.app_verify``): one ``[PLATFORM:]NAME=REGEX`` per app;
* the sha256 of a stored text, the way the collection compares and records them.
"""

from __future__ import annotations

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


# The last line of a generated script: the sha256 of everything above it. A script whose seal
# holds is exactly what its identity line says it is, so an equal identity needs no rendering.
SEAL = "# ovpnas.fleet.sha256: "
IDENTITY = "# ovpnas.fleet.identity: "


def seal(text):
    """``text`` (ending with a newline) with its seal appended."""
    if not text.endswith("\n"):
        text += "\n"
    return "%s%s%s\n" % (text, SEAL, hashlib.sha256(text.encode("utf-8")).hexdigest())


def sealed_identity(text):
    """The identity a generated script declares, if its seal holds; None for any other text."""
    if not text:
        return None
    body, sep, last = text.rstrip("\n").rpartition("\n")
    if not sep or not last.startswith(SEAL):
        return None
    body += "\n"
    if last[len(SEAL):].strip() != hashlib.sha256(body.encode("utf-8")).hexdigest():
        return None
    for line in body.splitlines()[:20]:
        if line.startswith(IDENTITY):
            return line[len(IDENTITY):].strip() or None
    return None


SECRET_MARKER = "# ovpnas.fleet.secret"


def secret_lines(text):
    """What the lines of a script that carry the secret marker hold, for ``no_log_values``.

    Secrets are rendered into scripts as Python literals (quotes escaped), which masking by
    value does not find; masking what the marked line holds does, wherever the script is quoted.
    """
    found = []
    for line in (text or "").split("\n"):
        line = line.rstrip()
        if line.endswith(SECRET_MARKER) and line[:-len(SECRET_MARKER)].strip():
            found.append(line[:-len(SECRET_MARKER)].strip())
    return found


def mask_secret_lines(text):
    """A script as it may be shown: every line that carries the secret marker reads ``********``.

    ``no_log_values`` (see ``hide_secrets``) cannot mask these lines alone: a line can hold several
    secrets, some of them escaped in their Python literals, and once Ansible has masked one of them
    by value, the line no longer matches and the escaped ones would show. Replacing the marked
    lines whole, before the script goes into a result, hides them whatever else is registered.
    """
    if not text or SECRET_MARKER not in text:
        return text
    lines = []
    for line in text.split("\n"):
        if line.rstrip().endswith(SECRET_MARKER):
            line = "%s******** %s" % (line[:len(line) - len(line.lstrip())], SECRET_MARKER)
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
