# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A custom challenge/response: a TOTP code, or one an HTTPS endpoint verifies, as the last step of the chain."""

from __future__ import annotations

import re

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    compact,
    exemptions,
    fail,
    flag,
    http_endpoint,
    mapping,
    number,
    one_line,
    required,
    shown,
    user_name,
    within,
)

MESSAGES = {
    "challenge_wrong": "Wrong code.",
    "challenge_retry": "Wrong code, try again.",
    "challenge_no_secret": "No one-time code is set up for your account.",
    "challenge_unavailable": "Your code could not be checked right now. Please try again later.",
}


def build(params, secrets):
    name = "post_auth_challenge"
    verify = choice(params["challenge_verify"], name + "_verify", ("totp", "http"))
    settings = {
        "text": one_line(required(params["challenge_text"], name + "_text"), name + "_text"),
        "echo": flag(params["challenge_echo"], name + "_echo"),
        "verify": verify,
        "skip_reauth": flag(params["challenge_skip_reauth"], name + "_skip_reauth"),
        "max_attempts": within(params["challenge_max_attempts"], name + "_max_attempts", 1, 10),
    }
    settings.update(exemptions(params, "challenge"))
    if verify == "http":
        settings.update(http_endpoint(params, "challenge", secrets))
        return compact(settings)
    if number(params["challenge_totp_digits"], name + "_totp_digits") not in (6, 7, 8):
        fail(name + "_totp_digits", "must be 6, 7 or 8")
    settings["totp"] = {
        "algorithm": choice(params["challenge_totp_algorithm"], name + "_totp_algorithm", ("sha1", "sha256", "sha512")),
        "digits": params["challenge_totp_digits"],
        "period": within(params["challenge_totp_period"], name + "_totp_period", 15, 120),
        "window": within(params["challenge_totp_window"], name + "_totp_window", 0, 10),
        "property": totp_property(params),
    }
    return compact(settings)


def totp_property(params):
    prop = required(params["challenge_totp_property"], "post_auth_challenge_totp_property")
    if not prop.startswith("pvt_"):
        fail("post_auth_challenge_totp_property", "must be a private property (pvt_...), so that users never see it")
    return prop


def needs(settings):
    return {"questions", "answers", "exemptions"} | ({"http"} if settings["verify"] == "http" else set())


def blocking(settings):
    return settings["verify"] == "http"


def flags(params, settings, messages):
    if params["challenge_static"]:
        # the profile asks for the code with the password
        return {"STATIC_CHALLENGE": settings["text"], "STATIC_CHALLENGE_ECHO": settings["echo"]}
    return {}


def seeds(params):
    """Inventory TOTP seeds as user properties: {user: {pvt_totp_secret: BASE32}}."""
    name = "post_auth_challenge_totp_secrets"
    prop = totp_property(params)
    users = {}
    for user, seed in mapping(params["challenge_totp_secrets"], name).items():
        user_name(user, "%s key %s" % (name, shown(user)))
        text = re.sub(r"[\s=]", "", seed).upper() if isinstance(seed, str) else ""
        if len(text) < 16 or not re.match(r"^[A-Z2-7]+$", text):
            # never echo the value: it is a secret
            fail("%s.%s" % (name, user), "must be a base32 seed of at least 16 characters (80 bits)")
        users[str(user)] = {prop: text}
    return users


def users(params, settings):
    # the seeds are checked even when an endpoint verifies the codes, and loaded only for TOTP
    found = seeds(params)
    return found if settings["verify"] == "totp" else {}


def secret_properties(params):
    # masked in every result, whether the capability is on or not
    return [params["challenge_totp_property"]]


CAPABILITY = Capability(
    __name__,
    order=60,
    title="challenge/response",
    messages=MESSAGES,
    build=build,
    excludes={"duo": "the script asks for one second factor"},
    needs=needs,
    blocking=blocking,
    flags=flags,
    users=users,
    secret_properties=secret_properties,
)
