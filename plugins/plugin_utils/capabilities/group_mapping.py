# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Group mapping: ordered rules on what LDAP, RADIUS, SAML or custom authentication say about the user."""

from __future__ import annotations

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import (
    choice,
    fail,
    flag,
    mapping,
    regex,
    required,
    sequence,
    shown,
    str_list,
    text,
    user_name,
)

MESSAGES = {
    "directory_error": "Your group membership could not be checked. Please try again later.",
    "group_unmatched": "Your account is not allowed to use the VPN.",
    "group_denied": "Your account is not allowed to use the VPN.",
}
SOURCES = ("ldap", "radius", "saml", "custom_auth")
PROPERTY_TYPES = {
    "prop_superuser": bool,
    "prop_autologin": bool,
    "prop_deny_web": bool,
    "prop_lzo": bool,
    "prop_reroute_gw_override": ("disable", "dns_only", "global"),
    "prop_expire": int,
    "prop_expire_halt": bool,
}


def normalize_dn(value):
    """Compare DNs without regard to case or spaces around commas and equal signs.

    The script normalizes the DNs the directory returns with its own copy (``blocks/group_mapping.py.j2``),
    so that they compare with the rules' DNs normalized here; a unit test holds the two to the same results.
    """
    parts = []
    for rdn in value.split(","):
        if "=" in rdn:
            attr, val = rdn.split("=", 1)
            parts.append("%s=%s" % (attr.strip(), val.strip()))
        else:
            parts.append(rdn.strip())
    return ",".join(parts).lower()


def _properties(props, name):
    if props is None:
        return {}
    if not isinstance(props, dict):
        fail(name, "must be a mapping of user properties")
    result = {}
    for key, value in props.items():
        if key not in PROPERTY_TYPES:
            fail(name, "unknown property %s (allowed: %s)" % (shown(key), ", ".join(sorted(PROPERTY_TYPES))))
        kind = PROPERTY_TYPES[key]
        if kind is bool:
            if not isinstance(value, bool):
                fail("%s.%s" % (name, key), "must be true or false")
            result[key] = "true" if value else "false"
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail("%s.%s" % (name, key), "must be a number of seconds")
            result[key] = str(value)
        elif value not in kind:
            fail("%s.%s" % (name, key), "must be one of %s" % ", ".join(kind))
        else:
            result[key] = value
    return result


def _rule(rule, index, case_sensitive):
    # the argument specs check the rule's keys and the choice of radius_attribute; a list given
    # as text they would split at its commas, so the lists are checked here
    name = "post_auth_group_mapping_rules[%d]" % index
    mapping(rule, name)
    ldap_groups = [normalize_dn(g) if "=" in g else g.lower()
                   for g in str_list(rule.get("ldap_groups"), name + ".ldap_groups")]
    saml_groups = str_list(rule.get("saml_groups"), name + ".saml_groups", lower=not case_sensitive)
    custom_groups = str_list(rule.get("custom_auth_groups"), name + ".custom_auth_groups", lower=not case_sensitive)
    attribute = rule.get("radius_attribute")
    values = str_list(rule.get("radius_values"), name + ".radius_values", lower=not case_sensitive)
    pattern = rule.get("radius_pattern")
    if (values or pattern) and attribute is None:
        fail(name, "radius_values and radius_pattern need radius_attribute")
    if attribute is not None and not (values or pattern):
        fail(name, "radius_attribute needs radius_values or radius_pattern")
    if pattern is not None:
        if isinstance(pattern, str) and not pattern.strip():
            fail(name + ".radius_pattern", "must not be empty")
        regex(pattern, name + ".radius_pattern")
    if not (ldap_groups or saml_groups or custom_groups or attribute):
        fail(name, "needs at least one of ldap_groups, saml_groups, custom_auth_groups, radius_attribute")
    group = rule.get("group")
    if group is not None:
        group = user_name(group.strip() if isinstance(group, str) else group, name + ".group")
    deny = flag(rule.get("deny", False), name + ".deny")
    properties = _properties(rule.get("properties"), name + ".properties")
    if not (group or properties or deny):
        fail(name, "does nothing: set group, properties or deny")
    return {
        "name": str(rule.get("name") or "rule %d" % (index + 1)),
        "ldap_groups": ldap_groups,
        "saml_groups": saml_groups,
        "custom_auth_groups": custom_groups,
        "radius_attribute": attribute,
        "radius_values": values,
        "radius_pattern": pattern,
        "group": group or None,
        "properties": properties,
        "deny": deny,
    }


def build(params, secrets):
    prefix = "post_auth_group_mapping"
    sources = [choice(source, "%s_sources[%d]" % (prefix, index), SOURCES)
               for index, source in enumerate(sequence(params["group_mapping_sources"], prefix + "_sources"))]
    if not sources:
        fail(prefix + "_sources", "needs at least one of ldap, radius, saml, custom_auth")
    case_sensitive = flag(params["group_mapping_case_sensitive"], prefix + "_case_sensitive")
    rules = [_rule(rule, index, case_sensitive)
             for index, rule in enumerate(sequence(params["group_mapping_rules"], prefix + "_rules"))]
    ldap_mode = choice(params["group_mapping_ldap_mode"], prefix + "_ldap_mode", ("member_of", "search"))
    group_base = text(params["group_mapping_ldap_group_base"], prefix + "_ldap_group_base").strip()
    if "ldap" in sources and ldap_mode == "search" and not group_base:
        fail(prefix + "_ldap_group_base", "is needed with post_auth_group_mapping_ldap_mode=search")
    group_filter = text(params["group_mapping_ldap_group_filter"], prefix + "_ldap_group_filter").strip()
    if not (group_filter.startswith("(") and group_filter.endswith(")")):
        fail(prefix + "_ldap_group_filter", "must be an LDAP filter in parentheses")
    default_group = params["group_mapping_default_group"] or None
    if default_group is not None:
        user_name(default_group, prefix + "_default_group")
    on_error = choice(params["group_mapping_on_error"], prefix + "_on_error", ("deny", "default_group"))
    if on_error == "default_group" and not default_group:
        fail(prefix + "_on_error", "default_group needs post_auth_group_mapping_default_group")
    return {
        "sources": sources,
        "ldap_mode": ldap_mode,
        "ldap_member_attribute": required(params["group_mapping_ldap_member_attribute"],
                                          prefix + "_ldap_member_attribute"),
        "ldap_group_base": group_base,
        "ldap_group_filter": group_filter,
        "ldap_group_name_attribute": required(params["group_mapping_ldap_group_name_attribute"],
                                              prefix + "_ldap_group_name_attribute"),
        "saml_claim": required(params["group_mapping_saml_claim"], prefix + "_saml_claim"),
        "rules": rules,
        "default_group": default_group,
        "deny_unmatched": flag(params["group_mapping_deny_unmatched"], prefix + "_deny_unmatched"),
        "persist": flag(params["group_mapping_persist"], prefix + "_persist"),
        "on_error": on_error,
        "radius_framed_ip": flag(params["group_mapping_radius_framed_ip"], prefix + "_radius_framed_ip"),
        "radius_callback_flags": flag(params["group_mapping_radius_callback_flags"], prefix + "_radius_callback_flags"),
        "case_sensitive": case_sensitive,
    }


def blocking(settings):
    # LDAP searches go over the network
    return "ldap" in settings["sources"]


def flags(params, settings, messages):
    if settings["default_group"] or any(rule["group"] for rule in settings["rules"]):
        return {"GROUP_SELECT": True}
    return {}


CAPABILITY = Capability(
    __name__,
    order=20,
    title="group mapping",
    messages=MESSAGES,
    build=build,
    local=True,
    blocking=blocking,
    flags=flags,
)
