# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The drift report of playbooks/audit_postauth.yml, from each host's ovpnas.fleet.server_state report."""

from __future__ import annotations

import time


def _host_entry(host, data, register):
    result = data.get(register)
    entry = dict(host=host, cluster=data.get("ovpnas_cluster") or None, status="in_sync", error=None,
                 post_auth=dict(live_sha256=None, expected_sha256=None, match=True, live_header={}, sealed=False,
                                applied=None, differing_lines=[]),
                 app_verify=dict(live_sha256=None, expected_sha256=None, match=True), differs=[], users_differ=[])
    if not isinstance(result, dict):
        entry.update(status="unreachable", error="no result (the host was not reached)")
        return entry
    if result.get("unreachable"):
        entry.update(status="unreachable", error=str(result.get("msg") or "unreachable"))
        return entry
    if result.get("standby"):
        entry.update(status="standby", error=str(result.get("msg") or "standby"))
        return entry
    if result.get("failed") or "live" not in result:
        entry.update(status="unreachable", error=str(result.get("msg") or "the read failed"))
        return entry
    live = result["live"]
    script = result.get("post_auth") or {}
    entry["post_auth"] = dict(live_sha256=live["post_auth"]["sha256"], expected_sha256=script.get("sha256_after"),
                              match=not script.get("changed", False), live_header=live["post_auth"]["header"],
                              sealed=live["post_auth"]["sealed"], applied=live.get("applied"),
                              differing_lines=list(script.get("differing_lines") or []))
    if "post_auth" not in result:
        # the inventory does not manage the script
        entry["post_auth"].update(expected_sha256=live["post_auth"]["sha256"], match=True)
    query_file = result.get("app_verify") or {}
    entry["app_verify"] = dict(live_sha256=live["app_verify"]["sha256"],
                               expected_sha256=query_file.get("sha256_after", live["app_verify"]["sha256"]),
                               match=not query_file.get("changed", False))
    entry["differs"] = list(result.get("changed_keys") or [])
    entry["users_differ"] = list(result.get("changed_users") or [])
    pending = result.get("pending_apply")
    if pending:
        entry["differs"].append("not applied yet: a change of %s is waiting for sacli start"
                                % (pending.get("since") or "unknown date"))
    if entry["differs"] or entry["users_differ"]:
        entry["status"] = "drift"
    return entry


def audit_report(hosts, hostvars, register="ovpnas_audit", inventory="", version=""):
    """The report: when, what, totals and one entry per host (see playbooks/audit_postauth.yml)."""
    entries = [_host_entry(host, hostvars[host], register) for host in hosts]
    totals = dict(hosts=len(entries))
    for status in ("in_sync", "drift", "unreachable", "standby"):
        totals[status] = sum(1 for entry in entries if entry["status"] == status)
    return dict(generated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), inventory=inventory or "",
                collection_version=version or "", totals=totals, hosts=entries)


class FilterModule:
    def filters(self):
        return {"audit_report": audit_report}
