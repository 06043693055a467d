# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the post_auth role uses to validate its variables before anything is rendered."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.post_auth import (
    SettingsError,
    build_settings,
    device_registry,
    host_checker_apps,
    totp_seeds,
)


def _run(function, params):
    try:
        return function(dict(params))
    except SettingsError as exc:
        raise AnsibleFilterError(str(exc)) from None
    except (TypeError, AttributeError, ValueError) as exc:
        # a value of the wrong shape that the argument specs let through
        raise AnsibleFilterError("post_auth variables: a value has the wrong type: %s" % exc) from None


def post_auth_settings(params):
    settings, flags, digest, secrets = _run(build_settings, params)
    values = []
    for value in secrets.values():
        values.extend(value.values() if isinstance(value, dict) else [value])
    # the applications clients must be asked about: the query file that is live must list them
    apps = _run(lambda p: host_checker_apps(p.get("host_checker_apps")), params) if "host_checker" in settings else []
    return {"settings": settings, "flags": flags, "sha256": digest, "features": settings["features"],
            "secrets": secrets, "secret_values": values,
            "required_apps": [{"name": app["name"], "platform": app["platform"]} for app in apps]}


def post_auth_user_properties(params):
    """The user properties the role pushes: device registrations and TOTP seeds, per user."""
    users = {}
    if params.get("device_pinning"):
        for user, props in _run(device_registry, params).items():
            users.setdefault(user, {}).update(props)
    if params.get("challenge") and (params.get("challenge_verify") or "totp") == "totp":
        for user, props in _run(totp_seeds, params).items():
            users.setdefault(user, {}).update(props)
    return users


class FilterModule:
    def filters(self):
        return {
            "post_auth_settings": post_auth_settings,
            "post_auth_user_properties": post_auth_user_properties,
        }
