# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validate the post_auth role's variables and turn them into the script's settings.

The result is plain data (str, int, bool, None, lists, dicts) that the templates render
with the pyliteral filter. Every problem is reported with the name of the variable.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

# The order in which capabilities run; the first refusal ends the chain. The last step is
# the MFA: Duo or the custom challenge/response, one of them.
CHAIN = ("custom_auth", "group_mapping", "device_pinning", "host_checker", "duo", "challenge")

DEFAULT_MESSAGES = {
    "internal_error": "Authentication failed. Please contact your administrator.",
    "directory_error": "Your group membership could not be checked. Please try again later.",
    "group_unmatched": "Your account is not allowed to use the VPN.",
    "group_denied": "Your account is not allowed to use the VPN.",
    "device_missing_address": "This VPN client does not report a hardware address, which is required.",
    "device_invalid_address": "This VPN client reports a hardware address that is not valid.",
    "device_not_registered": "This device is not registered for your account.",
    "platform_not_allowed": "VPN connections from this platform are not allowed.",
    "client_too_old": "Please update your VPN client to version {min_version} or later.",
    "app_missing": "{app} is required on this device.",
    "app_outdated": "{app} must be updated to version {min_version} or later.",
    "app_unverifiable": "{app} could not be verified on this device.",
    "platform_cannot_report": "This device cannot report its applications, which is required.",
    "custom_auth_failed": "Wrong user name or password.",
    "custom_auth_unavailable": "Authentication is unavailable right now. Please try again later.",
    "duo_prompt": "Duo two-factor: enter a passcode, or push, phone or sms",
    "duo_sms_sent": "Duo sent you new passcodes by SMS: enter one",
    "duo_invalid_answer": "Enter a Duo passcode, or push, phone or sms.",
    "duo_denied": "Duo two-factor authentication was denied.",
    "duo_enroll": "Enroll in Duo two-factor authentication first: {url}",
    "duo_unavailable": "Two-factor authentication is unavailable right now. Please try again later.",
    "challenge_wrong": "Wrong code.",
    "challenge_retry": "Wrong code, try again.",
    "challenge_no_secret": "No one-time code is set up for your account.",
    "challenge_unavailable": "Your code could not be checked right now. Please try again later.",
}

# The messages each local capability shows; the other capabilities' start with their name
# (duo_prompt). A script carries the messages of its capabilities only, and those of no capability.
CAPABILITY_MESSAGES = {
    "group_mapping": ("directory_error", "group_unmatched", "group_denied"),
    "device_pinning": ("device_missing_address", "device_invalid_address", "device_not_registered"),
    "host_checker": ("platform_not_allowed", "client_too_old", "app_missing", "app_outdated", "app_unverifiable",
                     "platform_cannot_report"),
}

MAPPING_SOURCES = ("ldap", "radius", "saml", "custom_auth")
RADIUS_ATTRIBUTES = {"Filter-Id": 11, "Class": 25, "Framed-Pool": 88}
PROPERTY_TYPES = {
    "prop_superuser": bool,
    "prop_autologin": bool,
    "prop_deny_web": bool,
    "prop_lzo": bool,
    "prop_reroute_gw_override": ("disable", "dns_only", "global"),
    "prop_expire": int,
    "prop_expire_halt": bool,
}
APP_ERRORS = ("ERR_NO_VERSION", "ERR_MANY_FOUND", "ERR_REGEX")
APP_NAME = re.compile(r"^[A-Za-z0-9_]+\Z")
HW_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


class SettingsError(ValueError):
    """A role variable is not valid; the message starts with its name."""


def _fail(name, message):
    raise SettingsError("%s: %s" % (name, message))


# how much of a bad value a message shows: never more than this, and never a secret
SHOWN = 40
# Access Server's user names (and group names) as the collection accepts them
NAME_LENGTH = 128
BOOLEANS = {"yes": True, "on": True, "true": True, "1": True, "y": True, "t": True,
            "no": False, "off": False, "false": False, "0": False, "n": False, "f": False}


def shown(value):
    """A short, safe rendering of a bad value for a message: its start, quoted."""
    text = value if isinstance(value, str) else repr(value)
    text = text[:SHOWN] + "..." if len(text) > SHOWN else text
    return repr(text) if isinstance(value, str) else text


def listed(names):
    """Unknown names for a message: each shortened, a few at most, in a stable order."""
    names = sorted(names, key=str)
    text = ", ".join(shown(name) if not isinstance(name, str) or len(name) > SHOWN else name for name in names[:5])
    return text + (" and %d more" % (len(names) - 5) if len(names) > 5 else "")


def flag(value, name):
    """A boolean as Ansible reads one (true/false, yes/no, on/off, 1/0); anything else fails."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return BOOLEANS[value.strip().lower()]
    _fail(name, "must be true or false")


def role_flag(params, key, default=False):
    """The role's boolean variable ``post_auth_<key>``; unset or null is ``default``."""
    value = params.get(key)
    return default if value is None else flag(value, "post_auth_" + key)


def user_name(value, name):
    """A user or group name Access Server can hold: text, no control characters, no surrounding spaces."""
    if not isinstance(value, str) or not value:
        _fail(name, "must be a non-empty user name")
    if len(value) > NAME_LENGTH:
        _fail(name, "is longer than %d characters" % NAME_LENGTH)
    if value != value.strip() or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        _fail(name, "%s holds control characters or surrounding spaces" % shown(value))
    return value


def _choice(params, key, name, choices, default):
    """One of `choices` (named in this order in the message), `default` when unset."""
    value = params.get(key) or default
    if value not in choices:
        listed = "%s or %s" % (choices[0], choices[1]) if len(choices) == 2 else "one of %s" % ", ".join(choices)
        _fail(name, "must be %s" % listed)
    return value


def _str_list(value, name, lower=False):
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        _fail(name, "must be a list of strings")
    result = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            _fail("%s[%d]" % (name, index), "must be a non-empty string")
        result.append(item.strip().lower() if lower else item.strip())
    return result


def normalize_dn(value):
    """Compare DNs without regard to case or spaces around commas and equal signs."""
    parts = []
    for rdn in value.split(","):
        if "=" in rdn:
            attr, val = rdn.split("=", 1)
            parts.append("%s=%s" % (attr.strip(), val.strip()))
        else:
            parts.append(rdn.strip())
    return ",".join(parts).lower()


def normalize_hw_address(value, name):
    if not isinstance(value, str) or not HW_ADDRESS.match(value.strip()):
        _fail(name, "%s is not a hardware address like 00:11:22:aa:bb:cc" % shown(value))
    digits = re.sub(r"[^0-9A-Fa-f]", "", value).lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _version(value, name):
    if isinstance(value, float):
        # YAML reads 1.10 as the number 1.1: only a quoted version is unambiguous
        _fail(name, "%s is a number; quote the version so that YAML keeps it as written" % shown(value))
    text = str(value).strip()
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if not numbers or not re.match(r"^v?\d+(\.\d+)*$", text):
        _fail(name, "%s is not a version like 115.0.2" % shown(value))
    return numbers


def _messages(overrides):
    messages = dict(DEFAULT_MESSAGES)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_MESSAGES:
            _fail("post_auth_messages",
                  "unknown message %s (known: %s)" % (shown(key), ", ".join(sorted(DEFAULT_MESSAGES))))
        if not isinstance(value, str) or not value.strip():
            _fail("post_auth_messages.%s" % key, "must be a non-empty string")
        messages[key] = value
    return messages


def message_capability(key):
    """The capability that shows message ``key``; None for the script's own (internal_error)."""
    for feature, keys in CAPABILITY_MESSAGES.items():
        if key in keys:
            return feature
    for feature in CHAIN:
        if key.startswith(feature + "_"):
            return feature
    return None


def _properties(props, name):
    result = {}
    for key, value in (props or {}).items():
        if key not in PROPERTY_TYPES:
            _fail(name, "unknown property %s (allowed: %s)" % (shown(key), ", ".join(sorted(PROPERTY_TYPES))))
        kind = PROPERTY_TYPES[key]
        if kind is bool:
            if not isinstance(value, bool):
                _fail("%s.%s" % (name, key), "must be true or false")
            result[key] = "true" if value else "false"
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                _fail("%s.%s" % (name, key), "must be a number of seconds")
            result[key] = str(value)
        elif value not in kind:
            _fail("%s.%s" % (name, key), "must be one of %s" % ", ".join(kind))
        else:
            result[key] = value
    return result


def _group_mapping(params):
    prefix = "post_auth_group_mapping"
    sources = _str_list(params.get("group_mapping_sources"), prefix + "_sources")
    for source in sources:
        if source not in MAPPING_SOURCES:
            _fail(prefix + "_sources", "unknown source %s (%s)" % (shown(source), ", ".join(MAPPING_SOURCES)))
    if not sources:
        _fail(prefix + "_sources", "needs at least one of %s" % ", ".join(MAPPING_SOURCES))
    case_sensitive = role_flag(params, "group_mapping_case_sensitive")
    rules = []
    for index, rule in enumerate(params.get("group_mapping_rules") or []):
        name = "%s_rules[%d]" % (prefix, index)
        if not isinstance(rule, dict):
            _fail(name, "must be a mapping")
        unknown = set(rule) - {"name", "ldap_groups", "saml_groups", "custom_auth_groups", "radius_attribute",
                               "radius_values", "radius_pattern", "group", "properties", "deny"}
        if unknown:
            _fail(name, "unknown keys %s" % listed(unknown))
        ldap_groups = [normalize_dn(g) if "=" in g else g.lower()
                       for g in _str_list(rule.get("ldap_groups"), name + ".ldap_groups")]
        saml_groups = _str_list(rule.get("saml_groups"), name + ".saml_groups", lower=not case_sensitive)
        custom_groups = _str_list(rule.get("custom_auth_groups"), name + ".custom_auth_groups",
                                  lower=not case_sensitive)
        attribute = rule.get("radius_attribute")
        values = _str_list(rule.get("radius_values"), name + ".radius_values", lower=not case_sensitive)
        pattern = rule.get("radius_pattern")
        if attribute is not None and attribute not in RADIUS_ATTRIBUTES:
            _fail(name + ".radius_attribute", "must be one of %s" % ", ".join(sorted(RADIUS_ATTRIBUTES)))
        if (values or pattern) and attribute is None:
            _fail(name, "radius_values and radius_pattern need radius_attribute")
        if attribute is not None and not (values or pattern):
            _fail(name, "radius_attribute needs radius_values or radius_pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                _fail(name + ".radius_pattern", "is not a regular expression: %s" % exc)
        if not (ldap_groups or saml_groups or custom_groups or attribute):
            _fail(name, "needs at least one of ldap_groups, saml_groups, custom_auth_groups, radius_attribute")
        group = rule.get("group")
        if group is not None:
            group = user_name(group.strip() if isinstance(group, str) else group, name + ".group")
        deny = flag(rule.get("deny", False), name + ".deny")
        properties = _properties(rule.get("properties"), name + ".properties")
        if not (group or properties or deny):
            _fail(name, "does nothing: set group, properties or deny")
        rules.append({
            "name": str(rule.get("name") or "rule %d" % (index + 1)),
            "ldap_groups": ldap_groups,
            "saml_groups": saml_groups,
            "custom_auth_groups": custom_groups,
            "radius_attribute": RADIUS_ATTRIBUTES.get(attribute),
            "radius_values": values,
            "radius_pattern": pattern,
            "group": group.strip() if group else None,
            "properties": properties,
            "deny": deny,
        })
    ldap_mode = _choice(params, "group_mapping_ldap_mode", prefix + "_ldap_mode", ("member_of", "search"),
                        "member_of")
    group_base = params.get("group_mapping_ldap_group_base") or ""
    if "ldap" in sources and ldap_mode == "search" and not group_base:
        _fail(prefix + "_ldap_group_base", "is needed with post_auth_group_mapping_ldap_mode=search")
    group_filter = params.get("group_mapping_ldap_group_filter") or "(member={user_dn})"
    if not (group_filter.startswith("(") and group_filter.endswith(")")):
        _fail(prefix + "_ldap_group_filter", "must be an LDAP filter in parentheses")
    default_group = params.get("group_mapping_default_group") or None
    if default_group is not None:
        default_group = user_name(default_group, prefix + "_default_group")
    on_error = _choice(params, "group_mapping_on_error", prefix + "_on_error", ("deny", "default_group"), "deny")
    if on_error == "default_group" and not default_group:
        _fail(prefix + "_on_error", "default_group needs post_auth_group_mapping_default_group")
    return {
        "sources": sources,
        "ldap_mode": ldap_mode,
        "ldap_member_attribute": params.get("group_mapping_ldap_member_attribute") or "memberOf",
        "ldap_group_base": group_base,
        "ldap_group_filter": group_filter,
        "ldap_group_name_attribute": params.get("group_mapping_ldap_group_name_attribute") or "cn",
        "saml_claim": params.get("group_mapping_saml_claim") or "groups",
        "rules": rules,
        "default_group": default_group,
        "deny_unmatched": role_flag(params, "group_mapping_deny_unmatched"),
        "persist": role_flag(params, "group_mapping_persist"),
        "on_error": on_error,
        "radius_framed_ip": role_flag(params, "group_mapping_radius_framed_ip", True),
        "radius_callback_flags": role_flag(params, "group_mapping_radius_callback_flags"),
        "case_sensitive": case_sensitive,
    }


def _device_pinning(params):
    prefix = "post_auth_device_pinning"
    mode = _choice(params, "device_pinning_mode", prefix + "_mode", ("auto", "manual"), "auto")
    max_devices = params.get("device_pinning_max_devices", 1)
    if isinstance(max_devices, bool) or not isinstance(max_devices, int) or not 1 <= max_devices <= 10:
        _fail(prefix + "_max_devices", "must be a number from 1 to 10")
    networks = []
    for index, net in enumerate(_str_list(params.get("device_pinning_networks"), prefix + "_networks")):
        try:
            networks.append(str(ipaddress.ip_network(net, strict=False)))
        except ValueError:
            _fail("%s_networks[%d]" % (prefix, index), "%s is not a network like 10.0.0.0/8" % shown(net))
    return {
        "mode": mode,
        "max_devices": max_devices,
        "networks": networks,
        "exempt_users": _str_list(params.get("device_pinning_exempt_users"), prefix + "_exempt_users", lower=True),
        "exempt_groups": _str_list(params.get("device_pinning_exempt_groups"), prefix + "_exempt_groups", lower=True),
        "allow_missing_address": role_flag(params, "device_pinning_allow_missing_address"),
    }


def device_registry(params):
    """The manual registry as sacli_userprop users: {user: {pvt_hw_addr: ..., pvt_hw_addr2: ...}}."""
    name = "post_auth_device_pinning_registry"
    registry = params.get("device_pinning_registry") or {}
    if not isinstance(registry, dict):
        _fail(name, "must map user names to lists of hardware addresses")
    users = {}
    for user, addresses in registry.items():
        user_name(user, "%s key %s" % (name, shown(user)))
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, (list, tuple)) or not 1 <= len(addresses) <= 10:
            _fail("%s.%s" % (name, user), "must be a list of 1 to 10 hardware addresses")
        normalized = [normalize_hw_address(a, "%s.%s[%d]" % (name, user, i)) for i, a in enumerate(addresses)]
        if len(set(normalized)) != len(normalized):
            _fail("%s.%s" % (name, user), "lists an address twice")
        slots = ["pvt_hw_addr"] + ["pvt_hw_addr%d" % n for n in range(2, 11)]
        users[str(user)] = dict(zip(slots, normalized))
    return users


def host_checker_apps(apps, name="post_auth_host_checker_apps"):
    """Validate the application list shared with the host_checker role."""
    result = []
    seen = set()
    for index, app in enumerate(apps or []):
        item = "%s[%d]" % (name, index)
        if not isinstance(app, dict):
            _fail(item, "must be a mapping with name, regex, platform, min_version, required")
        unknown = set(app) - {"name", "regex", "platform", "min_version", "required", "description"}
        if unknown:
            _fail(item, "unknown keys %s" % listed(unknown))
        app_name = app.get("name")
        if not isinstance(app_name, str) or not APP_NAME.match(app_name):
            _fail(item + ".name", "must be letters, digits and underscores")
        platform = app.get("platform") or "all"
        if platform not in ("win", "mac", "all"):
            _fail(item + ".platform", "must be win, mac or all")
        if (app_name.upper(), platform) in seen:
            _fail(item, "lists %s for platform %s twice" % (app_name, platform))
        seen.add((app_name.upper(), platform))
        regex = app.get("regex")
        if not isinstance(regex, str) or not regex or "\n" in regex or "\r" in regex:
            _fail(item + ".regex", "must be a one-line regular expression")
        try:
            re.compile(regex)
        except re.error as exc:
            _fail(item + ".regex", "is not a regular expression: %s" % exc)
        min_version = app.get("min_version")
        result.append({
            "name": app_name,
            "regex": regex,
            "platform": platform,
            "min_version": _version(min_version, item + ".min_version") if min_version not in (None, "") else None,
            "min_version_text": str(min_version) if min_version not in (None, "") else None,
            "required": flag(app.get("required", False), item + ".required"),
        })
    return result


def _host_checker(params):
    prefix = "post_auth_host_checker"
    errors = {}
    for code in APP_ERRORS:
        action = (params.get("host_checker_on_error") or {}).get(code, "deny")
        if action not in ("deny", "allow"):
            _fail("%s_on_error.%s" % (prefix, code), "must be deny or allow")
        errors[code] = action
    unknown = set(params.get("host_checker_on_error") or {}) - set(APP_ERRORS)
    if unknown:
        _fail(prefix + "_on_error", "unknown codes %s (ERR_NOT_FOUND always refuses a required application)"
              % listed(unknown))
    minimum = params.get("host_checker_min_client_version")
    unreporting = _choice(params, "host_checker_unreporting_platforms", prefix + "_unreporting_platforms",
                          ("allow", "deny"), "allow")
    missing = _choice(params, "host_checker_missing_report", prefix + "_missing_report", ("allow", "deny"), "deny")
    return {
        "apps": host_checker_apps(params.get("host_checker_apps")),
        "errors": errors,
        "missing_report": missing,
        "platforms": _str_list(params.get("host_checker_platforms"), prefix + "_platforms", lower=True),
        "min_client_version": _version(minimum, prefix + "_min_client_version") if minimum else None,
        "min_client_version_text": str(minimum) if minimum else None,
        "unreporting_platforms": unreporting,
    }


PBKDF2_HASH = re.compile(r"^pbkdf2_sha256\$(\d+)\$([^$]+)\$([A-Za-z0-9+/]+={0,2})$")
TOTP_ALGORITHMS = ("sha1", "sha256", "sha512")


def _text(params, key, name, required=False, default=""):
    value = params.get(key)
    if value is None or value == "":
        if required:
            _fail(name, "is required")
        return default
    if not isinstance(value, str):
        _fail(name, "must be a string")
    return value.strip()


def _number(params, key, name, low, high, default):
    value = params.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        _fail(name, "must be a number from %s to %s" % (low, high))
    return value


# query parameters that carry credentials, which belong in the token settings instead
CREDENTIAL_PARAMETERS = re.compile(r"(?i)(token|secret|passw|pwd|key|auth|sig|credential|session)")
URL_LENGTH = 2048


def _url(params, key, name):
    url = _text(params, key, name, required=True)
    if len(url) > URL_LENGTH:
        _fail(name, "is longer than %d characters" % URL_LENGTH)
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        _fail(name, "is not an http(s) URL")
    token = name[:-len("_url")] + "_token"
    credentials = "holds credentials, which would be shown wherever the URL is: put the token in %s or %s_file" % (
        token, token)
    if "@" in url.split("/", 3)[2]:
        _fail(name, credentials)
    query = url.split("?", 1)[1].split("#", 1)[0] if "?" in url else ""
    for pair in query.split("&"):
        if pair and CREDENTIAL_PARAMETERS.search(pair.split("=", 1)[0]):
            _fail(name, credentials)
    if url.startswith("http://"):
        host = url[7:].split("/", 1)[0].split(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            _fail(name, "must use https (plain http only to the server itself)")
    return url


def _secret(params, key, name, secrets, required=False):
    """A secret given inline (no_log) or as a root-only file on the server; inline wins.

    An inline value goes to ``secrets`` under ``key`` (the script keeps it in SECRETS, apart
    from SETTINGS); the result says where the script finds it.
    """
    value = _text(params, key, name)
    path = _text(params, key + "_file", name + "_file")
    if path and not path.startswith("/"):
        _fail(name + "_file", "must be an absolute path on the server")
    if required and not (value or path):
        _fail(name, "is required (or %s_file, a root-only file on the server)" % name)
    if value:
        secrets[key] = value
    return {"secret": key if value else None, "file": path or None}


def _http_endpoint(params, prefix, name, secrets):
    return {
        "url": _url(params, prefix + "_url", name + "_url"),
        "ca_file": _text(params, prefix + "_ca_file", name + "_ca_file"),
        "timeout": _number(params, prefix + "_timeout", name + "_timeout", 1, 120, 5),
        "token": _secret(params, prefix + "_token", name + "_token", secrets),
    }


def _exemptions(params, prefix, name):
    return {
        "exempt_users": _str_list(params.get(prefix + "_exempt_users"), name + "_exempt_users", lower=True),
        "exempt_groups": _str_list(params.get(prefix + "_exempt_groups"), name + "_exempt_groups", lower=True),
    }


def _custom_auth(params, secrets):
    name = "post_auth_custom_auth"
    method = _choice(params, "custom_auth_method", name + "_method", ("http", "hashes"), "http")
    result = {"method": method}
    if method == "http":
        result.update(_http_endpoint(params, "custom_auth", name, secrets))
        result["success_field"] = _text(params, "custom_auth_success_field", name + "_success_field",
                                        default="authenticated")
        result["groups_field"] = _text(params, "custom_auth_groups_field", name + "_groups_field", default="groups")
    else:
        hashes = params.get("custom_auth_hashes") or {}
        if not isinstance(hashes, dict) or not hashes:
            _fail(name + "_hashes", "must map user names to PBKDF2-SHA256 hashes")
        table = {}
        for user, digest in hashes.items():
            user_name(user, "%s_hashes key %s" % (name, shown(user)))
            match = PBKDF2_HASH.match(digest) if isinstance(digest, str) else None
            if not match or int(match.group(1)) < 100000:
                # never echo the value: it is a password hash
                _fail("%s_hashes.%s" % (name, user),
                      "must be pbkdf2_sha256$ITERATIONS$SALT$BASE64 with at least 100000 iterations")
            table[str(user).lower()] = digest
        secrets["custom_auth_hashes"] = table
    return result


def _duo(params, secrets):
    name = "post_auth_duo"
    skey = _secret(params, "duo_secret_key", name + "_secret_key", secrets, required=True)
    host = _text(params, "duo_api_host", name + "_api_host", required=True)
    if not re.match(r"^[A-Za-z0-9.-]+(:\d+)?$", host):
        _fail(name + "_api_host", "%s is not a host name like api-xxxxxxxx.duosecurity.com" % shown(host))
    factor = _choice(params, "duo_factor", name + "_factor", ("push", "ask"), "push")
    fail_mode = _choice(params, "duo_fail_mode", name + "_fail_mode", ("secure", "safe"), "secure")
    proxy = _text(params, "duo_proxy", name + "_proxy")
    if proxy and "@" in proxy:
        # never echo the value: it holds credentials
        _fail(name + "_proxy", "must not hold credentials: they would be readable in the script")
    if proxy and not re.match(r"^https?://[^/\s]+/?$", proxy):
        _fail(name + "_proxy", "is not a proxy URL like http://proxy.example.com:3128")
    result = {
        "api_host": host,
        "ikey": _text(params, "duo_integration_key", name + "_integration_key", required=True),
        "skey": skey,
        "ca_file": _text(params, "duo_ca_file", name + "_ca_file"),
        "timeout": _number(params, "duo_timeout", name + "_timeout", 1, 120, 10),
        "auth_timeout": _number(params, "duo_auth_timeout", name + "_auth_timeout", 5, 300, 60),
        "proxy": proxy,
        "fail_mode": fail_mode,
        "factor": factor,
        "static_challenge": role_flag(params, "duo_static_challenge"),
    }
    result.update(_exemptions(params, "duo", name))
    return result


def _challenge(params, secrets):
    name = "post_auth_challenge"
    verify = _choice(params, "challenge_verify", name + "_verify", ("totp", "http"), "totp")
    result = {
        "text": _text(params, "challenge_text", name + "_text", default="Enter your one-time code"),
        "static": role_flag(params, "challenge_static", True),
        "echo": role_flag(params, "challenge_echo"),
        "verify": verify,
        "skip_reauth": role_flag(params, "challenge_skip_reauth", True),
        "max_attempts": _number(params, "challenge_max_attempts", name + "_max_attempts", 1, 10, 3),
    }
    if "\n" in result["text"]:
        _fail(name + "_text", "must be one line")
    result.update(_exemptions(params, "challenge", name))
    if verify == "http":
        result.update(_http_endpoint(params, "challenge", name, secrets))
    else:
        algorithm = _choice(params, "challenge_totp_algorithm", name + "_totp_algorithm", TOTP_ALGORITHMS, "sha1")
        digits = params.get("challenge_totp_digits", 6)
        if digits not in (6, 7, 8) or isinstance(digits, bool):
            _fail(name + "_totp_digits", "must be 6, 7 or 8")
        result["totp"] = {
            "algorithm": algorithm,
            "digits": digits,
            "period": _number(params, "challenge_totp_period", name + "_totp_period", 15, 120, 30),
            "window": _number(params, "challenge_totp_window", name + "_totp_window", 0, 10, 1),
            "property": _text(params, "challenge_totp_property", name + "_totp_property", default="pvt_totp_secret"),
        }
        if not result["totp"]["property"].startswith("pvt_"):
            _fail(name + "_totp_property", "must be a private property (pvt_...), so that users never see it")
    return result


def totp_seeds(params):
    """Inventory TOTP seeds as user properties: {user: {pvt_totp_secret: BASE32}}."""
    name = "post_auth_challenge_totp_secrets"
    seeds = params.get("challenge_totp_secrets") or {}
    if not isinstance(seeds, dict):
        _fail(name, "must map user names to base32 seeds")
    prop = params.get("challenge_totp_property") or "pvt_totp_secret"
    users = {}
    for user, seed in seeds.items():
        user_name(user, "%s key %s" % (name, shown(user)))
        text = re.sub(r"[\s=]", "", seed).upper() if isinstance(seed, str) else ""
        if len(text) < 16 or not re.match(r"^[A-Z2-7]+$", text):
            # never echo the value: it is a secret
            _fail("%s.%s" % (name, user), "must be a base32 seed of at least 16 characters (80 bits)")
        users[str(user)] = {prop: text}
    return users


def build_settings(params):
    """The settings of the script, from the role's variables without their prefix.

    ``params`` maps names like ``device_pinning`` (the switch) and ``device_pinning_mode``
    to values. Returns (settings, flags, sha256, secrets, users): the secrets given inline, by
    name, which the script keeps in SECRETS, on lines marked as secret; the user properties the
    script relies on (device registrations, TOTP seeds), per user, which the role pushes.
    """
    if role_flag(params, "duo") and role_flag(params, "challenge"):
        _fail("post_auth_duo", "and post_auth_challenge are both on: the script asks for one second factor")
    settings = {"messages": _messages(params.get("messages"))}
    secrets = {}
    builders = {
        "custom_auth": lambda p: _custom_auth(p, secrets),
        "group_mapping": _group_mapping,
        "device_pinning": _device_pinning,
        "host_checker": _host_checker,
        "duo": lambda p: _duo(p, secrets),
        "challenge": lambda p: _challenge(p, secrets),
    }
    features = []
    for feature in CHAIN:
        if role_flag(params, feature):
            settings[feature] = builders[feature](params)
            features.append(feature)
    users = {}
    if "device_pinning" in settings:
        for user, props in device_registry(params).items():
            users.setdefault(user, {}).update(props)
    if "challenge" in settings:
        seeds = totp_seeds(params)
        if settings["challenge"]["verify"] == "totp":
            for user, props in seeds.items():
                users.setdefault(user, {}).update(props)
    settings["features"] = features
    # every override is validated above; the script carries only the messages it can show
    settings["messages"] = {key: text for key, text in settings["messages"].items()
                            if message_capability(key) in [None] + features}
    flags = _flags(settings)
    # the secrets count too: a rotated key is a different script
    canonical = json.dumps({"settings": settings, "flags": flags, "secrets": secrets}, sort_keys=True,
                           separators=(",", ":"))
    return settings, flags, hashlib.sha256(canonical.encode("utf-8")).hexdigest(), secrets, users


def _flags(settings):
    """The module-level flags the enabled capabilities need, and only those."""
    mapping = settings.get("group_mapping")
    blocking = bool(
        (mapping and "ldap" in mapping["sources"])
        or "custom_auth" in settings
        or "duo" in settings
        or (settings.get("challenge") or {}).get("verify") == "http"
    )
    # network calls and PBKDF2 work run in a worker thread, not in Access Server's main thread
    flags = {"SYNCHRONOUS": not blocking}
    if mapping and (mapping["default_group"] or any(rule["group"] for rule in mapping["rules"])):
        flags["GROUP_SELECT"] = True
    if "custom_auth" in settings:
        flags["AUTH_NULL"] = True
        flags["RETAIN_PASSWORD"] = True
    challenge = settings.get("challenge")
    if challenge and challenge["static"]:
        flags["STATIC_CHALLENGE"] = challenge["text"]
        flags["STATIC_CHALLENGE_ECHO"] = challenge["echo"]
    duo = settings.get("duo")
    if duo and duo["static_challenge"]:
        flags["STATIC_CHALLENGE"] = settings["messages"]["duo_prompt"]
        flags["STATIC_CHALLENGE_ECHO"] = True
    return flags
