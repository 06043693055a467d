# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The checks of the post_auth role's values that its argument specs cannot express.

The argument specs check each variable's type and choices first (``compose.role_variables``),
and an unset or null variable has the role's default. These checks look inside the value (the
fields of a rule, a URL, a range) and name the variable at fault. They check its type again too,
for what the argument specs do not see (a default that is another role's variable, the fields
inside a rule): a value of the wrong shape is always a ``SettingsError`` that names the variable,
never a ``TypeError`` or ``AttributeError`` out of the code that reads it.
"""

from __future__ import annotations

import re

# how much of a bad value a message shows: never more than this, and never a secret
SHOWN = 40
# Access Server's user names (and group names) as the collection accepts them
NAME_LENGTH = 128
BOOLEANS = {"yes": True, "on": True, "true": True, "1": True, "y": True, "t": True,
            "no": False, "off": False, "false": False, "0": False, "n": False, "f": False}
# query parameters that carry credentials, which belong in the token settings instead
CREDENTIAL_PARAMETERS = re.compile(r"(?i)(token|secret|passw|pwd|key|auth|sig|credential|session)")
URL_LENGTH = 2048
# the most digits of a number in a version (the scripts read no more from a client either)
VERSION_DIGITS = 64


class SettingsError(ValueError):
    """A role variable is not valid; the message starts with its name."""


def fail(name, message):
    raise SettingsError("%s: %s" % (name, message))


def shown(value):
    """A short, safe rendering of a bad value for a message: its start, quoted."""
    text = value if isinstance(value, str) else repr(value)
    text = text[:SHOWN] + "..." if len(text) > SHOWN else text
    return repr(text) if isinstance(value, str) else text


def listed(names):
    """Unknown names for a message: each shortened, a few at most, in a stable order."""
    names = sorted(names, key=str)
    text = ", ".join(shown(name) if not isinstance(name, str) or len(name) > SHOWN else name for name in names[:5])
    return text + (" and %d more" % (len(names) - 5) if len(names) > 5 else "")


def flag(value, name):
    """A boolean as Ansible reads one (true/false, yes/no, on/off, 1/0); anything else fails."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return BOOLEANS[value.strip().lower()]
    fail(name, "must be true or false")


def text(value, name):
    """A string, as it is."""
    if not isinstance(value, str):
        fail(name, "must be a string, not %s" % kind(value))
    return value


def number(value, name):
    """A whole number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, "must be a whole number, not %s" % kind(value))
    return value


def mapping(value, name):
    """A mapping (dict), as it is."""
    if not isinstance(value, dict):
        fail(name, "must be a mapping, not %s" % kind(value))
    return value


def sequence(value, name):
    """A list, as it is."""
    if not isinstance(value, (list, tuple)):
        fail(name, "must be a list, not %s" % kind(value))
    return value


def kind(value):
    """What a value is, for a message: never the value itself."""
    if value is None:
        return "null"
    # in this order: a boolean is a whole number too; Ansible's own lists and mappings are subclasses
    names = ((bool, "a boolean"), (str, "a string"), (int, "a whole number"), (float, "a number"),
             ((list, tuple), "a list"), (dict, "a mapping"))
    return next((name for types, name in names if isinstance(value, types)), "a %s" % type(value).__name__)


def choice(value, name, choices):
    """One of ``choices``."""
    if value not in choices:
        fail(name, "%s is not one of %s" % (shown(value), ", ".join(choices)))
    return value


def user_name(value, name):
    """A user or group name Access Server can hold: text, no control characters, no surrounding spaces."""
    if not isinstance(value, str) or not value:
        fail(name, "must be a non-empty user name")
    if len(value) > NAME_LENGTH:
        fail(name, "is longer than %d characters" % NAME_LENGTH)
    if value != value.strip() or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        fail(name, "%s holds control characters or surrounding spaces" % shown(value))
    return value


def words(values, name, lower=False):
    """The strings of a list, trimmed (and lower case), none of them blank."""
    result = []
    for index, item in enumerate(sequence(values, name)):
        if not isinstance(item, str) or not item.strip():
            fail("%s[%d]" % (name, index), "must be a non-empty string")
        result.append(item.strip().lower() if lower else item.strip())
    return result


def str_list(value, name, lower=False):
    """A list of strings inside a value the argument specs see only as a whole (a rule's field)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        fail(name, "must be a list of strings")
    return words(value, name, lower)


def required(value, name):
    """A text that must be given (not empty nor blank), trimmed."""
    if not text(value, name).strip():
        fail(name, "is required")
    return value.strip()


def one_line(value, name):
    if "\n" in text(value, name) or "\r" in value:
        fail(name, "must be one line")
    return value.strip()


def within(value, name, low, high):
    if not low <= number(value, name) <= high:
        fail(name, "must be a number from %s to %s" % (low, high))
    return value


def version(value, name):
    """A version as the administrator wrote it (``115.0.2``), checked."""
    if isinstance(value, float):
        # YAML reads 1.10 as the number 1.1: only a quoted version is unambiguous
        fail(name, "%s is a number; quote the version so that YAML keeps it as written" % shown(value))
    text = str(value).strip()
    if not re.match(r"^v?\d+(\.\d+)*$", text):
        fail(name, "%s is not a version like 115.0.2" % shown(value))
    if any(len(number) > VERSION_DIGITS for number in text.lstrip("v").split(".")):
        fail(name, "%s has a number of more than %d digits" % (shown(value), VERSION_DIGITS))
    return text


def regex(value, name):
    """A regular expression that compiles."""
    text(value, name)
    try:
        re.compile(value)
    except (re.error, ValueError) as exc:
        fail(name, "is not a regular expression: %s" % exc)
    except (OverflowError, RecursionError):
        # a repetition count beyond what re takes, or groups nested deeper than it can parse
        fail(name, "is too large or too deeply nested to be a regular expression")
    return value


def url(value, name):
    """An http(s) URL without credentials in it; plain http only to the server itself."""
    if not text(value, name):
        fail(name, "is required")
    value = value.strip()
    if len(value) > URL_LENGTH:
        fail(name, "is longer than %d characters" % URL_LENGTH)
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        fail(name, "is not an http(s) URL")
    token = name[:-len("_url")] + "_token"
    credentials = "holds credentials, which would be shown wherever the URL is: put the token in %s or %s_file" % (
        token, token)
    if "@" in value.split("/", 3)[2]:
        fail(name, credentials)
    query = value.split("?", 1)[1].split("#", 1)[0] if "?" in value else ""
    for pair in query.split("&"):
        if pair and CREDENTIAL_PARAMETERS.search(pair.split("=", 1)[0]):
            fail(name, credentials)
    if value.startswith("http://"):
        host = value[7:].split("/", 1)[0].split(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            fail(name, "must use https (plain http only to the server itself)")
    return value


def secret(params, key, name, secrets, required=False):
    """A secret given inline (no_log) or as a root-only file on the server; inline wins.

    An inline value goes to ``secrets`` under ``key`` (the script keeps it in SECRETS, apart
    from SETTINGS); the result says where the script finds it, or is None when there is none.
    """
    value = text(params[key], name).strip()
    path = text(params[key + "_file"], name + "_file").strip()
    if path and not path.startswith("/"):
        fail(name + "_file", "must be an absolute path on the server")
    if required and not (value or path):
        fail(name, "is required (or %s_file, a root-only file on the server)" % name)
    if value:
        secrets[key] = value
        return {"secret": key}
    return {"file": path} if path else None


def http_endpoint(params, prefix, secrets):
    """An HTTPS endpoint the script calls: its URL, CA file, timeout and bearer token."""
    name = "post_auth_" + prefix
    return compact({
        "url": url(params[prefix + "_url"], name + "_url"),
        "ca_file": text(params[prefix + "_ca_file"], name + "_ca_file").strip(),
        "timeout": within(params[prefix + "_timeout"], name + "_timeout", 1, 120),
        "token": secret(params, prefix + "_token", name + "_token", secrets),
    })


def exemptions(params, prefix):
    """The users and groups a capability lets through, lower case."""
    name = "post_auth_" + prefix
    return {
        "exempt_users": words(params[prefix + "_exempt_users"], name + "_exempt_users", lower=True),
        "exempt_groups": words(params[prefix + "_exempt_groups"], name + "_exempt_groups", lower=True),
    }


def compact(settings):
    """``settings`` without the entries that say nothing (empty text, lists and mappings, None)."""
    return {key: value for key, value in settings.items() if value not in ("", None, [], {}, ())}
