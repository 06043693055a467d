# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which values are secrets, and how every module keeps them out of its results."""

from __future__ import annotations

import fnmatch

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import secret_lines

# The configuration keys and user properties whose values every module of the collection masks
# (documented in the ovpnas.fleet.sacli.SECRETS doc fragment; the secret_keys options add to it):
# LDAP bind passwords, RADIUS shared secrets, SAML and web server private keys, database and
# other passwords, secrets and tokens, password digests and TOTP seeds.
SECRET_PATTERNS = ("auth.ldap.*.bind_pw", "auth.radius.*.secret", "*password*", "*passwd*", "*_pw", "*secret*",
                   "*token*", "*priv_key*", "*private_key*", "*.sp_key*", "pvt_*_digest", "pvt_google_auth_secret*",
                   "pvt_totp_secret*", "*skey*", "*api_key*", "*apikey*")


# Values a key named like a secret can hold that are flags, not secrets (auth.local.0.enforce_strong_passwords:
# true): registered, Ansible would mask every "true" of the result.
FLAG_VALUES = frozenset(("true", "false", "yes", "no", "on", "off"))


def secret_name(name):
    """Whether a name (of a variable, a mapping's key or an assignment in a script) looks like one of a secret:
    the built-in patterns, whatever its case (Duo's ``SKEY``, ``bind_password``)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p) for p in SECRET_PATTERNS)


def secret_matcher(patterns=()):
    """A test for names whose values are secrets: the built-in patterns and ``patterns``."""
    every = tuple(SECRET_PATTERNS) + tuple(patterns or ())
    return lambda name: any(fnmatch.fnmatchcase(name, p) for p in every)


def hide_secrets(module, values=None, is_secret=None, script=None, known=(), names=()):
    """Register secrets with the module's ``no_log_values``, the one way results are masked.

    ``values`` maps names to values, those whose names ``is_secret`` matches are secrets; ``known``
    lists secrets as they are. Each is registered as it is and as a script's literal writes it
    (``repr()``, as the pyliteral filter does, and ``ascii()``: quotes and backslashes escaped);
    ``script`` is a post-auth script, whose marked lines are (and, in an own script, what ``names`` are
    assigned), wherever a result quotes it; a script shown on purpose goes through ``mask_secret_lines``
    first. Ansible then masks each of them wherever it occurs in the result (diffs, facts, messages,
    errors): a whole value shows as ``VALUE_SPECIFIED_IN_NO_LOG_PARAMETER``, one inside a longer text as
    ``********``. Results carry values as they are, and nothing masks them a second time. Register the
    live values too: a secret rotated away is still in the live configuration and the diff's before.
    """
    found = [v for k, v in (values or {}).items()
             if isinstance(v, str) and v and v.strip().lower() not in FLAG_VALUES and is_secret(k)]
    for value in found + [v for v in known if isinstance(v, str) and v]:
        module.no_log_values.update((value, repr(value)[1:-1], ascii(value)[1:-1]))
    module.no_log_values.update(secret_lines(script, names))
