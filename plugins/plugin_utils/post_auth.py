# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turn the post_auth role's checked variables into the script's settings, from the capability registry.

The result is plain data (str, int, bool, None, lists, dicts) that the templates render
with the pyliteral filter. Every problem is reported with the name of the variable.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import (
    BY_NAME,
    CAPABILITIES,
    FRAME_MESSAGES,
    MESSAGES,
)
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import fail, mapping, shown


def _messages(overrides, enabled):
    for key, value in mapping(overrides, "post_auth_messages").items():
        if key not in MESSAGES:
            fail("post_auth_messages",
                 "unknown message %s (known: %s)" % (shown(key), ", ".join(sorted(MESSAGES))))
        if not isinstance(value, str) or not value.strip():
            fail("post_auth_messages.%s" % key, "must be a non-empty string")
    # the script carries only the messages it can show
    messages = dict(FRAME_MESSAGES)
    for capability in enabled:
        messages.update(capability.messages)
    return {key: overrides.get(key, text) for key, text in messages.items()}


def build_settings(params):
    """The settings of the script, from the role's variables without their prefix.

    ``params`` maps names like ``device_pinning`` (the switch) and ``device_pinning_mode`` to
    values the argument specs have checked, each variable set (unset ones have the role's default).
    Returns a dict: ``settings`` (the capabilities' settings by name, with ``features`` and
    ``messages``), ``flags``, ``needs`` (the parts of the frame the blocks use), ``sha256``,
    ``secrets`` (given inline, by name, which the script keeps in SECRETS on lines marked as
    secret) and ``users`` (the user properties the script relies on, per user, which the role pushes).
    """
    enabled = [capability for capability in CAPABILITIES if params[capability.name]]
    for capability in enabled:
        for other, reason in capability.excludes.items():
            if other in BY_NAME and params[other]:
                first, second = sorted((capability.name, other), key=list(BY_NAME).index)
                fail("post_auth_" + first, "and post_auth_%s are both on: %s" % (second, reason))
    secrets = {}
    settings = {}
    for capability in enabled:
        settings[capability.name] = capability.build(params, secrets)
    messages = _messages(params["messages"], enabled)
    users, needs, apps = {}, set(), []
    # network calls and PBKDF2 work run in a worker thread, not in Access Server's main thread
    flags = {"SYNCHRONOUS": not any(capability.blocking(settings[capability.name]) for capability in enabled)}
    for capability in enabled:
        own = settings[capability.name]
        flags.update(capability.flags(params, own, messages))
        needs.update(capability.needs(own))
        for user, props in capability.users(params, own).items():
            users.setdefault(user, {}).update(props)
        apps.extend(capability.required_apps(own))
    settings["features"] = [capability.name for capability in enabled]
    settings["messages"] = messages
    # the secrets count too: a rotated key is a different script
    canonical = json.dumps({"settings": settings, "flags": flags, "secrets": secrets}, sort_keys=True,
                           separators=(",", ":"))
    return {
        "settings": settings,
        "flags": flags,
        "needs": sorted(needs),
        "sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "secrets": secrets,
        "users": users,
        "required_apps": apps,
    }


def script_parts(settings):
    """What the frame renders besides the blocks: the chain's titles, the settings kept in SETTINGS, and
    whether a secret is read from a file on the server."""
    enabled = [BY_NAME[name] for name in settings["features"]]
    shared = {capability.name: settings[capability.name] for capability in enabled if not capability.local}
    # where a setting's secret is a file on the server (checks.secret: {"file": path})
    files = [value for own in shared.values() for value in own.values() if isinstance(value, dict) and "file" in value]
    return {"titles": [capability.title for capability in enabled], "shared": shared, "secret_files": bool(files)}


def exclusive_prefixes(params):
    return [prefix for capability in CAPABILITIES for prefix in capability.exclusive_prefixes(params)]


def secret_properties(params):
    return [prop for capability in CAPABILITIES for prop in capability.secret_properties(params)]
