"""The capability registry: one module each, its messages listed once, bad input refused by name.

- the registry is every module of its folder, each a ``Capability`` with its block;
- the message keys are the registry's: the blocks show only their capability's, and the description of
  ``post_auth_messages`` in the role's argument specs names exactly them;
- whatever shape a variable has (the argument specs check types, but the capability code may be called
  with anything: a default that is another role's variable, the fields inside a rule), the settings are
  built or refused with a ``SettingsError`` that names a variable; any other exception is a bug.
"""

import copy
import os
import re

import pytest
import yaml

from ansible_collections.ovpnas.fleet.plugins.plugin_utils import capabilities
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import (
    BY_NAME,
    CAPABILITIES,
    CHAIN,
    FRAME_MESSAGES,
    MESSAGES,
)
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SettingsError
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.post_auth import build_settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
FOLDER = os.path.join(REPO, "plugins", "plugin_utils", "capabilities")
TEMPLATES = os.path.join(REPO, "templates", "post_auth")
ROLE = os.path.join(REPO, "roles", "post_auth")
SHOWN = re.compile(r"""MESSAGES\[["'](\w+)["']\]""")
NAMED = re.compile(r"^post_auth_[a-z0-9_]+")


def load_yaml(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def read(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as handle:
        return handle.read()


# --- the registry -----------------------------------------------------------------------------------------------


def test_the_registry_is_every_module_of_its_folder():
    modules = sorted(name[:-3] for name in os.listdir(FOLDER) if name.endswith(".py") and not name.startswith("_"))
    assert sorted(CHAIN) == modules
    assert [capability.order for capability in CAPABILITIES] == sorted({c.order for c in CAPABILITIES})
    for capability in CAPABILITIES:
        assert isinstance(capability, Capability)
        assert BY_NAME[capability.name] is capability
        assert os.path.exists(os.path.join(TEMPLATES, "blocks", capability.name + ".py.j2")), capability.name
    # what the script's text depends on: every file of the package, what declares a capability included
    assert sorted(os.path.basename(path) for path in capabilities.FILES) == sorted(
        name for name in os.listdir(FOLDER) if name.endswith(".py"))


def test_what_a_capability_leaves_out_needs_nothing():
    plain = Capability("x.plain", order=1, title="plain", messages={}, build=lambda params, secrets: {})
    assert plain.name == "plain"
    assert (plain.local, plain.excludes) == (False, {})
    assert plain.needs({}) == set() and plain.blocking({}) is False and plain.flags({}, {}, {}) == {}
    assert plain.users({}, {}) == {} and plain.required_apps({}) == []
    assert plain.exclusive_prefixes({}) == [] and plain.secret_properties({}) == []


@pytest.mark.parametrize("changes, message", [
    ({"order": "10"}, "order must be a whole number"),
    ({"title": ""}, "title must be a non-empty string"),
    ({"messages": {"key": 1}}, "messages must map keys to texts"),
    ({"build": None}, "build must be a function"),
    ({"needs": {"http"}}, "needs must be a function"),
])
def test_a_declaration_is_checked_when_the_registry_loads(changes, message):
    fields = dict(order=1, title="plain", messages={}, build=lambda params, secrets: {})
    fields.update(changes)
    with pytest.raises(TypeError, match=message):
        Capability("x.plain", **fields)


# --- messages: the registry is the one list ---------------------------------------------------------------------


def test_each_message_key_belongs_to_one_capability_or_the_frame():
    keys = list(FRAME_MESSAGES) + [key for capability in CAPABILITIES for key in capability.messages]
    assert len(keys) == len(set(keys))
    assert list(MESSAGES) == keys


@pytest.mark.parametrize("name", CHAIN)
def test_a_block_shows_the_messages_of_its_capability(name):
    shown = set(SHOWN.findall(read(TEMPLATES, "blocks", name + ".py.j2")))
    assert shown == set(BY_NAME[name].messages)


def test_the_frame_shows_its_own_messages():
    assert set(SHOWN.findall(read(TEMPLATES, "frame.py.j2"))) == set(FRAME_MESSAGES)
    assert not SHOWN.findall(read(TEMPLATES, "blocks", "http.py.j2"))


def listed(keys):
    keys = ["C(%s)" % key for key in keys]
    return keys[0] if len(keys) == 1 else "%s and %s" % (", ".join(keys[:-1]), keys[-1])


def test_the_argument_specs_name_the_registrys_messages():
    """The description of post_auth_messages (and so the role README) lists exactly the registry's keys."""
    spec = load_yaml(ROLE, "meta", "argument_specs.yml")["argument_specs"]
    description = spec["main"]["options"]["post_auth_messages"]["description"]
    expected = ("Messages shown to users, by name. Every script has %s; those of each capability, shown only when it "
                "is on, are %s." % (listed(FRAME_MESSAGES), "; ".join(
                    "%s (%s)" % (listed(capability.messages), capability.title) for capability in CAPABILITIES)))
    # a new or renamed message: write this text into the description, then run tests/bin/role_docs.py
    assert " ".join(description[0].split()) == expected
    placeholders = set(re.findall(r"\{(\w+)\}", " ".join(MESSAGES.values())))
    assert set(re.findall(r"C\(\{(\w+)\}\)", description[1])) == placeholders
    assert spec["compose"]["options"]["post_auth_messages"] == spec["main"]["options"]["post_auth_messages"]


# --- bad input is refused by name, never a crash ----------------------------------------------------------------


def role_defaults():
    """The role's defaults without their prefix; the one that is a template over another role's list is empty."""
    defaults = load_yaml(ROLE, "defaults", "main.yml")
    values = {name[len("post_auth_"):]: value for name, value in defaults.items() if name.startswith("post_auth_")}
    values["host_checker_apps"] = []
    return values


def every_capability(second_factor):
    """Every capability on (Duo or the challenge, which exclude each other), each able to build."""
    values = role_defaults()
    values.update({name: True for name in CHAIN if name not in ("duo", "challenge")})
    values[second_factor] = True
    values.update(
        custom_auth_url="https://auth.example.com/vpn",
        duo_api_host="api-12345678.duosecurity.com",
        duo_integration_key="DIXXXXXXXXXXXXXXXXXX",
        duo_secret_key="duo-skey-0123456789abcdefghijklmnopqrstuv",
        group_mapping_rules=[{"name": "admins", "ldap_groups": ["cn=admins,dc=example"], "group": "admins"},
                             {"radius_attribute": "Class", "radius_pattern": "^vpn-", "group": "vpn"}],
        device_pinning_registry={"alice": ["00:11:22:33:44:55"]},
        challenge_totp_secrets={"alice": "JBSWY3DPEHPK3PXP"},
        host_checker_apps=[{"name": "FIREFOX", "regex": "^mozilla firefox", "min_version": "115.0"}],
    )
    return values


BASES = {"duo": every_capability("duo"), "challenge": every_capability("challenge")}
# values of every shape: each variable gets each of them, whatever its type
SHAPES = [None, 0, 7, -1, 10 ** 30, True, False, 1.5, "", " ", "x", "yes", "\n", [], ["x"], [1], [None], [[]], {},
          {"x": 1}, {1: "x"}, [{}], [{"x": 1}], ("x",)]
HASHABLE = [shape for shape in SHAPES if not isinstance(shape, (list, dict))]
# regular expressions that the re module refuses with errors other than re.error
REGEXES = ["a{4294967296}", "(" * 5000 + ")" * 5000, "(?L)a", "[", "\\"]
# the variables with fields inside, and a valid value of them that each shape replaces a part of
INSIDE = {
    "group_mapping_rules": (lambda shape: [{"ldap_groups": ["admins"], "group": "g", "FIELD": shape}],
                            ["name", "ldap_groups", "saml_groups", "custom_auth_groups", "radius_attribute",
                             "radius_values", "radius_pattern", "group", "properties", "deny"]),
    "host_checker_apps": (lambda shape: [{"name": "A", "regex": "a", "FIELD": shape}],
                          ["name", "regex", "platform", "min_version", "required", "description"]),
}


def cases():
    for base in BASES:
        for name in sorted(BASES[base]):
            for shape in SHAPES:
                yield base, {name: shape}
        for name, (make, fields) in INSIDE.items():
            for field in fields:
                for shape in SHAPES + REGEXES:
                    value = make(shape)
                    value[0][field] = value[0].pop("FIELD")
                    yield base, {name: value}
        for shape in SHAPES + ["00:11:22:33:44:55"]:
            yield base, {"device_pinning_registry": {"alice": shape}}
            yield base, {"custom_auth_method": "hashes", "custom_auth_hashes": {"svc": shape}}
            yield base, {"challenge_totp_secrets": {"alice": shape}}
            yield base, {"messages": {"internal_error": shape}}
            yield base, {"host_checker_on_error": {"ERR_REGEX": shape}}
            yield base, {"group_mapping_rules": [{"ldap_groups": ["a"], "properties": {"prop_expire": shape}}]}
        for shape in HASHABLE:
            for name in ("device_pinning_registry", "custom_auth_hashes", "challenge_totp_secrets", "messages",
                         "host_checker_on_error"):
                yield base, {name: {shape: "x"}, "custom_auth_method": "hashes"}
            yield base, {"group_mapping_rules": [{"ldap_groups": ["a"], "properties": {shape: True}}]}


def test_every_shape_of_every_variable_builds_or_is_refused_by_name():
    crashes = []
    count = 0
    for base, changes in cases():
        params = copy.deepcopy(BASES[base])
        params.update(copy.deepcopy(changes))
        count += 1
        try:
            build_settings(params)
        except SettingsError as exc:
            if not NAMED.match(str(exc)):
                crashes.append((base, changes, "the refusal names no variable: %s" % exc))
        except Exception as exc:  # noqa: BLE001 - any other exception is what this test looks for
            crashes.append((base, changes, "%s: %s" % (type(exc).__name__, exc)))
    assert count > 4000
    assert crashes == [], "%d of %d: %s" % (len(crashes), count, crashes[:10])


@pytest.mark.parametrize("base", sorted(BASES))
def test_the_bases_build(base):
    assert build_settings(copy.deepcopy(BASES[base]))["settings"]["features"]
