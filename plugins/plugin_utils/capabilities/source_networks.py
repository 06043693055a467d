# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Source networks: logins only from client addresses in the listed networks."""

from __future__ import annotations

import ipaddress

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import fail, shown, words

ORDER = 15
TITLE = "source networks"
LOCAL = True
MESSAGES = {"network_not_allowed": "Logins from your network are not allowed."}


def build(params, secrets):
    name = "post_auth_source_networks_allowed"
    networks = []
    for index, net in enumerate(words(params["source_networks_allowed"], name)):
        try:
            networks.append(str(ipaddress.ip_network(net, strict=False)))
        except ValueError:
            fail("%s[%d]" % (name, index), "%s is not a network like 10.0.0.0/8" % shown(net))
    if not networks:
        fail(name, "needs at least one network")
    return {"allowed": networks}
