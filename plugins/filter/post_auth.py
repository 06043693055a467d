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
)


def post_auth_settings(params):
    try:
        settings, flags, digest = build_settings(dict(params))
    except SettingsError as exc:
        raise AnsibleFilterError(str(exc)) from None
    except (TypeError, AttributeError, ValueError) as exc:
        # a value of the wrong shape that the argument specs let through
        raise AnsibleFilterError("post_auth variables: a value has the wrong type: %s" % exc) from None
    return {"settings": settings, "flags": flags, "sha256": digest, "features": settings["features"]}


def post_auth_device_registry(params):
    try:
        return device_registry(dict(params))
    except SettingsError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {
            "post_auth_settings": post_auth_settings,
            "post_auth_device_registry": post_auth_device_registry,
        }
