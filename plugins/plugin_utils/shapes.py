# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lists of records checked on the controller, before any server changes: canary logins, policy cases.

Each record is checked against an argument spec the way a module would check it, but first
without coercion: Ansible's validator turns a list given where a string belongs into the text
``"['x']"``, and a record would then reach a server as something nobody wrote. Messages name
the record and its field, and never show a secret (only the start of a value, never one of a
``no_log`` field).
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ovpnas.fleet.plugins.module_utils.authcli import LOGIN_OPTIONS, login_label, login_problem
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SettingsError, flag, kind, shown

# a value that is none of these is text to a string option (a vaulted string, for one)
NOT_TEXT = (list, tuple, dict, bool, int, float)

# a policy case: what roles/post_auth/files/policy_harness.py reads of it (see the role's README)
CASE_OPTIONS = dict(
    name=dict(type="str"),
    user=dict(type="str", required=True),
    username=dict(type="str"),
    auth_method=dict(type="str"),
    properties=dict(type="dict"),
    ldap=dict(type="dict", options=dict(
        user_dn=dict(type="str"),
        groups=dict(type="list", elements="str"),
        api=dict(type="str", choices=["ldap3", "python-ldap"]),
        uname_attr=dict(type="str"),
    )),
    radius_reply=dict(type="dict"),
    saml_attr=dict(type="dict"),
    http_replies=dict(type="dict"),
    client=dict(type="dict", options=dict(
        ip=dict(type="str"),
        hw_addr=dict(type="str"),
        platform=dict(type="str"),
        version=dict(type="str"),
        info=dict(type="dict"),
        web=dict(type="bool"),
        reauth=dict(type="bool"),
        password=dict(type="str", no_log=True),
        response=dict(type="str", no_log=True),
        static_response=dict(type="str", no_log=True),
    )),
    expect=dict(type="dict", options=dict(
        status=dict(type="str", choices=["SUCCEED", "FAIL"]),
        group=dict(type="raw"),
        properties=dict(type="dict"),
        saved=dict(type="dict"),
        reason=dict(type="str"),
        client_reason=dict(type="str"),
        challenge=dict(type="bool"),
    )),
)


class ShapeError(ValueError):
    """A record is not what its spec says; the message names the record and the field."""


def strict(value, option, where):
    """``value`` checked against the argument-spec ``option`` without coercion; strings made text."""
    wanted = option.get("type", "str")
    if value is None:
        return None
    if wanted in ("str", "path"):
        if isinstance(value, NOT_TEXT):
            raise ShapeError("%s: must be a string, not %s" % (where, kind(value)))
        # text as Ansible gives it (a vaulted string decrypts here)
        return str(value)
    if wanted == "bool":
        # as Ansible reads booleans: true, yes, on...
        try:
            return flag(value, where)
        except SettingsError as exc:
            raise ShapeError(str(exc)) from None
    if wanted == "list":
        if not isinstance(value, (list, tuple)):
            raise ShapeError("%s: must be a list, not %s" % (where, kind(value)))
        element = dict(option, type=option.get("elements", "raw"))
        return [strict(item, element, "%s[%d]" % (where, index)) for index, item in enumerate(value)]
    if wanted == "dict":
        if not isinstance(value, dict):
            raise ShapeError("%s: must be a mapping, not %s" % (where, kind(value)))
        options = option.get("options")
        if not options:
            return value
        for key in value:
            if not isinstance(key, str):
                raise ShapeError("%s: the key %s is not text" % (where, shown(key)))
            if key not in options:
                raise ShapeError("%s: %s is not a field (fields: %s)" % (where, shown(key), ", ".join(sorted(options))))
        checked = {key: strict(item, options[key], "%s.%s" % (where, key)) for key, item in value.items()}
        validated(checked, options, where)
        return checked
    return value


def _without_nulls(value):
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_without_nulls(item) for item in value]
    return value


def validated(record, options, where):
    """A record of strict values through Ansible's validator (required fields, choices), with its defaults.

    A null field is an unset one.
    """
    record = _without_nulls(record)
    result = ArgumentSpecValidator(options).validate(record)
    if result.error_messages:
        secrets = [str(record[key]) for key, option in options.items() if option.get("no_log") and record.get(key)]
        message = result.error_messages[0]
        for secret in secrets:
            message = message.replace(secret, "********")
        raise ShapeError("%s: %s" % (where, message))
    return result.validated_parameters


def login_errors(logins, where="rollout_canary_logins"):
    """Why the canary logins ``logins`` cannot be run, as messages (none when they can)."""
    try:
        logins = strict(logins, dict(type="list", elements="dict", options=LOGIN_OPTIONS), where)
    except ShapeError as exc:
        return [str(exc)]
    errors = []
    for index, login in enumerate(logins or []):
        # as the module gets it: every field, with its default (strict() has validated it already)
        login = validated(login, LOGIN_OPTIONS, "%s[%d]" % (where, index))
        problem = login_problem(login)
        if problem:
            errors.append("%s: %s: %s" % (where, login_label(index, login), problem))
    return errors


def checked_cases(cases, where="post_auth_policy_tests"):
    """The policy cases ``cases``, refused with a ``ShapeError`` when one is not of the shape the harness reads."""
    strict(cases, dict(type="list", elements="dict", options=CASE_OPTIONS), where)
    return cases
