# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Device pinning: VPN logins only from registered hardware addresses."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    exemptions,
    fail,
    flag,
    mapping,
    shown,
    user_name,
    within,
    words,
)

MESSAGES = {
    "device_missing_address": "This VPN client does not report a hardware address, which is required.",
    "device_invalid_address": "This VPN client reports a hardware address that is not valid.",
    "device_not_registered": "This device is not registered for your account.",
}
# six pairs of hex digits, all separated by colons, all by dashes, or not at all
HW_ADDRESS = re.compile(r"[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\Z")
# what iOS and Android clients send in IV_HWADDR instead of a MAC address: a UUID, 8-4-4-4-12 hex digits
DEVICE_UUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\Z")
# the user properties that hold a user's devices
SLOTS = ["pvt_hw_addr"] + ["pvt_hw_addr%d" % n for n in range(2, 11)]


def hw_address(value):
    """'00-1A-2b-3c-4D-5e' -> '00:1a:2b:3c:4d:5e'; a mobile client's device UUID in lower case; None for anything
    else (and what is not text).

    The script normalizes what clients report with its own copy (``blocks/device_pinning.py.j2``), so
    that an address registered here is the one it compares; a unit test holds the two to the same results.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = HW_ADDRESS.match(text)
    if match is None:
        return text.lower() if DEVICE_UUID.match(text) else None
    separator = match.group(1)
    if separator:
        text = text.replace(separator, "")
    text = text.lower()
    return ":".join(text[i:i + 2] for i in range(0, 12, 2))


def normalize_hw_address(value, name):
    address = hw_address(value)
    if address is None:
        fail(name, "%s is not a hardware address like 00:11:22:aa:bb:cc" % shown(value))
    return address


def build(params, secrets):
    prefix = "post_auth_device_pinning"
    networks = []
    for index, net in enumerate(words(params["device_pinning_networks"], prefix + "_networks")):
        try:
            networks.append(str(ipaddress.ip_network(net, strict=False)))
        except ValueError:
            fail("%s_networks[%d]" % (prefix, index), "%s is not a network like 10.0.0.0/8" % shown(net))
    settings = {
        "mode": choice(params["device_pinning_mode"], prefix + "_mode", ("auto", "manual")),
        "max_devices": within(params["device_pinning_max_devices"], prefix + "_max_devices", 1, 10),
        "networks": networks,
        "allow_missing_address": flag(params["device_pinning_allow_missing_address"],
                                      prefix + "_allow_missing_address"),
    }
    settings.update(exemptions(params, "device_pinning"))
    return settings


def registry(params):
    """The manual registry as user properties: {user: {pvt_hw_addr: ..., pvt_hw_addr2: ...}}."""
    name = "post_auth_device_pinning_registry"
    users = {}
    for user, addresses in mapping(params["device_pinning_registry"], name).items():
        user_name(user, "%s key %s" % (name, shown(user)))
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, (list, tuple)) or not 1 <= len(addresses) <= 10:
            fail("%s.%s" % (name, user), "must be a list of 1 to 10 hardware addresses")
        normalized = [normalize_hw_address(a, "%s.%s[%d]" % (name, user, i)) for i, a in enumerate(addresses)]
        if len(set(normalized)) != len(normalized):
            fail("%s.%s" % (name, user), "lists an address twice")
        users[str(user)] = dict(zip(SLOTS, normalized))
    return users


def users(params, settings):
    return registry(params)


def exclusive_prefixes(params):
    # with an exclusive registry, devices of users it does not list are removed
    return ["pvt_hw_addr"] if params["device_pinning_registry_exclusive"] else []


CAPABILITY = Capability(
    __name__,
    order=30,
    title="device pinning",
    messages=MESSAGES,
    build=build,
    local=True,
    users=users,
    exclusive_prefixes=exclusive_prefixes,
)
