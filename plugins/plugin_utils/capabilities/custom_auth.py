# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Custom authentication (PAS only): the script authenticates the user itself."""

from __future__ import annotations

import re

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    fail,
    http_endpoint,
    mapping,
    required,
    shown,
    user_name,
)

MESSAGES = {
    "custom_auth_failed": "Wrong user name or password.",
    "custom_auth_unavailable": "Authentication is unavailable right now. Please try again later.",
}
PBKDF2_HASH = re.compile(r"^pbkdf2_sha256\$(\d+)\$([^$]+)\$([A-Za-z0-9+/]+={0,2})$")


def build(params, secrets):
    name = "post_auth_custom_auth"
    method = choice(params["custom_auth_method"], name + "_method", ("http", "hashes"))
    if method == "http":
        settings = {"method": method}
        settings.update(http_endpoint(params, "custom_auth", secrets))
        settings["success_field"] = required(params["custom_auth_success_field"], name + "_success_field")
        settings["groups_field"] = required(params["custom_auth_groups_field"], name + "_groups_field")
        return settings
    hashes = mapping(params["custom_auth_hashes"], name + "_hashes")
    if not hashes:
        fail(name + "_hashes", "must map user names to PBKDF2-SHA256 hashes")
    table = {}
    for user, digest in hashes.items():
        user_name(user, "%s_hashes key %s" % (name, shown(user)))
        match = PBKDF2_HASH.match(digest) if isinstance(digest, str) else None
        if not match or int(match.group(1)) < 100000:
            # never echo the value: it is a password hash
            fail("%s_hashes.%s" % (name, user),
                 "must be pbkdf2_sha256$ITERATIONS$SALT$BASE64 with at least 100000 iterations")
        table[str(user).lower()] = digest
    secrets["custom_auth_hashes"] = table
    return {"method": method}


def needs(settings):
    # a first half of a challenge round trip may have authenticated the user already
    return {"answers"} | ({"http"} if settings["method"] == "http" else set())


def blocking(settings):
    # a network call, or PBKDF2 work
    return True


def flags(params, settings, messages):
    # Access Server's own method lets everyone through; the script gets the password to check
    return {"AUTH_NULL": True, "RETAIN_PASSWORD": True}


CAPABILITY = Capability(
    __name__,
    order=10,
    title="custom authentication",
    messages=MESSAGES,
    build=build,
    needs=needs,
    blocking=blocking,
    flags=flags,
)
