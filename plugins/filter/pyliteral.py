# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pyliteral filter: validated data as Python literal source, and nothing else."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

WIDTH = 100
INDENT = "    "


def _one_line(value, path):
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnsibleFilterError("pyliteral: %s is %r, which has no Python literal" % (path, value))
        return repr(float(value))
    if isinstance(value, str):
        # repr() escapes quotes, backslashes, newlines and every character that is not printable
        # (controls, line and paragraph separators, bidirectional and other format characters,
        # lone surrogates): the result is one line that Python reads back as the same text, in
        # which printable text, accents and other scripts included, stays readable
        return repr(str(value))
    if isinstance(value, Mapping):
        items = []
        for key in _sorted_keys(value, path):
            items.append("%s: %s" % (_one_line(key, path), _one_line(value[key], "%s[%r]" % (path, key))))
        return "{%s}" % ", ".join(items)
    if isinstance(value, (list, tuple)):
        items = [_one_line(item, "%s[%d]" % (path, index)) for index, item in enumerate(value)]
        if isinstance(value, tuple):
            return "(%s)" % (items[0] + "," if len(items) == 1 else ", ".join(items))
        return "[%s]" % ", ".join(items)
    raise AnsibleFilterError(
        "pyliteral: %s is a %s; only str, int, float, bool, None, lists and dicts can be rendered"
        % (path, type(value).__name__)
    )


def _sorted_keys(mapping, path):
    keys = list(mapping)
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise AnsibleFilterError("pyliteral: %s has a key of type %s; keys must be str or int"
                                     % (path, type(key).__name__))
    return sorted(keys, key=lambda k: (isinstance(k, str), k))


def to_literal(value, level=0, path="value", width=WIDTH, room=0):
    """Python source for ``value``; nested containers are spread over lines when long.

    The source starts at indentation ``level`` (its continuation lines are indented from there), after
    ``room`` characters of its first line (a dict key in front of it, the comma after it). A container
    whose one-line form would make the line longer than ``width`` is spread, one item per line.
    """
    flat = _one_line(value, path)
    if len(INDENT) * level + room + len(flat) <= width or not isinstance(value, (Mapping, list, tuple)):
        return flat
    inner = INDENT * (level + 1)
    if isinstance(value, Mapping):
        lines = []
        for key in _sorted_keys(value, path):
            prefix = "%s: " % _one_line(key, path)
            item = to_literal(value[key], level + 1, "%s[%r]" % (path, key), width, len(prefix) + 1)
            lines.append("%s%s%s," % (inner, prefix, item))
        opening, closing = "{", "}"
    else:
        lines = [
            "%s%s," % (inner, to_literal(item, level + 1, "%s[%d]" % (path, index), width, 1))
            for index, item in enumerate(value)
        ]
        opening, closing = ("(", ")") if isinstance(value, tuple) else ("[", "]")
    return "%s\n%s\n%s%s" % (opening, "\n".join(lines), INDENT * level, closing)


def quoted(text, quote):
    """A string's literal between ``quote`` (``'`` or ``"``), escaped as ``repr()`` escapes (a script's own style)."""
    other = "'" if quote == '"' else '"'
    return quote + "".join("\\" + char if char == quote else char if char == other else repr(char)[1:-1]
                           for char in text) + quote


def pyliteral(value, name="value", level=0, width=WIDTH, quote=None):
    """``value`` as Python source; ``name`` says what it is in errors.

    ``level`` is the indentation (in steps of four spaces) of the line the source starts on, and
    ``width`` the longest line it may make before its containers are spread over lines. A string
    alone is written between ``quote`` where it is given (``'`` or ``"``), else as ``repr()`` writes it.
    """
    if quote not in (None, "'", '"'):
        raise AnsibleFilterError("pyliteral: quote must be ' or \", not %r" % (quote,))
    if quote and isinstance(value, str):
        return quoted(value, quote)
    return to_literal(value, level, name, width)


class FilterModule:
    def filters(self):
        return {"pyliteral": pyliteral}
