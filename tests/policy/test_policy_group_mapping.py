"""Group mapping, composed by the post_auth role, against the real slapd and FreeRADIUS of conftest.py.

Five scenarios, one role run each:
- member_of: LDAP memberOf values, RADIUS reply attributes and SAML groups, unmatched logins refused;
- search: LDAP group search under ou=groups, a deny rule first, a default group, persisted;
- broken (on_error deny) and fail_open (on_error default_group): the group base does not exist;
- saml_fail_open: SAML with a deny rule and on_error default_group, judged by its policy cases.
The ldap_context flavour (ldap3 or python-ldap) is an emulator setting: each LDAP test runs with both
against the same loaded script.
"""

import pytest
from policy import ADMINS_DN, GROUPS_BASE, MESSAGES, Log, scenarios, user_props

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_group_mapping_rules": [{"ldap_groups": ["cn=vpn,ou=groups,dc=example,dc=com"], "group": "vpn"}]},
    {"post_auth_group_mapping_ldap_mode": "search", "post_auth_group_mapping_ldap_group_base": "ou=groups,dc=x",
     "post_auth_group_mapping_sources": ["ldap", "radius", "saml"],
     "post_auth_group_mapping_rules": [{"radius_attribute": "Class", "radius_pattern": "^vpn-", "group": "vpn"},
                                       {"saml_groups": ["staff"], "group": "staff"}]},
    {"post_auth_group_mapping_sources": ["radius"], "post_auth_group_mapping_radius_framed_ip": False,
     "post_auth_group_mapping_default_group": "vpn", "post_auth_group_mapping_rules": []},
    {"post_auth_group_mapping_sources": ["ldap", "radius", "saml", "custom_auth"],
     "post_auth_group_mapping_rules": [
         {"name": "suspended", "ldap_groups": ["suspended"], "saml_groups": ["Suspended"],
          "custom_auth_groups": ["suspended"], "deny": True},
         {"name": "administrators", "ldap_groups": ["CN=VPN Admins, OU=Groups, DC=example, DC=com", "vpn-admins"],
          "saml_groups": ["vpn-admins"], "custom_auth_groups": ["admins"], "group": "admins",
          "properties": {"prop_autologin": True, "prop_reroute_gw_override": "dns_only", "prop_expire": 28800}},
         {"name": "radius admins", "radius_attribute": "Filter-Id", "radius_values": ["VPN-ADMINS", "vpn-root"],
          "group": "admins"},
         {"name": "radius users", "radius_attribute": "Class", "radius_values": ["users"],
          "radius_pattern": "VPN-USER[S]?", "group": "users", "properties": {"prop_deny_web": True}}],
     "post_auth_group_mapping_case_sensitive": True, "post_auth_group_mapping_persist": True,
     "post_auth_group_mapping_radius_callback_flags": True, "post_auth_group_mapping_default_group": "everyone",
     "post_auth_group_mapping_on_error": "default_group"},
    {"post_auth_group_mapping_sources": ["radius", "custom_auth"], "post_auth_group_mapping_radius_framed_ip": False,
     "post_auth_group_mapping_radius_callback_flags": True, "post_auth_group_mapping_deny_unmatched": True,
     "post_auth_group_mapping_rules": [{"custom_auth_groups": ["Engineering"], "group": "engineering"}]},
]

APIS = ["ldap3", "python-ldap"]
ENGINEERING_DN = "cn=engineering,ou=groups,dc=example,dc=com"
MISSING_BASE = "ou=missing,dc=example,dc=com"

MEMBER_OF = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_rules": [
        {"name": "administrators", "ldap_groups": [ADMINS_DN.upper().replace(",", ", ")],
         "saml_groups": ["vpn-admins"], "group": "admins",
         "properties": {"prop_autologin": True, "prop_reroute_gw_override": "dns_only"}},
        {"name": "suspended", "ldap_groups": ["suspended"], "saml_groups": ["Suspended"], "deny": True},
        {"name": "radius admins", "radius_attribute": "Class", "radius_values": ["VPN-ADMINS"],
         "group": "radius-admins"},
        {"name": "users", "ldap_groups": ["vpn-users"], "saml_groups": ["vpn-users"], "group": "users",
         "properties": {"prop_deny_web": True, "prop_expire": 28800}},
        {"name": "radius users", "radius_attribute": "Class", "radius_pattern": "VPN-USER[S]?", "group": "users",
         "properties": {"prop_deny_web": True, "prop_expire": 28800}},
    ],
    "post_auth_group_mapping_deny_unmatched": True,
    "post_auth_group_mapping_radius_callback_flags": True,
    # SAML claims of a shape no rule can judge are a directory error (on_error deny), never "no group"
    "post_auth_policy_tests": [
        {"name": "a list inside the groups claim", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": [["Suspended"]]},
         "expect": {"status": "FAIL", "client_reason": MESSAGES["directory_error"]}},
        {"name": "a number in the groups claim", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": ["vpn-users", 7]},
         "expect": {"status": "FAIL", "client_reason": MESSAGES["directory_error"]}},
        {"name": "names only", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": ["vpn-users"]}, "expect": {"status": "SUCCEED", "group": "users"}},
    ],
}

SEARCH = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["ldap"],
    "post_auth_group_mapping_ldap_mode": "search",
    "post_auth_group_mapping_ldap_group_base": GROUPS_BASE,
    "post_auth_group_mapping_rules": [
        {"name": "engineering is suspended", "ldap_groups": [ENGINEERING_DN], "deny": True},
        {"name": "users", "ldap_groups": ["VPN-Users"], "group": "users", "properties": {"prop_expire": 3600}},
        {"name": "administrators", "ldap_groups": ["vpn-admins"], "group": "admins"},
    ],
    "post_auth_group_mapping_default_group": "everyone",
    "post_auth_group_mapping_persist": True,
}

# SAML with a deny rule and on_error default_group: an error reading the groups gives the default group,
# but groups of a shape no rule can judge may hide the denied one, so they refuse
SAML_FAIL_OPEN = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["saml"],
    "post_auth_group_mapping_rules": [
        {"name": "suspended", "saml_groups": ["Suspended"], "deny": True},
        {"name": "users", "saml_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_default_group": "fallback",
    "post_auth_group_mapping_on_error": "default_group",
    "post_auth_policy_tests": [
        {"name": "a list inside the groups claim", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": [["Suspended"]]},
         "expect": {"status": "FAIL", "client_reason": MESSAGES["directory_error"]}},
        {"name": "the denied group", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": ["Suspended"]},
         "expect": {"status": "FAIL", "client_reason": MESSAGES["group_denied"]}},
        {"name": "no rule matches", "user": "sam@example.com", "auth_method": "saml",
         "saml_attr": {"groups": ["marketing"]}, "expect": {"status": "SUCCEED", "group": "fallback"}},
    ],
}

BROKEN = dict(SEARCH, post_auth_group_mapping_ldap_group_base=MISSING_BASE, post_auth_group_mapping_persist=False)
FAIL_OPEN = dict(BROKEN, post_auth_group_mapping_on_error="default_group",
                 post_auth_group_mapping_default_group="fallback")


def ldap_login(sc, api, user, password, *options):
    sc.server.settings(ldap_api=api)
    return sc.login(user, password, *options)


# member_of: LDAP, RADIUS and SAML ---------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory, slapd, freeradius):
    """The five scenarios, their role runs side by side."""

    def prepare_member_of(server):
        freeradius.configure(server)
        # LDAP is the configured method; RADIUS and SAML logins choose theirs with --auth-method
        slapd.configure(server)
        server.set_password("alice", "local-pw")

    return scenarios(tmp_path_factory, {
        "mapping-member-of": (MEMBER_OF, prepare_member_of),
        "mapping-search": (SEARCH, slapd.configure),
        "mapping-broken": (BROKEN, slapd.configure),
        "mapping-fail-open": (FAIL_OPEN, slapd.configure),
        "mapping-saml-fail-open": (SAML_FAIL_OPEN, None),
    })


@pytest.fixture(scope="module")
def member_of(built):
    return built["mapping-member-of"]


def test_member_of_role_run(member_of):
    script = member_of.script
    assert "# ovpnas.fleet.features: group_mapping\n" in script
    # LDAP searches are network I/O: the script runs in a worker thread, and picks the group
    assert "SYNCHRONOUS = False\n" in script and "GROUP_SELECT = True\n" in script
    commands = member_of.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands


@pytest.mark.parametrize("api", APIS)
def test_ldap_first_matching_rule_wins(member_of, api):
    log = Log(member_of.server)
    # alice is in vpn-admins and vpn-users: administrators is listed first
    alice = ldap_login(member_of, api, "alice", "alice-pw")
    assert alice["status"] == "SUCCEED", alice
    assert alice.group == "admins"
    assert alice.props["prop_autologin"] == "true"
    assert alice.props["prop_reroute_gw_override"] == "dns_only"
    assert "prop_deny_web" not in alice.props and "prop_expire" not in alice.props
    assert "alice (ldap) matched administrators" in log.new()

    bob = ldap_login(member_of, api, "bob", "bob-pw")
    assert bob["status"] == "SUCCEED", bob
    assert bob.group == "users"
    assert (bob.props["prop_deny_web"], bob.props["prop_expire"]) == ("true", "28800")
    assert "prop_autologin" not in bob.props


@pytest.mark.parametrize("api", APIS)
def test_ldap_unmatched_users_are_refused(member_of, api):
    carol = ldap_login(member_of, api, "carol", "carol-pw")
    assert carol["status"] == "FAIL"
    assert carol["client_reason"] == MESSAGES["group_unmatched"]
    assert carol["reason"] == "group_mapping: carol (ldap) matched no group mapping rule"


@pytest.mark.parametrize("api", APIS)
def test_ldap_decisions_use_the_normalized_user_name(member_of, api):
    log = Log(member_of.server)
    dave = ldap_login(member_of, api, "DAVE", "dave-pw")
    assert dave["status"] == "FAIL"
    assert dave["user"] == "Dave"
    assert dave["reason"] == "group_mapping: Dave (ldap) matched no group mapping rule"
    assert "refused Dave: group_mapping: Dave (ldap)" in log.new()


def test_rule_properties_take_effect(member_of):
    # users get prop_deny_web from their rule: Access Server then refuses their web logins
    web = member_of.login("bob", "bob-pw", "--web")
    assert web["status"] == "FAIL"
    assert web["reason"] == "user is denied web access (prop_deny_web)"
    assert member_of.login("alice", "alice-pw", "--web")["status"] == "SUCCEED"


def test_not_persisted_by_default(member_of):
    for user, password in (("alice", "alice-pw"), ("bob", "bob-pw")):
        assert member_of.login(user, password)["status"] == "SUCCEED"
        saved = user_props(member_of.server, user)
        assert "conn_group" not in saved and "prop_expire" not in saved and "prop_autologin" not in saved, saved


def test_local_logins_are_not_mapped(member_of):
    local = member_of.login("alice", "local-pw", "--auth-method", "local")
    assert local["status"] == "SUCCEED", local
    assert local["reason"] == "local auth succeeded"
    assert "conn_group" not in local.props and "prop_autologin" not in local.props


def test_radius_class_framed_ip_and_callback_flags(member_of):
    log = Log(member_of.server)
    alice = member_of.login("alice", "alice-pw", "--auth-method", "radius")
    assert alice["status"] == "SUCCEED", alice
    assert alice["reason"] == "RADIUS auth succeeded"
    # Class "vpn-admins" matches the values ["VPN-ADMINS"]: case does not matter by default
    assert alice.group == "radius-admins"
    assert alice.props["conn_ip"] == "172.27.232.10"
    # Callback-Number "superuser,autologin,reroute_gw"
    assert alice.props["prop_superuser"] == "true"
    assert alice.props["prop_autologin"] == "true"
    assert alice.props["prop_reroute_gw_override"] == "global"
    assert "alice (radius) matched radius admins" in log.new()

    # Class "vpn-users" matches the pattern VPN-USER[S]? as a whole value
    bob = member_of.login("bob", "bob-pw", "--auth-method", "radius")
    assert bob["status"] == "SUCCEED", bob
    assert bob.group == "users"
    assert (bob.props["prop_deny_web"], bob.props["prop_expire"]) == ("true", "28800")
    assert "conn_ip" not in bob.props and "prop_superuser" not in bob.props

    carol = member_of.login("carol", "carol-pw", "--auth-method", "radius")
    assert carol["status"] == "FAIL"
    assert carol["client_reason"] == MESSAGES["group_unmatched"]
    assert carol["reason"] == "group_mapping: carol (radius) matched no group mapping rule"
    assert "conn_ip" not in user_props(member_of.server, "alice")


def test_radius_reject_never_reaches_the_script(member_of):
    eve = member_of.login("eve", "eve-pw", "--auth-method", "radius")
    assert eve["status"] == "FAIL"
    assert eve["reason"] == "RADIUS auth failed: Access-Reject: account disabled"
    assert "client_reason" not in eve


@pytest.mark.parametrize("claims, group", [
    (["vpn-users", "vpn-admins"], "admins"),
    (["VPN-Users"], "users"),
    (["marketing", "vpn-admins"], "admins"),
])
def test_saml_groups(member_of, claims, group):
    options = ["--auth-method", "saml"]
    for claim in claims:
        options += ["--saml-attr", "groups=%s" % claim]
    outcome = member_of.login("sam@example.com", "", *options)
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == group


@pytest.mark.parametrize("options, message", [
    (["--saml-attr", "groups=suspended"], "group_denied"),
    (["--saml-attr", "groups=marketing"], "group_unmatched"),
    (["--saml-attr", "memberOf=vpn-admins"], "group_unmatched"),
    ([], "group_unmatched"),
])
def test_saml_refusals(member_of, options, message):
    outcome = member_of.login("sam@example.com", "", "--auth-method", "saml", *options)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MESSAGES[message]
    assert outcome["reason"].startswith("group_mapping: sam@example.com ")


# search mode: deny first, users before admins, a default group, persisted ------------------------

@pytest.fixture(scope="module")
def search(built):
    return built["mapping-search"]


@pytest.mark.parametrize("api", APIS)
def test_search_first_match_and_persist(search, api):
    alice = ldap_login(search, api, "alice", "alice-pw")
    assert alice["status"] == "SUCCEED", alice
    # users is listed before administrators this time
    assert alice.group == "users"
    assert alice.props["prop_expire"] == "3600"
    saved = user_props(search.server, "alice")
    assert (saved["conn_group"], saved["prop_expire"]) == ("users", "3600")


@pytest.mark.parametrize("api", APIS)
def test_search_deny_rule(search, api):
    log = Log(search.server)
    bob = ldap_login(search, api, "bob", "bob-pw")
    assert bob["status"] == "FAIL"
    assert bob["client_reason"] == MESSAGES["group_denied"]
    assert bob["reason"] == "group_mapping: bob matches engineering is suspended, which denies access"
    assert "refused bob" in log.new()
    assert "conn_group" not in user_props(search.server, "bob")


@pytest.mark.parametrize("api", APIS)
def test_search_default_group_and_normalized_name(search, api):
    carol = ldap_login(search, api, "carol", "carol-pw")
    assert carol["status"] == "SUCCEED", carol
    assert carol.group == "everyone"
    assert user_props(search.server, "carol")["conn_group"] == "everyone"

    dave = ldap_login(search, api, "DAVE", "dave-pw")
    assert dave["status"] == "SUCCEED", dave
    assert (dave["user"], dave.group) == ("Dave", "everyone")
    # saved under the name Access Server normalized, not the name typed
    props = search.server.userprops()
    assert props["Dave"]["conn_group"] == "everyone"
    assert "DAVE" not in props


def test_search_sources_limit_what_is_mapped(search):
    saml = search.login("sam@example.com", "", "--auth-method", "saml", "--saml-attr", "groups=vpn-admins")
    assert saml["status"] == "SUCCEED", saml
    assert "conn_group" not in saml.props


# the directory cannot be asked: refused by default, the default group with on_error=default_group --

@pytest.fixture(scope="module")
def broken(built):
    return built["mapping-broken"]


@pytest.fixture(scope="module")
def fail_open(built):
    return built["mapping-fail-open"]


@pytest.mark.parametrize("api", APIS)
def test_directory_error_refuses_by_default(broken, api):
    log = Log(broken.server)
    for user, password in (("alice", "alice-pw"), ("carol", "carol-pw")):
        refused = ldap_login(broken, api, user, password)
        assert refused["status"] == "FAIL", (user, refused)
        assert refused["client_reason"] == MESSAGES["directory_error"]
        assert refused["reason"].startswith("group_mapping: groups of %s could not be read: " % user), refused
    assert "refused alice: group_mapping: groups of alice could not be read" in log.new()


@pytest.mark.parametrize("api", APIS)
def test_directory_error_with_on_error_default_group(fail_open, api):
    log = Log(fail_open.server)
    alice = ldap_login(fail_open, api, "alice", "alice-pw")
    assert alice["status"] == "SUCCEED", alice
    assert alice.group == "fallback"
    assert "groups of alice could not be read" in log.new()
    assert "using the default group" in log.new()
    assert "conn_group" not in user_props(fail_open.server, "alice")


# saml_fail_open: its policy cases ran against the script before the role loaded it -------------------------

def test_odd_saml_claims_refuse_even_where_errors_fail_open(built):
    sc = built["mapping-saml-fail-open"]
    assert "if isinstance(exc, OddGroups):" in sc.script
    commands = sc.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    # a plain SAML login through authcli, as a client makes it
    outcome = sc.login("sam@example.com", "", "--auth-method", "saml", "--saml-attr", "groups=Suspended")
    assert outcome["status"] == "FAIL" and outcome["client_reason"] == MESSAGES["group_denied"], outcome
