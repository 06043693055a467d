# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the post_auth role uses to validate its variables before anything is rendered."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import ComposeError, post_auth_variables, settings_of


def post_auth_settings(params):
    try:
        return settings_of(post_auth_variables(dict(params)))
    except ComposeError as exc:
        raise AnsibleFilterError(exc.message) from None


def post_auth_user_properties(params):
    """The user properties the role pushes: device registrations and TOTP seeds, per user."""
    try:
        return settings_of(post_auth_variables(dict(params)))["users"]
    except ComposeError as exc:
        raise AnsibleFilterError(exc.message) from None


class FilterModule:
    def filters(self):
        return {
            "post_auth_settings": post_auth_settings,
            "post_auth_user_properties": post_auth_user_properties,
        }
