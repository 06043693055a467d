# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host-checker query file (appver.txt) from the list the post_auth host-checker policy reads."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities.host_checker import apps as host_checker_apps
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SettingsError


def host_checker_query_file(apps, name="host_checker_apps"):
    """Validate ``apps`` and return the lines ``PLATFORM:NAME=REGEX`` of the query file."""
    try:
        entries = host_checker_apps(apps, name)
        platforms = {}
        for index, app in enumerate(entries):
            try:
                re.compile(app["regex"], re.IGNORECASE)
            except re.error as exc:
                raise SettingsError("%s[%d].regex: is not a regular expression: %s" % (name, index, exc)) from None
            # a client reports one UV_APPVER_<NAME> per name: two lines must not both apply to one platform
            covered = {"win", "mac"} if app["platform"] == "all" else {app["platform"]}
            seen = platforms.setdefault(app["name"].upper(), set())
            if seen & covered:
                both = " and ".join(sorted(seen & covered))
                raise SettingsError("%s[%d]: lists %s again for %s" % (name, index, app["name"], both))
            seen |= covered
    except SettingsError as exc:
        raise AnsibleFilterError(str(exc)) from None
    except (TypeError, AttributeError) as exc:
        raise AnsibleFilterError("%s: a value has the wrong type: %s" % (name, exc)) from None
    return "".join("%s:%s=%s\n" % (app["platform"], app["name"], app["regex"]) for app in entries)


class FilterModule:
    def filters(self):
        return {"host_checker_query_file": host_checker_query_file}
