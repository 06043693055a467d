# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Access Server clusters in the inventory: which node writes, which nodes it starts.

Nodes of one cluster (the same ``ovpnas_cluster``) share one configuration database, so the
configuration is written from one node, the writer: ``ovpnas_cluster_writer`` when a node
names it, else the cluster's first node among the play's hosts (inventory order); where that node
is a standby (it runs no services), the next live node. The writer starts and gates every node of
its cluster, one at a time, itself last.
"""

from __future__ import annotations


def cluster_members(name, hosts, hostvars):
    """The play's hosts whose ``ovpnas_cluster`` is ``name``, in play order."""
    return [host for host in hosts if hostvars[host].get("ovpnas_cluster") == name]


def cluster_writer(name, hosts, hostvars, standby=()):
    """The node that writes the configuration of cluster ``name`` (None when no play host is in it).

    A node in ``standby`` (one that runs no services, where ``sacli`` cannot write) hands the write to the
    cluster's first node that is not: the one after it, else the first.
    """
    members = cluster_members(name, hosts, hostvars)
    chosen = next((hostvars[host]["ovpnas_cluster_writer"] for host in members
                   if hostvars[host].get("ovpnas_cluster_writer")), None)
    if chosen is not None and chosen not in members:
        return None
    chosen = chosen or (members[0] if members else None)
    if chosen is None or chosen not in standby:
        return chosen
    start = members.index(chosen)
    live = [host for host in members[start:] + members[:start] if host not in standby]
    return live[0] if live else chosen


def apply_order(host, hosts, hostvars):
    """The nodes ``host`` starts and gates: its cluster's nodes, the others first and itself last, or just itself."""
    name = hostvars[host].get("ovpnas_cluster")
    if not name:
        return [host]
    members = cluster_members(name, hosts, hostvars)
    return [node for node in members if node != host] + [host]
