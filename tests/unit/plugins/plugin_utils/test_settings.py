"""The script's settings from the post_auth variables: refusals naming the variable, normalization, flags, hashes."""

import copy
import os

import pytest
import yaml

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import MESSAGES
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import (
    ComposeError,
    checked,
    role_file,
    settings_of,
    unprefixed,
)


def post_auth_variables(params):
    """The post_auth role's variables without their prefix (``params``) over its defaults, checked.

    The role's argument specs check them as they check the role's; a default that is a template over
    another role's variables (``host_checker_apps``) is left out.
    """
    with open(role_file("post_auth", "defaults", "main.yml")) as handle:
        defaults = {name: value for name, value in yaml.safe_load(handle).items()
                    if not (isinstance(value, str) and "{{" in value)}
    with open(role_file("post_auth", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    provided = dict(defaults)
    provided.update({"post_auth_" + name: value for name, value in params.items()})
    unknown = sorted(name for name in provided if name not in spec)
    if unknown:
        raise ComposeError("post_auth variables: unknown %s" % ", ".join(unknown))
    return unprefixed(checked("post_auth", spec, provided, defaults), "post_auth")


def post_auth_settings(values):
    """The settings the script is rendered with, from the role's variables without their prefix."""
    return settings_of(post_auth_variables(dict(values)))


def post_auth_user_properties(values):
    """The user properties the role pushes: device registrations and TOTP seeds, per user."""
    return post_auth_settings(values)["users"]


def post_auth_device_registry(values):
    """The device registry part of the user properties the role pushes."""
    return post_auth_user_properties(dict(values, device_pinning=True))


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE_DEFAULTS = os.path.join(REPO, "roles", "post_auth", "defaults", "main.yml")
PREFIX = "post_auth_"

ADMINS_DN = "CN=VPN Admins,OU=Groups,DC=example,DC=com"
ADMINS = {"name": "admins", "ldap_groups": [ADMINS_DN], "group": "admins"}
CHROME = {"name": "Chrome", "regex": "google chrome", "platform": "win", "min_version": "115.0.2", "required": True}
MAC = "00:11:22:33:44:55"


def role_defaults():
    """The role's defaults without their prefix: the shape post_auth_settings reads (see vars/main.yml)."""
    with open(ROLE_DEFAULTS) as handle:
        defaults = yaml.safe_load(handle)
    values = {name[len(PREFIX):]: value for name, value in defaults.items() if name.startswith(PREFIX)}
    # the default is a template over the host_checker role's list
    values["host_checker_apps"] = []
    return values


def params(**changes):
    values = role_defaults()
    values.update(copy.deepcopy(changes))
    return values


def mapping(**changes):
    """Group mapping switched on with one valid rule, then `changes`."""
    changes.setdefault("group_mapping_rules", [ADMINS])
    return params(group_mapping=True, **changes)


def rule(**fields):
    """A rule that matches an LDAP group and sets a group, with `fields` added (None removes a field)."""
    value = dict(ADMINS)
    value.update(fields)
    return {key: item for key, item in value.items() if item is not None}


def pinning(**changes):
    return params(device_pinning=True, **changes)


def checker(apps=None, **changes):
    return params(host_checker=True, host_checker_apps=[CHROME] if apps is None else apps, **changes)


def everything(**changes):
    """Every capability on, with settings that differ from the defaults wherever that is possible."""
    values = params(
        group_mapping=True,
        group_mapping_rules=[
            ADMINS,
            {"name": "radius staff", "radius_attribute": "Class", "radius_values": ["staff"], "group": "staff",
             "properties": {"prop_autologin": True, "prop_expire": 3600}},
            {"saml_groups": ["Contractors"], "deny": True},
        ],
        group_mapping_default_group="users",
        device_pinning=True,
        device_pinning_networks=["10.0.0.0/8"],
        host_checker=True,
        host_checker_apps=[CHROME],
    )
    values.update(copy.deepcopy(changes))
    return values


def settings(values):
    return post_auth_settings(values)["settings"]


def refusal(values, which=post_auth_settings):
    with pytest.raises(ComposeError) as info:
        which(values)
    return str(info.value)


# --- refusals: (params, message prefix: the variable, then what is wrong) ------------------------------------------

REFUSALS = [
    # group mapping: sources
    pytest.param(mapping(group_mapping_sources=["ldap", "kerberos"]),
                 "post_auth_group_mapping_sources[1]: 'kerberos' is not one of ldap, radius, saml, custom_auth",
                 id="unknown-source"),
    pytest.param(mapping(group_mapping_sources=[]),
                 "post_auth_group_mapping_sources: needs at least one of ldap, radius, saml", id="empty-sources"),
    pytest.param(mapping(group_mapping_sources="ldap"),
                 "post_auth_group_mapping_sources: must be a list, not a string", id="sources-not-a-list"),
    pytest.param(mapping(group_mapping_sources=["ldap", " "]),
                 "post_auth_group_mapping_sources[1]: ' ' is not one of", id="blank-source"),
    # group mapping: rules
    pytest.param(mapping(group_mapping_rules=[ADMINS, {"name": "nothing to match", "group": "staff"}]),
                 "post_auth_group_mapping_rules[1]: needs at least one of ldap_groups, saml_groups, "
                 "custom_auth_groups, radius_attribute",
                 id="rule-without-criterion"),
    pytest.param(mapping(group_mapping_rules=[rule(ldap_groups=[])]),
                 "post_auth_group_mapping_rules[0]: needs at least one of", id="rule-with-empty-criterion"),
    pytest.param(mapping(group_mapping_rules=[rule(ldap_groups=None, radius_values=["staff"])]),
                 "post_auth_group_mapping_rules[0]: radius_values and radius_pattern need radius_attribute",
                 id="radius-values-without-attribute"),
    pytest.param(mapping(group_mapping_rules=[rule(radius_pattern="staff-.*")]),
                 "post_auth_group_mapping_rules[0]: radius_values and radius_pattern need radius_attribute",
                 id="radius-pattern-without-attribute"),
    pytest.param(mapping(group_mapping_rules=[ADMINS, rule(ldap_groups=None, radius_attribute="Class")]),
                 "post_auth_group_mapping_rules[1]: radius_attribute needs radius_values or radius_pattern",
                 id="radius-attribute-without-values"),
    pytest.param(mapping(group_mapping_rules=[rule(radius_attribute="Class", radius_pattern="staff-(")]),
                 "post_auth_group_mapping_rules[0].radius_pattern: is not a regular expression",
                 id="bad-radius-pattern"),
    pytest.param(mapping(group_mapping_rules=[rule(radius_attribute="Class", radius_values=["a"], radius_pattern="")]),
                 "post_auth_group_mapping_rules[0].radius_pattern: must not be empty", id="empty-radius-pattern"),
    pytest.param(mapping(group_mapping_saml_claim=" "),
                 "post_auth_group_mapping_saml_claim: is required", id="blank-saml-claim"),
    pytest.param(mapping(group_mapping_ldap_member_attribute=""),
                 "post_auth_group_mapping_ldap_member_attribute: is required", id="empty-member-attribute"),
    pytest.param(mapping(group_mapping_rules=[rule(radius_attribute="Class", radius_pattern=5)]),
                 "post_auth_group_mapping_rules[0].radius_pattern: must be a string, not a whole number",
                 id="radius-pattern-not-text"),
    pytest.param(mapping(group_mapping_rules=[ADMINS, {"name": "idle", "ldap_groups": ["cn=idle,dc=example"]}]),
                 "post_auth_group_mapping_rules[1]: does nothing: set group, properties or deny",
                 id="rule-does-nothing"),
    pytest.param(mapping(group_mapping_rules=[rule(group=None, properties={}, deny=False)]),
                 "post_auth_group_mapping_rules[0]: does nothing", id="rule-with-empty-actions"),
    pytest.param(mapping(group_mapping_rules=[ADMINS, "admins"]),
                 "post_auth_group_mapping_rules[1]: must be a mapping", id="rule-not-a-mapping"),
    pytest.param(mapping(group_mapping_rules=[rule(group="  ")]),
                 "post_auth_group_mapping_rules[0].group: must be a non-empty user name", id="blank-group"),
    pytest.param(mapping(group_mapping_rules=[rule(group=["admins"])]),
                 "post_auth_group_mapping_rules[0].group: must be a non-empty user name", id="group-not-text"),
    pytest.param(mapping(group_mapping_rules=[rule(ldap_groups=[ADMINS_DN, ""])]),
                 "post_auth_group_mapping_rules[0].ldap_groups[1]: must be a non-empty string", id="blank-ldap-group"),
    pytest.param(mapping(group_mapping_rules=[rule(saml_groups="staff")]),
                 "post_auth_group_mapping_rules[0].saml_groups: must be a list of strings",
                 id="saml-groups-not-a-list"),
    pytest.param(mapping(group_mapping_rules=[rule(radius_attribute="Class", radius_values=["staff", 7])]),
                 "post_auth_group_mapping_rules[0].radius_values[1]: must be a non-empty string",
                 id="radius-value-not-text"),
    # group mapping: properties
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_admin": True})]),
                 "post_auth_group_mapping_rules[0].properties: unknown property 'prop_admin'", id="unknown-property"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"conn_group": "admins"})]),
                 "post_auth_group_mapping_rules[0].properties: unknown property 'conn_group'",
                 id="group-as-property"),
    pytest.param(mapping(group_mapping_rules=[ADMINS, rule(properties={"prop_autologin": "yes"})]),
                 "post_auth_group_mapping_rules[1].properties.prop_autologin: must be true or false",
                 id="autologin-text"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_autologin": 1})]),
                 "post_auth_group_mapping_rules[0].properties.prop_autologin: must be true or false",
                 id="autologin-number"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_deny_web": "false"})]),
                 "post_auth_group_mapping_rules[0].properties.prop_deny_web: must be true or false",
                 id="deny-web-text"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_expire": "3600"})]),
                 "post_auth_group_mapping_rules[0].properties.prop_expire: must be a number of seconds",
                 id="expire-text"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_expire": True})]),
                 "post_auth_group_mapping_rules[0].properties.prop_expire: must be a number of seconds",
                 id="expire-bool"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_expire": -1})]),
                 "post_auth_group_mapping_rules[0].properties.prop_expire: must be a number of seconds",
                 id="expire-negative"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_expire": 1.5})]),
                 "post_auth_group_mapping_rules[0].properties.prop_expire: must be a number of seconds",
                 id="expire-float"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_reroute_gw_override": "split"})]),
                 "post_auth_group_mapping_rules[0].properties.prop_reroute_gw_override: "
                 "must be one of disable, dns_only, global", id="reroute-not-a-choice"),
    pytest.param(mapping(group_mapping_rules=[rule(properties={"prop_reroute_gw_override": True})]),
                 "post_auth_group_mapping_rules[0].properties.prop_reroute_gw_override: must be one of",
                 id="reroute-bool"),
    # group mapping: LDAP and errors
    pytest.param(mapping(group_mapping_ldap_mode="search"),
                 "post_auth_group_mapping_ldap_group_base: is needed with post_auth_group_mapping_ldap_mode=search",
                 id="search-without-group-base"),
    pytest.param(mapping(group_mapping_ldap_mode="memberof"),
                 "post_auth_group_mapping_ldap_mode: 'memberof' is not one of member_of, search", id="bad-ldap-mode"),
    pytest.param(mapping(group_mapping_ldap_group_filter="member={user_dn}"),
                 "post_auth_group_mapping_ldap_group_filter: must be an LDAP filter in parentheses",
                 id="filter-without-parentheses"),
    pytest.param(mapping(group_mapping_ldap_group_filter="(member={user_dn}"),
                 "post_auth_group_mapping_ldap_group_filter: must be an LDAP filter in parentheses",
                 id="filter-without-closing-parenthesis"),
    pytest.param(mapping(group_mapping_on_error="default_group"),
                 "post_auth_group_mapping_on_error: default_group needs post_auth_group_mapping_default_group",
                 id="on-error-default-group-without-default-group"),
    pytest.param(mapping(group_mapping_on_error="allow", group_mapping_default_group="users"),
                 "post_auth_group_mapping_on_error: 'allow' is not one of deny, default_group", id="bad-on-error"),
    # device pinning
    pytest.param(pinning(device_pinning_mode="strict"),
                 "post_auth_device_pinning_mode: 'strict' is not one of auto, manual", id="bad-pinning-mode"),
    pytest.param(pinning(device_pinning_max_devices=0),
                 "post_auth_device_pinning_max_devices: must be a number from 1 to 10", id="max-devices-0"),
    pytest.param(pinning(device_pinning_max_devices=11),
                 "post_auth_device_pinning_max_devices: must be a number from 1 to 10", id="max-devices-11"),
    pytest.param(pinning(device_pinning_max_devices=True),
                 "post_auth_device_pinning_max_devices: must be a whole number, not a boolean", id="max-devices-true"),
    pytest.param(pinning(device_pinning_max_devices="two"),
                 "post_auth_device_pinning_max_devices: must be a whole number, not a string", id="max-devices-text"),
    pytest.param(pinning(device_pinning_networks=["10.0.0.0/8", "10.0.0.0/33"]),
                 "post_auth_device_pinning_networks[1]: ", id="bad-cidr-prefix"),
    pytest.param(pinning(device_pinning_networks=["office"]),
                 "post_auth_device_pinning_networks[0]: ", id="bad-cidr-name"),
    pytest.param(pinning(device_pinning_networks="10.0.0.0/8"),
                 "post_auth_device_pinning_networks: must be a list, not a string", id="networks-not-a-list"),
    pytest.param(pinning(device_pinning_exempt_users=["root", None]),
                 "post_auth_device_pinning_exempt_users[1]: must be a string, not null", id="blank-exempt-user"),
    pytest.param(pinning(device_pinning_registry={"alice": ["00:11:22:33:44"]}),
                 "post_auth_device_pinning_registry.alice[0]: '00:11:22:33:44' is not a hardware address",
                 id="registry-short-address"),
    pytest.param(pinning(device_pinning_registry={"alice": [MAC, "00:11-22:33:44:55"]}),
                 "post_auth_device_pinning_registry.alice[1]: '00:11-22:33:44:55' is not a hardware address",
                 id="registry-mixed-separators"),
    pytest.param(pinning(device_pinning_registry={"alice": ["00:11:22:33:44:gg"]}),
                 "post_auth_device_pinning_registry.alice[0]: ", id="registry-not-hex"),
    pytest.param(pinning(device_pinning_registry={"alice": [1122334455]}),
                 "post_auth_device_pinning_registry.alice[0]: 1122334455 is not a hardware address",
                 id="registry-number"),
    pytest.param(pinning(device_pinning_registry={"bob": ["00:00:00:00:00:%02x" % n for n in range(11)]}),
                 "post_auth_device_pinning_registry.bob: must be a list of 1 to 10 hardware addresses",
                 id="registry-11-addresses"),
    pytest.param(pinning(device_pinning_registry={"bob": []}),
                 "post_auth_device_pinning_registry.bob: must be a list of 1 to 10 hardware addresses",
                 id="registry-no-address"),
    pytest.param(pinning(device_pinning_registry={"carol": [MAC, "00-11-22-33-44-55"]}),
                 "post_auth_device_pinning_registry.carol: lists an address twice", id="registry-duplicates"),
    pytest.param(pinning(device_pinning_registry={"carol": ["001122AABBCC", "00:11:22:aa:bb:cc"]}),
                 "post_auth_device_pinning_registry.carol: lists an address twice", id="registry-duplicates-case"),
    pytest.param(pinning(device_pinning_registry=["alice"]),
                 "post_auth_device_pinning_registry: must be a mapping, not a list", id="registry-not-a-mapping"),
    # host checker: applications
    pytest.param(checker([dict(CHROME, name="Anti-Virus")]),
                 "post_auth_host_checker_apps[0].name: must be letters, digits and underscores", id="app-name-dash"),
    pytest.param(checker([CHROME, dict(CHROME, name="Chrome\n", platform="mac")]),
                 "post_auth_host_checker_apps[1].name: must be letters, digits and underscores",
                 id="app-name-newline"),
    pytest.param(checker([dict(CHROME, name="")]),
                 "post_auth_host_checker_apps[0].name: must be letters, digits and underscores", id="app-name-empty"),
    pytest.param(checker([{key: value for key, value in CHROME.items() if key != "name"}]),
                 "post_auth_host_checker_apps[0].name: must be letters, digits and underscores", id="app-without-name"),
    pytest.param(checker([dict(CHROME, platform="linux")]),
                 "post_auth_host_checker_apps[0].platform: must be win, mac or all", id="bad-platform"),
    pytest.param(checker([CHROME, dict(CHROME, regex="chrome")]),
                 "post_auth_host_checker_apps[1]: lists Chrome for platform win twice", id="duplicate-app"),
    pytest.param(checker([CHROME, dict(CHROME, name="CHROME")]),
                 "post_auth_host_checker_apps[1]: lists CHROME for platform win twice", id="duplicate-app-case"),
    pytest.param(checker([dict(CHROME, platform=None), dict(CHROME, platform="all")]),
                 "post_auth_host_checker_apps[1]: lists Chrome for platform all twice", id="duplicate-app-all"),
    pytest.param(checker([dict(CHROME, regex="chrome(")]),
                 "post_auth_host_checker_apps[0].regex: is not a regular expression", id="bad-regex"),
    pytest.param(checker([dict(CHROME, regex="chrome\nfirefox")]),
                 "post_auth_host_checker_apps[0].regex: must be a one-line regular expression", id="multi-line-regex"),
    pytest.param(checker([dict(CHROME, regex="chrome\r")]),
                 "post_auth_host_checker_apps[0].regex: must be a one-line regular expression", id="carriage-return"),
    pytest.param(checker([dict(CHROME, regex="")]),
                 "post_auth_host_checker_apps[0].regex: must be a one-line regular expression", id="empty-regex"),
    pytest.param(checker([dict(CHROME, min_version="latest")]),
                 "post_auth_host_checker_apps[0].min_version: 'latest' is not a version like 115.0.2",
                 id="bad-min-version"),
    pytest.param(checker([dict(CHROME, min_version=1.10)]),
                 "post_auth_host_checker_apps[0].min_version: 1.1 is a number; quote the version",
                 id="min-version-yaml-float"),
    pytest.param(checker([dict(CHROME, min_version="115." + "9" * 65)]),
                 "post_auth_host_checker_apps[0].min_version: '115.999999999999999999999999999999999999...' has a "
                 "number of more than 64 digits", id="min-version-too-many-digits"),
    pytest.param(checker([dict(CHROME, min_version="1" * 5000)]),
                 "post_auth_host_checker_apps[0].min_version: '%s...' has a " % ("1" * 40) +
                 "number of more than 64 digits", id="min-version-beyond-python-s-digits"),
    pytest.param(checker([dict(CHROME, min_version="115..2")]),
                 "post_auth_host_checker_apps[0].min_version: '115..2' is not a version", id="min-version-two-dots"),
    pytest.param(checker([dict(CHROME, min_version="115.0-beta")]),
                 "post_auth_host_checker_apps[0].min_version: '115.0-beta' is not a version", id="min-version-suffix"),
    pytest.param(checker([dict(CHROME, min_version=True)]),
                 "post_auth_host_checker_apps[0].min_version: True is not a version", id="min-version-bool"),
    pytest.param(checker([dict(CHROME, version="115")]),
                 "post_auth_host_checker_apps[0]: unknown keys version", id="unknown-app-key"),
    pytest.param(checker(["Chrome"]),
                 "post_auth_host_checker_apps[0]: must be a mapping", id="app-not-a-mapping"),
    # host checker: the rest
    pytest.param(checker(host_checker_on_error={"ERR_NOT_FOUND": "allow"}),
                 "post_auth_host_checker_on_error: unknown codes ERR_NOT_FOUND", id="unknown-on-error-code"),
    pytest.param(checker(host_checker_on_error={"ERR_REGEX": "ignore"}),
                 "post_auth_host_checker_on_error.ERR_REGEX: must be deny or allow", id="bad-on-error-action"),
    pytest.param(checker(host_checker_min_client_version="three"),
                 "post_auth_host_checker_min_client_version: 'three' is not a version", id="bad-min-client-version"),
    pytest.param(checker(host_checker_unreporting_platforms="block"),
                 "post_auth_host_checker_unreporting_platforms: 'block' is not one of allow, deny",
                 id="bad-unreporting"),
    pytest.param(checker(host_checker_missing_report="ignore"),
                 "post_auth_host_checker_missing_report: 'ignore' is not one of deny, allow", id="bad-missing-report"),
    pytest.param(checker(host_checker_platforms=["win", ""]),
                 "post_auth_host_checker_platforms[1]: must be a non-empty string", id="blank-platform"),
    # messages (checked whatever is switched on)
    pytest.param(params(messages={"welcome": "Hello"}),
                 "post_auth_messages: unknown message 'welcome' (known: app_missing,", id="unknown-message"),
    pytest.param(params(messages={"group_denied": ""}),
                 "post_auth_messages.group_denied: must be a non-empty string", id="empty-message"),
    pytest.param(params(messages={"group_denied": "   "}),
                 "post_auth_messages.group_denied: must be a non-empty string", id="blank-message"),
    pytest.param(everything(messages={"app_missing": ["{app} is missing"]}),
                 "post_auth_messages.app_missing: must be a non-empty string", id="message-not-text"),
]


@pytest.mark.parametrize(("values", "message"), REFUSALS)
def test_refusal_names_the_variable(values, message):
    text = refusal(values)
    assert text.startswith(message), text
    assert text.startswith(PREFIX)


REGISTRY_REFUSALS = [
    pytest.param({"alice": ["00:11:22:33:44"]},
                 "post_auth_device_pinning_registry.alice[0]: '00:11:22:33:44' is not a hardware address",
                 id="bad-address"),
    pytest.param({"alice": MAC, "bob": ["00:00:00:00:00:%02x" % n for n in range(11)]},
                 "post_auth_device_pinning_registry.bob: must be a list of 1 to 10 hardware addresses",
                 id="11-addresses"),
    pytest.param({"carol": ["00:1A:2B:3C:4D:5E", "001a2b3c4d5e"]},
                 "post_auth_device_pinning_registry.carol: lists an address twice", id="duplicates"),
    pytest.param({"dave": None}, "post_auth_device_pinning_registry.dave: must be a list of 1 to 10", id="no-list"),
    pytest.param("alice=00:11:22:33:44:55", "post_auth_device_pinning_registry: must be a mapping, not a string",
                 id="not-a-mapping"),
]


@pytest.mark.parametrize(("registry", "message"), REGISTRY_REFUSALS)
def test_registry_refusal_names_the_variable(registry, message):
    """The registry filter refuses on its own, even with device pinning switched off."""
    text = refusal(params(device_pinning_registry=registry), which=post_auth_device_registry)
    assert text.startswith(message), text


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(params(group_mapping_sources=[], group_mapping_rules=[{"group": "x"}]), id="mapping"),
        pytest.param(params(device_pinning_max_devices=0, device_pinning_registry={"a": ["bad"]}), id="pinning"),
        pytest.param(params(host_checker_apps=[{"name": "a-b"}], host_checker_on_error={"ERR_X": "deny"}),
                     id="checker"),
    ],
)
def test_switched_off_capability_is_not_checked(values):
    """What only a capability checks (its rules, ranges, lists) is not checked while it is off."""
    result = post_auth_settings(values)
    assert result["features"] == []
    assert set(result["settings"]) == {"messages", "features"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(params(group_mapping_sources=["kerberos"]),
                     "post_auth_group_mapping_sources[0]: 'kerberos' is not one of", id="mapping"),
        pytest.param(params(host_checker_missing_report="x"),
                     "post_auth_host_checker_missing_report: 'x' is not one of deny, allow", id="checker"),
        pytest.param(mapping(group_mapping_rules=[rule(radius_attribute="Reply-Message", radius_values=["x"])]),
                     "Validation of the post_auth role's variables failed:\n"
                     "value of radius_attribute must be one of: Class, Filter-Id, Framed-Pool, got: 'Reply-Message",
                     id="unknown-radius-attribute"),
        pytest.param(mapping(group_mapping_rules=[rule(groups=["x"], priority=1)]),
                     "Validation of the post_auth role's variables failed:\npost_auth_group_mapping_rules.groups, ",
                     id="unknown-rule-key"),
    ],
)
def test_argument_specs_check_every_variable(values, message):
    """The types and choices of the argument specs hold for every variable, as Ansible checks a role's arguments."""
    assert refusal(values).startswith(message)


def test_refusals_carry_no_chained_cause():
    with pytest.raises(ComposeError) as info:
        post_auth_settings(mapping(group_mapping_sources=[]))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


# --- accepted inputs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "feature"),
    [
        pytest.param(mapping(group_mapping_sources=["radius", "saml"], group_mapping_ldap_mode="search"),
                     "group_mapping", id="search-without-base-needs-no-base-without-ldap"),
        pytest.param(mapping(group_mapping_ldap_mode="search", group_mapping_ldap_group_base="ou=groups,dc=x"),
                     "group_mapping", id="search-with-base"),
        pytest.param(mapping(group_mapping_on_error="default_group", group_mapping_default_group="users"),
                     "group_mapping", id="fail-open-with-default-group"),
        pytest.param(mapping(group_mapping_rules=[rule(group=None, deny=True)]), "group_mapping", id="deny-only"),
        pytest.param(mapping(group_mapping_rules=[rule(group=None, properties={"prop_lzo": False})]),
                     "group_mapping", id="properties-only"),
        pytest.param(mapping(group_mapping_rules=[]), "group_mapping", id="no-rules"),
        pytest.param(pinning(device_pinning_max_devices=1), "device_pinning", id="max-devices-1"),
        pytest.param(pinning(device_pinning_max_devices=10), "device_pinning", id="max-devices-10"),
        pytest.param(pinning(device_pinning_registry={"a": ["00:00:00:00:00:%02x" % n for n in range(10)]}),
                     "device_pinning", id="registry-10-addresses"),
        pytest.param(checker([dict(CHROME, min_version=None), dict(CHROME, platform="mac", min_version="")]),
                     "host_checker", id="apps-without-min-version"),
        pytest.param(checker(host_checker_on_error={"ERR_NO_VERSION": "allow", "ERR_MANY_FOUND": "deny"}),
                     "host_checker", id="on-error-codes"),
    ],
)
def test_accepted(values, feature):
    result = post_auth_settings(values)
    assert result["features"] == [feature]
    assert feature in result["settings"]


# --- normalization ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("ldap_groups", "expected"),
    [
        pytest.param([ADMINS_DN], ["cn=vpn admins,ou=groups,dc=example,dc=com"], id="dn-lower-case"),
        pytest.param(["CN = VPN Admins , OU=Groups,  DC=Example ,DC=COM"],
                     ["cn=vpn admins,ou=groups,dc=example,dc=com"], id="dn-spaces-removed"),
        pytest.param([" VPN-Admins "], ["vpn-admins"], id="name-lower-case"),
        pytest.param(["cn=A,dc=x", "Staff"], ["cn=a,dc=x", "staff"], id="mixed"),
    ],
)
def test_ldap_groups_normalized(ldap_groups, expected):
    result = settings(mapping(group_mapping_rules=[rule(ldap_groups=ldap_groups)]))
    assert result["group_mapping"]["rules"][0]["ldap_groups"] == expected


@pytest.mark.parametrize(
    ("case_sensitive", "ldap", "saml", "radius"),
    [
        pytest.param(False, ["cn=staff,dc=x"], ["vpn staff"], ["staff-east"], id="case-insensitive"),
        pytest.param(True, ["cn=staff,dc=x"], ["VPN Staff"], ["Staff-East"], id="case-sensitive-but-not-dns"),
    ],
)
def test_case_sensitivity(case_sensitive, ldap, saml, radius):
    values = mapping(
        group_mapping_case_sensitive=case_sensitive,
        group_mapping_rules=[rule(ldap_groups=["CN=Staff,DC=x"], saml_groups=[" VPN Staff "],
                                  radius_attribute="Class", radius_values=["Staff-East"])],
    )
    found = settings(values)["group_mapping"]
    assert (found["rules"][0]["ldap_groups"], found["rules"][0]["saml_groups"], found["rules"][0]["radius_values"]) \
        == (ldap, saml, radius)
    assert found["case_sensitive"] is case_sensitive


@pytest.mark.parametrize("attribute", ["Class", "Filter-Id", "Framed-Pool"])
def test_radius_attribute_by_name(attribute):
    """The settings name the attribute as the administrator does; the script's block knows its number."""
    values = mapping(group_mapping_rules=[rule(ldap_groups=None, radius_attribute=attribute, radius_pattern="a.*")])
    found = settings(values)["group_mapping"]["rules"][0]
    assert (found["radius_attribute"], found["radius_pattern"], found["radius_values"]) == (attribute, "a.*", [])


def test_rule_defaults_and_group_trimmed():
    values = mapping(group_mapping_rules=[ADMINS, {"saml_groups": ["x"], "group": " staff "}])
    rules = settings(values)["group_mapping"]["rules"]
    assert rules[1] == {
        "name": "rule 2", "ldap_groups": [], "saml_groups": ["x"], "custom_auth_groups": [],
        "radius_attribute": None, "radius_values": [],
        "radius_pattern": None, "group": "staff", "properties": {}, "deny": False,
    }
    assert rules[0]["name"] == "admins"


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        pytest.param({"prop_autologin": True}, {"prop_autologin": "true"}, id="true"),
        pytest.param({"prop_superuser": False, "prop_deny_web": True, "prop_lzo": False, "prop_expire_halt": True},
                     {"prop_superuser": "false", "prop_deny_web": "true", "prop_lzo": "false",
                      "prop_expire_halt": "true"}, id="booleans"),
        pytest.param({"prop_expire": 3600}, {"prop_expire": "3600"}, id="seconds"),
        pytest.param({"prop_expire": 0}, {"prop_expire": "0"}, id="zero-seconds"),
        pytest.param({"prop_reroute_gw_override": "dns_only"}, {"prop_reroute_gw_override": "dns_only"}, id="choice"),
    ],
)
def test_properties_as_access_server_text(properties, expected):
    values = mapping(group_mapping_rules=[rule(properties=properties)])
    assert settings(values)["group_mapping"]["rules"][0]["properties"] == expected


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        pytest.param({"alice": "00-1A-2B-3C-4D-5E"}, {"alice": {"pvt_hw_addr": "00:1a:2b:3c:4d:5e"}}, id="one-text"),
        pytest.param({"alice": ["00-1A-2B-3C-4D-5E"]}, {"alice": {"pvt_hw_addr": "00:1a:2b:3c:4d:5e"}}, id="dashes"),
        pytest.param({"bob": ["001A2B3C4D5E", " AA:BB:CC:DD:EE:FF "]},
                     {"bob": {"pvt_hw_addr": "00:1a:2b:3c:4d:5e", "pvt_hw_addr2": "aa:bb:cc:dd:ee:ff"}},
                     id="bare-and-padded"),
        pytest.param({"carol": ["00:00:00:00:00:%02X" % n for n in range(10)]},
                     {"carol": dict(
                         [("pvt_hw_addr", "00:00:00:00:00:00")]
                         + [("pvt_hw_addr%d" % (n + 1), "00:00:00:00:00:%02x" % n) for n in range(1, 10)])},
                     id="ten-slots"),
        pytest.param({"Dave": [MAC], "erin": [MAC]}, {"Dave": {"pvt_hw_addr": MAC}, "erin": {"pvt_hw_addr": MAC}},
                     id="two-users-may-share"),
        pytest.param({}, {}, id="empty"),
        pytest.param(None, {}, id="none"),
    ],
)
def test_registry_normalized(registry, expected):
    assert post_auth_device_registry(params(device_pinning_registry=registry)) == expected


def test_pinning_normalized():
    values = pinning(
        device_pinning_mode="manual",
        device_pinning_max_devices=3,
        device_pinning_networks=["10.1.2.3/8", " 192.0.2.7 ", "2001:DB8::1/32"],
        device_pinning_exempt_users=[" Alice ", "BOB"],
        device_pinning_exempt_groups=["CN=Ops,DC=x", "Admins"],
        device_pinning_allow_missing_address=True,
    )
    assert settings(values)["device_pinning"] == {
        "mode": "manual",
        "max_devices": 3,
        "networks": ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"],
        "exempt_users": ["alice", "bob"],
        "exempt_groups": ["cn=ops,dc=x", "admins"],
        "allow_missing_address": True,
    }


@pytest.mark.parametrize(
    ("min_version", "text"),
    [
        pytest.param("115.0.2", "115.0.2", id="dotted"),
        pytest.param(" v3.4", "v3.4", id="v-prefix"),
        pytest.param("3.10", "3.10", id="two-digit-minor"),
        pytest.param(115, "115", id="number"),
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
    ],
)
def test_app_versions_as_written(min_version, text):
    """One form: the version as written (the script compares it as numbers)."""
    found = settings(checker([dict(CHROME, min_version=min_version)]))["host_checker"]["apps"][0]
    assert found["min_version"] == text


def test_host_checker_normalized():
    values = checker(
        [{"name": "AV_2", "regex": "defender|sophos"}, CHROME],
        host_checker_on_error={"ERR_MANY_FOUND": "allow"},
        host_checker_platforms=["Win", " MAC "],
        host_checker_min_client_version="3.3.6",
    )
    assert settings(values)["host_checker"] == {
        "apps": [
            {"name": "AV_2", "regex": "defender|sophos", "platform": "all", "min_version": None, "required": False},
            {"name": "Chrome", "regex": "google chrome", "platform": "win", "min_version": "115.0.2", "required": True},
        ],
        "errors": {"ERR_NO_VERSION": "deny", "ERR_MANY_FOUND": "allow", "ERR_REGEX": "deny"},
        "missing_report": "deny",
        "platforms": ["win", "mac"],
        "min_client_version": "3.3.6",
        "unreporting_platforms": "allow",
    }


def test_group_mapping_defaults_from_the_role():
    found = settings(mapping())["group_mapping"]
    assert {key: value for key, value in found.items() if key != "rules"} == {
        "sources": ["ldap", "radius", "saml", "custom_auth"],
        "ldap_mode": "member_of",
        "ldap_member_attribute": "memberOf",
        "ldap_group_base": "",
        "ldap_group_filter": "(member={user_dn})",
        "ldap_group_name_attribute": "cn",
        "saml_claim": "groups",
        "default_group": None,
        "deny_unmatched": False,
        "persist": False,
        "on_error": "deny",
        "radius_framed_ip": True,
        "radius_callback_flags": False,
        "case_sensitive": False,
    }


# the messages each local capability shows its users
CAPABILITY_MESSAGES = {
    "group_mapping": {"directory_error", "group_unmatched", "group_denied"},
    "device_pinning": {"device_missing_address", "device_invalid_address", "device_not_registered"},
    "host_checker": {"platform_not_allowed", "client_too_old", "app_missing", "app_outdated", "app_unverifiable",
                     "platform_cannot_report"},
}


def test_messages_merged_with_defaults():
    result = settings(everything(messages={"group_denied": "Ask the help desk."}))
    messages = result["messages"]
    assert messages["group_denied"] == "Ask the help desk."
    assert messages["internal_error"] == "Authentication failed. Please contact your administrator."
    assert set(messages) == {"internal_error"}.union(*CAPABILITY_MESSAGES.values())
    assert all(messages[k] == MESSAGES[k] for k in messages if k != "group_denied")


@pytest.mark.parametrize("feature", sorted(CAPABILITY_MESSAGES))
def test_a_script_carries_the_messages_of_its_capabilities_only(feature):
    overrides = {key: "custom %s" % key for key in MESSAGES}
    values = {"group_mapping": mapping, "device_pinning": pinning, "host_checker": checker}[feature](messages=overrides)
    messages = settings(values)["messages"]
    assert set(messages) == {"internal_error"} | CAPABILITY_MESSAGES[feature]
    assert all(text == "custom %s" % key for key, text in messages.items())


def test_without_capabilities_only_the_internal_error_message():
    # an override for a capability that is off is still checked, and left out
    result = settings(params(messages={"group_denied": "Ask the help desk.", "duo_denied": "No."}))
    assert result["messages"] == {"internal_error": MESSAGES["internal_error"]}


# --- features and flags ----------------------------------------------------------------------------------------------

SWITCHES = {"group_mapping": {"group_mapping_rules": [ADMINS]}, "device_pinning": {}, "host_checker": {}}


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        pytest.param(["host_checker", "device_pinning", "group_mapping"],
                     ["group_mapping", "device_pinning", "host_checker"], id="reversed"),
        pytest.param(["device_pinning", "host_checker", "group_mapping"],
                     ["group_mapping", "device_pinning", "host_checker"], id="shuffled"),
        pytest.param(["host_checker", "group_mapping"], ["group_mapping", "host_checker"], id="two"),
        pytest.param(["host_checker", "device_pinning"], ["device_pinning", "host_checker"], id="no-mapping"),
        pytest.param(["device_pinning"], ["device_pinning"], id="one"),
        pytest.param([], [], id="none"),
    ],
)
def test_features_in_chain_order(order, expected):
    base = role_defaults()
    values = {}
    # the switches first, in the given order, then everything else
    for feature in order:
        values[feature] = True
        values.update(SWITCHES[feature])
    for key, value in base.items():
        values.setdefault(key, value)
    values["host_checker_apps"] = [CHROME]
    result = post_auth_settings(values)
    assert result["features"] == expected
    assert result["settings"]["features"] == expected
    assert sorted(key for key in result["settings"] if key not in ("messages", "features")) == sorted(expected)


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        pytest.param(params(), {"SYNCHRONOUS": True}, id="nothing"),
        pytest.param(pinning(), {"SYNCHRONOUS": True}, id="pinning-only"),
        pytest.param(mapping(), {"SYNCHRONOUS": False, "GROUP_SELECT": True}, id="ldap-rule-group"),
        pytest.param(mapping(group_mapping_sources=["ldap"], group_mapping_rules=[rule(group=None, deny=True)]),
                     {"SYNCHRONOUS": False}, id="ldap-deny-only"),
        pytest.param(mapping(group_mapping_sources=["radius", "saml"]), {"SYNCHRONOUS": True, "GROUP_SELECT": True},
                     id="no-ldap-rule-group"),
        pytest.param(mapping(group_mapping_sources=["radius"],
                             group_mapping_rules=[rule(group=None, properties={"prop_autologin": True})]),
                     {"SYNCHRONOUS": True}, id="properties-only"),
        pytest.param(mapping(group_mapping_sources=["saml"], group_mapping_rules=[],
                             group_mapping_default_group="users"),
                     {"SYNCHRONOUS": True, "GROUP_SELECT": True}, id="default-group-only"),
        pytest.param(mapping(group_mapping_rules=[]), {"SYNCHRONOUS": False}, id="ldap-no-rules"),
        pytest.param(params(group_mapping=False, group_mapping_rules=[ADMINS], group_mapping_default_group="users"),
                     {"SYNCHRONOUS": True}, id="mapping-switched-off"),
    ],
)
def test_flags(values, flags):
    assert post_auth_settings(values)["flags"] == flags


# --- sha256 ----------------------------------------------------------------------------------------------------------

def digest(values):
    return post_auth_settings(values)["sha256"]


def reorder(value):
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reorder(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reorder(item) for item in value]
    return value


def test_sha256_stable_for_equal_input():
    first, second = digest(everything()), digest(everything())
    assert first == second
    assert len(first) == 64
    assert int(first, 16) >= 0


def test_sha256_independent_of_key_order():
    values = everything(messages={"group_denied": "No.", "app_missing": "{app}?"})
    reordered = reorder(values)
    assert list(reordered) == list(reversed(list(values)))
    assert digest(reordered) == digest(values)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(rule(ldap_groups=["CN=VPN Admins, OU=Groups,DC=example,DC=com"]),
                     rule(ldap_groups=["cn=vpn admins,ou=groups,dc=example,dc=com"]), id="dn-spelling"),
        pytest.param(rule(saml_groups=["Staff"]), rule(saml_groups=[" staff"]), id="saml-case"),
        pytest.param(rule(properties={"prop_expire": 60, "prop_lzo": True}),
                     rule(properties={"prop_lzo": True, "prop_expire": 60}), id="property-order"),
    ],
)
def test_sha256_equal_for_equivalent_input(first, second):
    assert digest(everything(group_mapping_rules=[first])) == digest(everything(group_mapping_rules=[second]))


def swapped_rules():
    rules = everything()["group_mapping_rules"]
    return [rules[1], rules[0], rules[2]]


CHANGES = [
    pytest.param({"messages": {"group_denied": "Not you."}}, id="message"),
    pytest.param({"group_mapping_sources": ["ldap", "radius"]}, id="sources"),
    pytest.param({"group_mapping_rules": swapped_rules()}, id="rule-order"),
    pytest.param({"group_mapping_rules": [rule(group="root")]}, id="rule-group"),
    pytest.param({"group_mapping_rules": [rule(name="admins2")]}, id="rule-name"),
    pytest.param({"group_mapping_rules": [rule(properties={"prop_lzo": True})]}, id="rule-property"),
    pytest.param({"group_mapping_rules": [rule(deny=True)]}, id="rule-deny"),
    pytest.param({"group_mapping_rules": [rule(ldap_groups=["cn=other,dc=x"])]}, id="rule-ldap-group"),
    pytest.param({"group_mapping_default_group": "guests"}, id="default-group"),
    pytest.param({"group_mapping_deny_unmatched": True}, id="deny-unmatched"),
    pytest.param({"group_mapping_persist": True}, id="persist"),
    pytest.param({"group_mapping_on_error": "default_group"}, id="on-error"),
    pytest.param({"group_mapping_case_sensitive": True}, id="case-sensitive"),
    pytest.param({"group_mapping_ldap_mode": "search", "group_mapping_ldap_group_base": "dc=x"}, id="ldap-mode"),
    pytest.param({"group_mapping_ldap_member_attribute": "isMemberOf"}, id="member-attribute"),
    pytest.param({"group_mapping_ldap_group_filter": "(uniqueMember={user_dn})"}, id="group-filter"),
    pytest.param({"group_mapping_ldap_group_name_attribute": "name"}, id="group-name-attribute"),
    pytest.param({"group_mapping_saml_claim": "roles"}, id="saml-claim"),
    pytest.param({"group_mapping_radius_framed_ip": False}, id="framed-ip"),
    pytest.param({"group_mapping_radius_callback_flags": True}, id="callback-flags"),
    pytest.param({"device_pinning_mode": "manual"}, id="pinning-mode"),
    pytest.param({"device_pinning_max_devices": 2}, id="max-devices"),
    pytest.param({"device_pinning_networks": ["10.0.0.0/16"]}, id="networks"),
    pytest.param({"device_pinning_exempt_users": ["alice"]}, id="exempt-users"),
    pytest.param({"device_pinning_exempt_groups": ["admins"]}, id="exempt-groups"),
    pytest.param({"device_pinning_allow_missing_address": True}, id="allow-missing-address"),
    pytest.param({"host_checker_apps": [dict(CHROME, min_version="116")]}, id="app-min-version"),
    pytest.param({"host_checker_apps": [dict(CHROME, required=False)]}, id="app-required"),
    pytest.param({"host_checker_apps": [dict(CHROME, regex="chrome")]}, id="app-regex"),
    pytest.param({"host_checker_apps": [dict(CHROME, platform="all")]}, id="app-platform"),
    pytest.param({"host_checker_on_error": {"ERR_REGEX": "allow"}}, id="app-on-error"),
    pytest.param({"host_checker_missing_report": "allow"}, id="missing-report"),
    pytest.param({"host_checker_platforms": ["win"]}, id="platforms"),
    pytest.param({"host_checker_min_client_version": "3.4"}, id="min-client-version"),
    pytest.param({"host_checker_unreporting_platforms": "deny"}, id="unreporting"),
    pytest.param({"host_checker": False}, id="feature-off"),
    pytest.param({"group_mapping_sources": ["radius", "saml"]}, id="sources-without-ldap"),
]


@pytest.mark.parametrize("change", CHANGES)
def test_sha256_changes_with_any_setting(change):
    assert digest(everything(**change)) != digest(everything())


def test_sha256_differs_between_all_changes():
    digests = [digest(everything(**change.values[0])) for change in CHANGES]
    assert len(set(digests)) == len(digests)
