"""Validation that is total: types without coercion, names within limits, credentials refused, short messages."""

import os

import pytest
import yaml
from test_settings import post_auth_variables

from ansible_collections.ovpnas.fleet.plugins.filter.host_checker import host_checker_query_file
from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities.host_checker import apps as host_checker_apps
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SettingsError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def load_yaml(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return yaml.safe_load(handle)


SPEC = load_yaml("roles", "post_auth", "meta", "argument_specs.yml")["argument_specs"]["compose"]["options"]
DEFAULTS = load_yaml("roles", "post_auth", "defaults", "main.yml")
MEGABYTE = "x" * 2**20
PREFIX = "post_auth_"


def params(**changes):
    values = {name[len(PREFIX):]: value for name, value in DEFAULTS.items() if name.startswith(PREFIX)}
    values["host_checker_apps"] = []
    values.update(changes)
    return values


def refusal(**changes):
    """Why the role refuses ``changes``: its argument specs, then what they cannot express."""
    with pytest.raises(compose.ComposeError) as caught:
        compose.PostAuth(post_auth_variables(params(**changes)), "0.1.0")
    return str(caught.value)


def strict(name, value):
    return compose.strict_value(name, value, SPEC[name])


def strict_refusal(name, value):
    with pytest.raises(compose.ComposeError) as caught:
        strict(name, value)
    return str(caught.value)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("post_auth_group_mapping_default_group", ["users"], "must be a string, not a list"),
    ("post_auth_group_mapping_default_group", {"a": 1}, "must be a string, not a mapping"),
    ("post_auth_python", True, "must be a string, not a boolean"),
    ("post_auth_validate_interpreters", "python3.6", "must be a list, not a string"),
    ("post_auth_validate_interpreters", ["python3", 3], "[1]: must be a string, not a whole number"),
    ("post_auth_device_pinning", "maybe", "must be true or false"),
    ("post_auth_device_pinning", [True], "must be true or false"),
    ("post_auth_device_pinning_max_devices", "two", "must be a whole number, not a string"),
    ("post_auth_device_pinning_max_devices", 2.5, "must be a whole number, not a float"),
    ("post_auth_device_pinning_registry", "alice=00:11:22:33:44:55", "must be a mapping, not a string"),
    ("post_auth_state", MEGABYTE, "is not one of present, absent"),
])
def test_types_are_checked_without_coercion(name, value, message):
    text = strict_refusal(name, value)
    assert text.startswith(name) and message in text, text
    assert len(text) < 200, "the message echoes the value"


@pytest.mark.parametrize(("value", "expected"), [
    ("yes", True), ("no", False), ("True", True), ("off", False), (" on ", True), (1, True), (0, False),
    (False, False)])
def test_booleans_are_read_the_way_ansible_reads_them(value, expected):
    assert strict("post_auth_device_pinning", value) is expected


def test_whole_numbers_may_be_text_as_from_an_ini_inventory():
    assert strict("post_auth_device_pinning_max_devices", " 3 ") == 3


@pytest.mark.parametrize(("value", "expected"), [("no", False), ("yes", True), (False, False), ("true", True)])
def test_required_of_an_application_is_a_boolean(value, expected):
    apps = host_checker_apps([{"name": "FIREFOX", "regex": "^firefox", "required": value}])
    assert apps[0]["required"] is expected
    with pytest.raises(SettingsError, match=r"post_auth_host_checker_apps\[0\].required: must be true or false"):
        host_checker_apps([{"name": "FIREFOX", "regex": "^firefox", "required": "sometimes"}])


@pytest.mark.parametrize("user", ["bad\nuser", "nul\x00", " alice", "alice\t", "del\x7f", MEGABYTE, ""],
                         ids=["newline", "nul", "leading-space", "tab", "del", "megabyte", "empty"])
@pytest.mark.parametrize("where", ["registry", "seeds", "hashes"])
def test_user_names_within_limits(user, where):
    if where == "registry":
        text = refusal(device_pinning=True, device_pinning_mode="manual",
                       device_pinning_registry={user: ["00:11:22:33:44:55"]})
        assert text.startswith("post_auth_device_pinning_registry key ")
    elif where == "seeds":
        text = refusal(challenge=True, challenge_totp_secrets={user: "JBSWY3DPEHPK3PXPJBSWY3DP"})
        assert text.startswith("post_auth_challenge_totp_secrets key ")
    else:
        digest = "pbkdf2_sha256$100000$c2FsdA$" + "A" * 43 + "="
        text = refusal(custom_auth=True, custom_auth_method="hashes", custom_auth_hashes={user: digest})
        assert text.startswith("post_auth_custom_auth_hashes key ")
    assert len(text) < 250 and MEGABYTE[:100] not in text, text


@pytest.mark.parametrize("group", ["users\n", ["users"], "x" * 200])
def test_group_names_within_limits(group):
    text = refusal(group_mapping=True, group_mapping_default_group=group)
    assert text.startswith("post_auth_group_mapping_default_group: "), text


@pytest.mark.parametrize("url", [
    "https://user:pw-LEAK@auth.example.com/vpn",
    "https://user@auth.example.com/vpn",
    "https://auth.example.com/vpn?token=LEAK",
    "https://auth.example.com/vpn?a=1&api_key=LEAK",
    "https://auth.example.com/vpn?Password=LEAK#x",
])
@pytest.mark.parametrize("capability", ["custom_auth", "challenge"])
def test_credentials_in_urls_are_refused(url, capability):
    if capability == "custom_auth":
        text = refusal(custom_auth=True, custom_auth_url=url)
    else:
        text = refusal(challenge=True, challenge_verify="http", challenge_url=url)
    name = "post_auth_%s" % capability
    assert text.startswith(name + "_url: holds credentials"), text
    assert "%s_token or %s_token_file" % (name, name) in text
    assert "LEAK" not in text


def test_a_url_without_credentials_passes():
    post_auth = compose.PostAuth(params(custom_auth=True, custom_auth_url="https://auth.example.com/vpn?realm=corp",
                                        custom_auth_token="t0ken-value"), "0.1.0")
    assert post_auth.settings["settings"]["custom_auth"]["url"] == "https://auth.example.com/vpn?realm=corp"


def test_messages_never_echo_a_megabyte():
    for changes in ({"custom_auth": True, "custom_auth_url": "https://" + MEGABYTE},
                    {"custom_auth": True, "custom_auth_url": MEGABYTE},
                    {"device_pinning": True, "device_pinning_mode": "manual",
                     "device_pinning_registry": {"alice": [MEGABYTE]}},
                    {"group_mapping": True, "group_mapping_sources": [MEGABYTE]},
                    {"messages": {MEGABYTE: "x"}}):
        text = refusal(**changes)
        assert "x" * 41 not in text, text[:300]


@pytest.mark.parametrize("python", ["", "  "])
def test_a_missing_python_is_named(python):
    assert refusal(python=python).startswith("post_auth_python: must name the Python 3")


def test_the_query_file_filter_refuses_a_bad_required():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="required: must be true or false"):
        host_checker_query_file([{"name": "A", "regex": "x", "required": "perhaps"}])


@pytest.mark.parametrize("value", ["--5", "\u00b2", "5.0", "0x10", ""])
def test_whole_numbers_as_text_are_digits_only(value):
    text = strict_refusal("post_auth_device_pinning_max_devices", value)
    assert text == "post_auth_device_pinning_max_devices: must be a whole number, not a string"


def test_long_unknown_names_and_bad_networks_are_shortened():
    text = refusal(group_mapping=True, group_mapping_rules=[{MEGABYTE: 1, "group": "g", "ldap_groups": ["x"]}])
    assert text.startswith("Validation of the post_auth role's variables failed:\npost_auth_group_mapping_rules.x")
    assert "x" * 41 not in text, text[:300]
    text = refusal(group_mapping=True, group_mapping_rules=[{7: 2, "group": "g", "ldap_groups": ["x"]}])
    assert text == "post_auth_group_mapping_rules[0]: the key 7 is not text"
    text = refusal(host_checker=True, host_checker_on_error={1: "deny", "x": "deny"})
    assert text.startswith("post_auth_host_checker_on_error"), text
    text = refusal(device_pinning=True, device_pinning_networks=["10.0.0.0/" + "9" * 300])
    assert text.startswith("post_auth_device_pinning_networks[0]: ") and "9" * 41 not in text, text


def test_the_argument_spec_validator_quotes_only_the_start_of_a_value():
    text = compose.shortened("argument 'deny' is of type str found in 'rules'. and we were unable to convert to "
                             "bool: The value '%s' is not a valid boolean." % ("x" * 100), [[{"deny": "x" * 100}]])
    assert "argument 'deny'" in text and "'rules'" in text and "'%s...'" % ("x" * 40) in text
    assert "x" * 41 not in text
    assert compose.shortened("got: " + "z" * 90) == "got: '%s...'" % ("z" * 40)


@pytest.mark.parametrize(("case", "message"), [
    ({"user": "alice", "expect": {"status": 1}},
     "post_auth_policy_tests[0].expect.status: must be a string, not a whole number"),
    ({"user": "alice", "expect": {"status": "MAYBE"}}, "value of status must be one of: SUCCEED, FAIL, got: MAYBE"),
    ({"user": "alice", "client": ["x"]}, "post_auth_policy_tests[0].client: must be a mapping, not a list"),
    ({"user": "alice", "clinet": {}},
     "post_auth_policy_tests[0]: 'clinet' is not a field (fields: auth_method, client,"),
    ({"user": "alice", "expect": {"stauts": "FAIL"}}, "post_auth_policy_tests[0].expect: 'stauts' is not a field"),
    ({"expect": {"status": "FAIL"}}, "post_auth_policy_tests[0]: missing required arguments: user"),
    ({"user": ["alice"]}, "post_auth_policy_tests[0].user: must be a string, not a list"),
    ({"user": "alice", "ldap": {"groups": "admins"}},
     "post_auth_policy_tests[0].ldap.groups: must be a list, not a string"),
    ({"user": "alice", "client": {"web": "perhaps"}}, "post_auth_policy_tests[0].client.web: must be true or false"),
    ({"user": "alice", "client": {"password": ["hunter2-secret"]}}, "client.password: must be a string, not a list"),
    ("alice", "post_auth_policy_tests[0]: must be a mapping, not a string"),
], ids=["number-status", "status-maybe", "client-list", "misspelt-field", "misspelt-expect", "no-user", "list-user",
        "groups-string", "odd-boolean", "list-password", "not-a-mapping"])
def test_policy_cases_of_the_wrong_shape_are_refused_on_the_controller(case, message):
    text = refusal(policy_tests=[case])
    assert message in text
    assert "hunter2-secret" not in text


def test_policy_cases_of_every_documented_field_pass():
    with open(os.path.join(REPO, "roles", "post_auth", "README.md")) as handle:
        readme = handle.read()
    start = readme.index("## Policy cases")
    section = readme[start:readme.index("\n## ", start)]
    cases = []
    for block in section.split("```yaml")[1:]:
        text = block.split("```")[0]
        loaded = yaml.safe_load(text if text.lstrip().startswith("post_auth_policy_tests") else "x:\n" + text)
        cases += next(iter(loaded.values()))
    cases[0]["client"].update(password="pw", response="123456", static_response="654321")
    cases[0]["expect"].update(saved={"pvt_hw_addr": "x"}, reason="ok", challenge=False)
    assert len(cases) == 5
    assert compose.PostAuth(post_auth_variables(params(policy_tests=cases)), "0.1.0").desired["post_auth"][
        "policy_cases"] == cases


def test_null_fields_of_a_policy_case_are_unset_ones():
    cases = [{"user": "alice", "ldap": {"groups": ["admins"], "api": None},
              "expect": {"status": "SUCCEED", "group": None}}]
    assert compose.PostAuth(post_auth_variables(params(policy_tests=cases)), "0.1.0").desired["post_auth"][
        "policy_cases"] == cases
