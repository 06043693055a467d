# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host-checker policy: the applications and client versions that Windows and macOS clients report."""

from __future__ import annotations

import re

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    fail,
    flag,
    listed,
    mapping,
    regex,
    sequence,
    text,
    version,
    words,
)

MESSAGES = {
    "platform_not_allowed": "VPN connections from this platform are not allowed.",
    "client_too_old": "Please update your VPN client to version {min_version} or later.",
    "app_missing": "{app} is required on this device.",
    "app_outdated": "{app} must be updated to version {min_version} or later.",
    "app_unverifiable": "{app} could not be verified on this device.",
    "platform_cannot_report": "This device cannot report its applications, which is required.",
}
# the errors a client may report for an application, besides ERR_NOT_FOUND
APP_ERRORS = ("ERR_NO_VERSION", "ERR_MANY_FOUND", "ERR_REGEX")
APP_KEYS = {"name", "regex", "platform", "min_version", "required", "description"}
APP_NAME = re.compile(r"^[A-Za-z0-9_]+\Z")


def apps(values, name="post_auth_host_checker_apps"):
    """The application list shared with the host_checker role (which writes the query file from it)."""
    result = []
    seen = set()
    for index, app in enumerate(sequence(values, name) if values is not None else []):
        item = "%s[%d]" % (name, index)
        if not isinstance(app, dict):
            fail(item, "must be a mapping with name, regex, platform, min_version, required")
        unknown = set(app) - APP_KEYS
        if unknown:
            fail(item, "unknown keys %s" % listed(unknown))
        app_name = app.get("name")
        if not isinstance(app_name, str) or not APP_NAME.match(app_name):
            fail(item + ".name", "must be letters, digits and underscores")
        platform = app.get("platform") or "all"
        if platform not in ("win", "mac", "all"):
            fail(item + ".platform", "must be win, mac or all")
        if (app_name.upper(), platform) in seen:
            fail(item, "lists %s for platform %s twice" % (app_name, platform))
        seen.add((app_name.upper(), platform))
        expression = app.get("regex")
        if not isinstance(expression, str) or not expression or "\n" in expression or "\r" in expression:
            fail(item + ".regex", "must be a one-line regular expression")
        regex(expression, item + ".regex")
        min_version = app.get("min_version")
        result.append({
            "name": app_name,
            "regex": expression,
            "platform": platform,
            "min_version": version(min_version, item + ".min_version") if min_version not in (None, "") else None,
            "required": flag(app.get("required", False), item + ".required"),
        })
    return result


def build(params, secrets):
    prefix = "post_auth_host_checker"
    on_error = mapping(params["host_checker_on_error"], prefix + "_on_error")
    unknown = set(on_error) - set(APP_ERRORS)
    if unknown:
        fail(prefix + "_on_error", "unknown codes %s (ERR_NOT_FOUND always refuses a required application)"
             % listed(unknown))
    errors = {}
    for code in APP_ERRORS:
        errors[code] = on_error.get(code, "deny")
        if errors[code] not in ("deny", "allow"):
            fail("%s_on_error.%s" % (prefix, code), "must be deny or allow")
    minimum = text(params["host_checker_min_client_version"], prefix + "_min_client_version")
    return {
        "apps": apps(params.get("host_checker_apps")),
        "errors": errors,
        "missing_report": choice(params["host_checker_missing_report"], prefix + "_missing_report", ("deny", "allow")),
        "platforms": words(params["host_checker_platforms"], prefix + "_platforms", lower=True),
        "min_client_version": version(minimum, prefix + "_min_client_version") if minimum else None,
        "unreporting_platforms": choice(params["host_checker_unreporting_platforms"], prefix + "_unreporting_platforms",
                                        ("allow", "deny")),
    }


def required_apps(settings):
    # clients report only what the query file asks for
    return [{"name": app["name"], "platform": app["platform"]} for app in settings["apps"]]


CAPABILITY = Capability(
    __name__,
    order=40,
    title="host-checker policy",
    messages=MESSAGES,
    build=build,
    local=True,
    required_apps=required_apps,
)
