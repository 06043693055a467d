# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the rollout role: the plan, the nodes a host starts, what the rollout did, the summary of each batch.

What the rollout did on a host is one record, ``rollout_record`` (see ``rollout_record``), that the
role notes at the end of the host's batch; the summary reads only those records, and the plan only
the role's probe results (``rollout_probe``).
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import APP_VERIFY_KEY, DEFAULT_SACLI, POST_AUTH_KEY
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.cluster import apply_order, cluster_members, cluster_writer
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.shapes import login_errors

COLUMNS = ("host", "cluster", "change", "script", "restarted", "clients", "gate")
PROBE = "rollout_probe"
RECORD = "rollout_record"


def cluster_nodes(host, hosts, hostvars):
    """The nodes ``host`` starts and gates: the other nodes of its cluster first, itself last."""
    return apply_order(host, list(hosts), hostvars)


def node_sacli_path(node, hostvars):
    """The sacli path of ``node`` (its ``ovpnas_sacli_path``, else sacli's default place)."""
    return hostvars[node].get("ovpnas_sacli_path") or DEFAULT_SACLI


def live_sha256(converged):
    """{key: sha256} of the script and the query file a converge result left live."""
    live = {}
    for option, key in (("post_auth", POST_AUTH_KEY), ("app_verify", APP_VERIFY_KEY)):
        part = (converged or {}).get(option)
        if isinstance(part, dict) and part.get("sha256_after"):
            live[key] = part["sha256_after"]
    return live


def rollout_login_errors(hosts, hostvars, logins, limit=10):
    """Why the canary logins of the servers ``hosts`` cannot be run, one line per problem with the servers it hits.

    A server's logins are its own ``rollout_canary_logins`` (a host or group variable), else
    ``logins``, the value of the play. Every distinct value is checked once.
    """
    hits, known = {}, {}
    for host in hosts:
        own = hostvars[host].get("rollout_canary_logins", logins)
        try:
            key = json.dumps(own, sort_keys=True, default=str)
        except (TypeError, ValueError):
            key = None
        errors = known[key] if key in known else login_errors(own)
        if key is not None:
            known[key] = errors
        for error in errors:
            hits.setdefault(error, []).append(host)
    return ["%s (%s)" % (error, _listed(found, limit)) for error, found in hits.items()]


def _probes(hosts, hostvars):
    """{host: (its probe result, its ovpnas_cluster or None)}, each host's variables read once (Ansible works them
    out anew on every ``hostvars[host]``)."""
    found = {}
    for host in hosts:
        variables = hostvars[host]
        found[host] = (variables.get(PROBE) or {}, variables.get("ovpnas_cluster") or None)
    return found


def _queue(hosts, probes):
    queued = [host for host in hosts if probes[host][0].get("differs")]
    clusters = {probes[host][1] for host in queued} - {None}
    return [host for host in hosts if host in queued
            or (probes[host][1] in clusters and not probes[host][0].get("standby"))]


STAGES = ("all", "canary", "promote")


def _staged(queue, probes, stage, serial):
    """The part of ``queue`` a run of ``stage`` goes to: all of it, or in the canary stage its first batch, with
    the other queued nodes of the clusters in that batch (their writer applies for them)."""
    if stage != "canary" or not queue:
        return queue
    first = batches(queue, serial)[0]
    clusters = {probes[host][1] for host in first} - {None}
    return [host for host in queue if host in first or probes[host][1] in clusters]


def rollout_queue(hosts, hostvars, stage="all", serial=None):
    """The hosts a rollout goes to: those whose probe found a difference, with the other nodes of their clusters
    (those that run services); in the canary stage only the first batch of them (``serial``)."""
    hosts = list(hosts)
    probes = _probes(hosts, hostvars)
    return _staged(_queue(hosts, probes), probes, _stage(stage), serial)


def _stage(stage):
    if stage not in STAGES:
        raise AnsibleFilterError("the stage %r is none of %s" % (stage, ", ".join(STAGES)))
    return stage


def rollout_stage_error(hosts, hostvars, stage):
    """Why a run of ``stage`` cannot go on: a promotion when no server holds the change yet; else an empty text.

    A promotion continues a rollout whose canary batch passed in an earlier run (``stage`` canary): its servers
    hold the change, so the probe finds them as the inventory says. Where every server that runs services still
    differs, no canary passed with this change (it failed and was restored, or never ran), and nothing is promoted.
    """
    if _stage(stage) != "promote":
        return ""
    hosts = list(hosts)
    probes = _probes(hosts, hostvars)
    queue = _queue(hosts, probes)
    serving = [host for host in hosts if not probes[host][0].get("standby")]
    if queue and all(host in queue for host in serving):
        return ("nothing to promote: none of the %d servers holds this change yet, so no canary batch has passed with "
                "it; roll it out with -e ovpnas_stage=canary first" % len(serving))
    return ""


def rollout_promotion(hosts, hostvars):
    """Lines that end a canary stage: the servers of the canary batch, and those that wait for the promotion."""
    hosts = list(hosts)
    waiting = [host for host in hostvars if host not in hosts
               and isinstance(hostvars[host].get(PROBE), dict) and hostvars[host][PROBE].get("differs")]
    lines = ["The canary batch passed: %s hold%s the change" % (_listed(hosts), "s" if len(hosts) == 1 else "")]
    if waiting:
        lines.append("%d server%s wait%s for the promotion: %s" % (
            len(waiting), "" if len(waiting) == 1 else "s", "s" if len(waiting) == 1 else "", _listed(waiting)))
        lines.append("Promote to continue: run the same rollout again with -e ovpnas_stage=promote")
    else:
        lines.append("No other server differs: there is nothing to promote")
    return lines


def rollout_writer(cluster, hosts, hostvars):
    """The node that writes ``cluster``: the one chosen (``ovpnas_cluster_writer``, else the first), or, where the
    probe found it a standby, the cluster's next node that runs services."""
    members = cluster_members(cluster, list(hosts), hostvars)
    standby = [host for host, (probe, _cluster) in _probes(members, hostvars).items() if probe.get("standby")]
    return cluster_writer(cluster, list(hosts), hostvars, standby)


def rollout_database_errors(hosts, hostvars, limit=10):
    """Inventory mistakes the probes show, one line each: servers that name one configuration database without
    being declared one cluster (one server under two inventory names), and a cluster whose nodes name different
    databases (servers that are not one cluster)."""
    databases, clusters = {}, {}
    probes = _probes(list(hosts), hostvars)
    for host, (probe, cluster) in probes.items():
        database = probe.get("database")
        if database:
            databases.setdefault(database, []).append(host)
        if cluster and database:
            clusters.setdefault(cluster, {}).setdefault(database, []).append(host)
    errors = []
    for database, found in databases.items():
        declared = {probes[host][1] for host in found}
        if len(found) > 1 and (None in declared or len(declared) > 1):
            errors.append("%s use one configuration database (%s): one server under several inventory names, or "
                          "nodes of one cluster; declare them one ovpnas_cluster, or keep one name"
                          % (_listed(found, limit), database))
    for cluster, found in clusters.items():
        if len(found) > 1:
            errors.append("cluster %s: its nodes use different configuration databases (%s), so they are not one "
                          "cluster; give each its own ovpnas_cluster, or none"
                          % (cluster, "; ".join("%s: %s" % (_listed(nodes, limit), database)
                                                for database, nodes in found.items())))
    return errors


def rollout_plan(hosts, hostvars, serial, stage="all"):
    """Lines that say which servers the rollout goes to, in which batches, and which it leaves alone."""
    hosts = list(hosts)
    probes = _probes(hosts, hostvars)
    differ = _queue(hosts, probes)
    queue = _staged(differ, probes, _stage(stage), serial)
    results = {host: probe for host, (probe, _cluster) in probes.items()}
    standby = [host for host in hosts if results[host].get("standby")]
    in_sync = [host for host in hosts if host not in queue and host not in standby]
    if not queue:
        lines = ["Nothing to roll out: %d of %d servers are as the inventory says (one read each)"
                 % (len(in_sync), len(hosts))]
    else:
        plan = batches(queue, serial)
        lines = ["Rolling out to %d of %d servers, in %d batches: %s" % (
            len(queue), len(hosts), len(plan), "; ".join(", ".join(batch) for batch in plan))]
        if in_sync:
            lines.append("Already as the inventory says, left alone: %s" % _listed(in_sync))
        waiting = [host for host in differ if host not in queue]
        if waiting:
            lines.append("The canary stage: %d more wait for the promotion (-e ovpnas_stage=promote): %s"
                         % (len(waiting), _listed(waiting)))
    if standby:
        lines.append("Standby (no services run there), skipped: %s" % ", ".join(standby))
    return lines


def _listed(hosts, limit=20):
    shown = ", ".join(hosts[:limit])
    return shown + (" and %d more" % (len(hosts) - limit) if len(hosts) > limit else "")


def batches(hosts, serial):
    """The batches Ansible's ``serial`` makes of ``hosts``: numbers or percentages, the last one repeated."""
    sizes = serial if isinstance(serial, (list, tuple)) else [serial]
    sizes = sizes or [0]
    result, start, index = [], 0, 0
    while start < len(hosts):
        size = sizes[min(index, len(sizes) - 1)]
        text = str(size).strip()
        try:
            # the way Ansible computes it (pct_to_int), rounding included
            size = (int((int(text[:-1]) / 100.0) * len(hosts)) or 1) if text.endswith("%") else int(text)
        except ValueError:
            raise AnsibleFilterError("serial: %r is neither a number nor a percentage" % (size,)) from None
        if size <= 0:
            size = len(hosts)
        result.append(list(hosts[start:start + size]))
        start += size
        index += 1
    return result


def rollout_record(converged, nodes=(), failure=None, restored=None, restore_failure=None):
    """What the rollout did on a host, as the rollout role notes it in ``rollout_record``.

    ``converged`` is the result of the host's converge (None when it was not reached), ``nodes`` what the
    start and the gate did on each node the host applied for, ``failure`` why the start or the gate failed,
    ``restored`` the result of the restore that followed and ``restore_failure`` why starting or gating the
    restored configuration failed. The record:

    * ``converge``: None when not reached, else ``changed``, ``failed``, ``msg`` (of a failure), ``skipped``,
      ``standby``, ``cluster_writer`` (for another node of a cluster) and ``script`` (the sha256 live after it);
    * ``nodes``: per node started, ``node``, ``phase`` (``rollout`` or ``restore``), ``standby``,
      ``restarted`` (what ``start`` restarted, in its order), ``vpn_clients`` (connected before), ``logins``
      (canary logins run) and ``failed``;
    * ``failure`` and ``restore_failure``: text or None;
    * ``restored``: None when nothing was restored, else ``changed`` and ``script`` (the sha256 live after it).
    """
    converge = None
    if isinstance(converged, dict) and converged:
        script = (converged.get("post_auth") or {}).get("sha256_after")
        converge = dict(changed=bool(converged.get("changed")), failed=bool(converged.get("failed")),
                        msg=converged.get("msg") if converged.get("failed") else None,
                        skipped=bool(converged.get("skipped")), standby=bool(converged.get("standby")),
                        cluster_writer=converged.get("cluster_writer"), script=script)
    entries = []
    for entry in nodes or ():
        will = entry.get("will_restart")
        entries.append(dict(node=entry.get("node"), phase=entry.get("phase"), standby=bool(entry.get("standby")),
                            restarted=list(will if will is not None else entry.get("restarted") or []),
                            vpn_clients=entry.get("vpn_clients"), logins=entry.get("logins", 0),
                            failed=bool(entry.get("failed")), soak=_soak(entry.get("soak"))))
    if isinstance(restored, dict) and not restored.get("skipped"):
        restored = dict(changed=bool(restored.get("changed")),
                        script=(restored.get("post_auth") or {}).get("sha256_after"))
    else:
        restored = None
    return dict(converge=converge, nodes=entries, failure=failure or None, restored=restored,
                restore_failure=restore_failure or None)


def _window(summary):
    summary = summary if isinstance(summary, dict) else {}
    return dict(logins=summary.get("logins"), failures=summary.get("failures"), rate=summary.get("failure_rate"))


def _soak(result):
    """What the soak of a node found (the result of ovpnas.fleet.login_soak), or None where none ran."""
    if not isinstance(result, dict) or result.get("skipped") or not result:
        return None
    verdict = result.get("verdict") or "error"
    return dict(verdict=verdict, duration=result.get("duration"), before=_window(result.get("before")),
                after=_window(result.get("after")), msg=result.get("msg") if verdict != "pass" else None)


def _rate(window):
    if window.get("logins") is None:
        return "?"
    rate = window.get("rate")
    shown = "%.1f%%" % rate if isinstance(rate, (int, float)) else "-"
    return "%s logins, %s failed" % (window["logins"], shown)


def _soak_line(entry):
    """One line per soaked node: its verdict, and the logins and failure rates before and after its change (why it
    failed is the failure's own line)."""
    host, soak = entry["node"], entry["soak"]
    verdict = {"pass": "passed", "fail": "FAILED", "inconclusive": "inconclusive"}.get(soak["verdict"], "FAILED")
    line = "%s: soak of %s s %s; before the change %s; after it %s" % (
        host, soak.get("duration") or "?", verdict, _rate(soak["before"]), _rate(soak["after"]))
    if soak.get("msg") and not entry.get("failed"):
        line += " (%s)" % soak["msg"]
    return line


def _record(hostvars, host):
    record = hostvars[host].get(RECORD)
    return record if isinstance(record, dict) else {}


def _node_entries(hostvars, hosts, node):
    """What the rollout did on ``node`` (in its own record or its cluster writer's)."""
    return [entry for host in hosts for entry in _record(hostvars, host).get("nodes") or []
            if entry.get("node") == node]


def _row(host, hostvars, hosts):
    record = _record(hostvars, host)
    converged = record.get("converge")
    cluster = hostvars[host].get("ovpnas_cluster") or "-"
    row = dict(host=host, cluster=cluster, change="not reached", script="", restarted="", clients="", gate="")
    if not converged:
        return row, "not reached"
    started = [entry for entry in _node_entries(hostvars, hosts, host) if entry.get("phase") == "rollout"]
    if started:
        entry = started[-1]
        row["restarted"] = ", ".join(entry.get("restarted") or []) or "nothing"
        row["clients"] = "" if entry.get("vpn_clients") is None else str(entry["vpn_clients"])
        if entry.get("standby"):
            row.update(restarted="", gate="standby: no services run here")
        else:
            row["gate"] = "FAILED" if entry.get("failed") else "passed"
    failure = record.get("failure")
    if converged.get("failed"):
        row.update(change="failed", gate="not run", failure=converged.get("msg"))
        return row, "failed"
    if failure:
        restored = record.get("restored") or {}
        restore_failure = record.get("restore_failure")
        # the restore itself worked (a failed restore fails its task); starting or gating what it put back did not
        after = ("; the previous configuration was restored, but starting and gating it again failed: %s"
                 % restore_failure) if restore_failure else ""
        row.update(change="restored" if restored.get("changed") and not restore_failure else "FAILED",
                   gate="FAILED", failure=failure + after)
        if restored.get("script"):
            row["script"] = restored["script"][:12]
        return row, "failed"
    if converged.get("skipped"):
        if converged.get("standby"):
            row.update(change="skipped", gate="standby: no services run here")
            return row, "skipped"
        writer = converged.get("cluster_writer")
        if started:
            row.update(change="via %s" % writer)
            return row, "cluster node"
        row.update(change="via %s" % writer, gate="-")
        return row, "cluster node"
    row["script"] = (converged.get("script") or "")[:12]
    if converged.get("changed"):
        row["change"] = "changed"
        if not started:
            row["gate"] = "not run"
        return row, "changed"
    row.update(change="unchanged", restarted="-", gate="-")
    return row, "unchanged"


def _short(text, limit=160):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _table(rows):
    widths = {column: max([len(column)] + [len(str(row[column])) for row in rows]) for column in COLUMNS}
    lines = ["  ".join(column.upper().ljust(widths[column]) for column in COLUMNS).rstrip()]
    for row in rows:
        lines.append("  ".join(str(row[column]).ljust(widths[column]) for column in COLUMNS).rstrip())
    return lines


def rollout_summary(current, hosts, hostvars, serial):
    """Lines that summarize the batch of ``current`` and the rollout so far."""
    hosts = list(hosts)
    plan = batches(hosts, serial)
    number = next((i for i, batch in enumerate(plan) if current in batch), len(plan) - 1)
    lines = ["Batch %d of %d (%s)" % (number + 1, len(plan), ", ".join(plan[number]) if plan else "no hosts")]
    rows, counts = [], {}
    for index, batch in enumerate(plan):
        for host in batch:
            row, kind = _row(host, hostvars, hosts)
            if index <= number:
                counts[kind] = counts.get(kind, 0) + 1
            if index == number:
                rows.append(row)
    lines += _table(rows)
    # a failure at the start or the gate names its node already
    lines += [_short(row["failure"] if row["change"] != "failed" else "%s: %s" % (row["host"], row["failure"]), 400)
              for row in rows if row.get("failure")]
    lines += [_short(_soak_line(entry), 400) for row in rows
              for entry in _record(hostvars, row["host"]).get("nodes") or []
              if entry.get("phase") == "rollout" and isinstance(entry.get("soak"), dict)]
    reached = sum(len(batch) for batch in plan[:number + 1])
    order = ("changed", "unchanged", "cluster node", "skipped", "failed", "not reached")
    parts = ["%d %s" % (counts[kind], kind + ("s" if kind == "cluster node" and counts[kind] != 1 else ""))
             for kind in order if counts.get(kind)]
    total = "Total after batch %d of %d: %d of %d hosts reached (%s)" % (
        number + 1, len(plan), reached, len(hosts), ", ".join(parts) or "none")
    if counts.get("failed") and reached < len(hosts):
        total += "; the rollout stops here, %d hosts not reached" % (len(hosts) - reached)
    # the servers the probe found as the inventory says, which the rollout leaves alone
    probed = [hostvars[host].get(PROBE) for host in hostvars if host not in hosts]
    in_sync = sum(1 for result in probed if isinstance(result, dict) and not result.get("differs")
                  and not result.get("standby") and not result.get("failed"))
    if in_sync:
        total += "; %d more already as the inventory says" % in_sync
    lines.append(total)
    return lines


class FilterModule:
    def filters(self):
        return {
            "cluster_nodes": cluster_nodes,
            "live_sha256": live_sha256,
            "node_sacli_path": node_sacli_path,
            "rollout_batches": batches,
            "rollout_database_errors": rollout_database_errors,
            "rollout_plan": rollout_plan,
            "rollout_promotion": rollout_promotion,
            "rollout_login_errors": rollout_login_errors,
            "rollout_queue": rollout_queue,
            "rollout_record": rollout_record,
            "rollout_stage_error": rollout_stage_error,
            "rollout_summary": rollout_summary,
            "rollout_writer": rollout_writer,
        }
