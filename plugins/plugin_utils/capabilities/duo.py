# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Duo two-factor authentication (Auth API v2), as the last step of the chain."""

from __future__ import annotations

import re

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    compact,
    exemptions,
    fail,
    required,
    secret,
    shown,
    text,
    within,
)

MESSAGES = {
    "duo_prompt": "Duo two-factor: enter a passcode, or push, phone or sms",
    "duo_sms_sent": "Duo sent you new passcodes by SMS: enter one",
    "duo_invalid_answer": "Enter a Duo passcode, or push, phone or sms.",
    "duo_denied": "Duo two-factor authentication was denied.",
    "duo_enroll": "Enroll in Duo two-factor authentication first: {url}",
    "duo_unavailable": "Two-factor authentication is unavailable right now. Please try again later.",
}


def build(params, secrets):
    name = "post_auth_duo"
    skey = secret(params, "duo_secret_key", name + "_secret_key", secrets, required=True)
    host = required(params["duo_api_host"], name + "_api_host")
    if not re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", host):
        fail(name + "_api_host", "%s is not a host name like api-xxxxxxxx.duosecurity.com" % shown(host))
    proxy = text(params["duo_proxy"], name + "_proxy").strip()
    if proxy and "@" in proxy:
        # never echo the value: it holds credentials
        fail(name + "_proxy", "must not hold credentials: they would be readable in the script")
    if proxy and not re.match(r"^https?://[^/\s]+/?$", proxy):
        fail(name + "_proxy", "is not a proxy URL like http://proxy.example.com:3128")
    settings = {
        "api_host": host,
        "ikey": required(params["duo_integration_key"], name + "_integration_key"),
        "skey": skey,
        "ca_file": text(params["duo_ca_file"], name + "_ca_file").strip(),
        "timeout": within(params["duo_timeout"], name + "_timeout", 1, 120),
        "auth_timeout": within(params["duo_auth_timeout"], name + "_auth_timeout", 5, 300),
        "proxy": proxy,
        "fail_mode": choice(params["duo_fail_mode"], name + "_fail_mode", ("secure", "safe")),
        "factor": choice(params["duo_factor"], name + "_factor", ("push", "ask")),
    }
    settings.update(exemptions(params, "duo"))
    return compact(settings)


def needs(settings):
    return {"http", "questions", "answers", "exemptions"}


def blocking(settings):
    return True


def flags(params, settings, messages):
    if params["duo_static_challenge"]:
        # the profile asks for the passcode (or push, phone, sms) with the password
        return {"STATIC_CHALLENGE": messages["duo_prompt"], "STATIC_CHALLENGE_ECHO": True}
    return {}


CAPABILITY = Capability(
    __name__,
    order=50,
    title="Duo",
    messages=MESSAGES,
    build=build,
    excludes={"challenge": "the script asks for one second factor"},
    needs=needs,
    blocking=blocking,
    flags=flags,
)
