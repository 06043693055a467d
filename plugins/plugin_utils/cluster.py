# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Access Server clusters in the inventory: which node writes, which nodes it starts.

Nodes of one cluster (the same ``ovpnas_cluster``) share one configuration database, so the
configuration is written from one node, the writer: ``ovpnas_cluster_writer`` when a node
names it, else the cluster's first node among the play's hosts (inventory order). The writer
starts and gates every node of its cluster, one at a time, itself last.
"""

from __future__ import annotations


def cluster_members(name, hosts, hostvars):
    """The play's hosts whose ``ovpnas_cluster`` is ``name``, in play order."""
    return [host for host in hosts if hostvars[host].get("ovpnas_cluster") == name]


def cluster_writer(name, hosts, hostvars):
    """The node that writes the configuration of cluster ``name`` (None when no play host is in it)."""
    members = cluster_members(name, hosts, hostvars)
    for host in members:
        chosen = hostvars[host].get("ovpnas_cluster_writer")
        if chosen:
            return chosen if chosen in members else None
    return members[0] if members else None


def apply_order(host, hosts, hostvars):
    """The nodes ``host`` starts and gates: its cluster's nodes, the others first and itself last, or just itself."""
    name = hostvars[host].get("ovpnas_cluster")
    if not name:
        return [host]
    members = cluster_members(name, hosts, hostvars)
    return [node for node in members if node != host] + [host]
