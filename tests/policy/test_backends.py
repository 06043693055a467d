"""authcli of the emulator against a real OpenLDAP slapd and a real FreeRADIUS (see conftest.py).

Every login runs the installed emulator's authcli as a separate process, as Access Server's own tool
would run; post-auth scripts report what they saw through client_reason, which authcli prints.
"""

import ast
import glob
import json
import os
import socket
import subprocess
import time

import pytest
import servers

ADMINS = "cn=vpn-admins,ou=groups,dc=example,dc=com"
USERS = "cn=vpn-users,ou=groups,dc=example,dc=com"

# Reads the user's memberOf values with the ldap3 API, through `with info['ldap_context'] as l:`.
LDAP3_GROUPS = """
import json
import ldap3
from ldap3.utils.conv import escape_filter_chars

def report(authret, info):
    with info['ldap_context'] as l:
        flavour = isinstance(l, ldap3.Connection)
        l.search(info['search_base'], '(uid=%s)' % escape_filter_chars(authret['user']),
                 search_scope=ldap3.SUBTREE, attributes=['memberOf'])
        entries = [e for e in l.response if e['type'] == 'searchResEntry']
        groups = sorted(str(g) for g in entries[0]['attributes'].get('memberOf', []))
        dns = [e['dn'] for e in entries]
    # as OpenVPN's own LDAP group-mapping script reads the name attribute
    uname_attr = info['ldap_context'].authldap.parms['uname_attr']
    return {'flavour': flavour, 'groups': groups, 'dns': dns, 'user_dn': info['user_dn'], 'uname_attr': uname_attr,
            'search_base': info['search_base'], 'user': authret['user'], 'method': info['auth_method']}
"""

# The same with the python-ldap API (AS before 2.8).
PYTHON_LDAP_GROUPS = """
import json
import ldap
import ldap.filter
import ldap.ldapobject

def report(authret, info):
    with info['ldap_context'] as l:
        flavour = isinstance(l, ldap.ldapobject.SimpleLDAPObject)
        found = l.search_s(info['search_base'], ldap.SCOPE_SUBTREE,
                           '(uid=%s)' % ldap.filter.escape_filter_chars(authret['user']), ['memberOf'])
        entries = [(dn, attrs) for dn, attrs in found if dn]
        groups = sorted(g.decode('utf-8') for g in entries[0][1].get('memberOf', []))
        dns = [dn for dn, attrs in entries]
    # as OpenVPN's own LDAP group-mapping script reads the name attribute
    uname_attr = info['ldap_context'].authldap.parms['uname_attr']
    return {'flavour': flavour, 'groups': groups, 'dns': dns, 'user_dn': info['user_dn'], 'uname_attr': uname_attr,
            'search_base': info['search_base'], 'user': authret['user'], 'method': info['auth_method']}
"""

POST_AUTH = """
def post_auth(authcred, attributes, authret, info):
    authret['client_reason'] = json.dumps(report(authret, info))
    return authret
"""

# Issues a dynamic challenge; the answer's run reads the groups with a fresh ldap_context.
POST_AUTH_CR = """
def post_auth_cr(authcred, attributes, authret, info, crstate):
    if not crstate.response():
        crstate['first_user_dn'] = info['user_dn']
        return crstate.challenge_post_auth(authret, 'Enter PIN')
    seen = report(authret, info)
    seen['first_user_dn'] = crstate['first_user_dn']
    authret['client_reason'] = json.dumps(seen)
    authret['status'] = SUCCEED if crstate.response() == '4242' else FAIL
    return authret
"""

# Reports info as a Python literal (radius_reply keys are ints).
INFO_PROBE = """
def post_auth(authcred, attributes, authret, info):
    authret['client_reason'] = repr({k: v for k, v in info.items() if k != 'ldap_context'})
    return authret
"""

SCRIPTS = {"ldap3": LDAP3_GROUPS, "python-ldap": PYTHON_LDAP_GROUPS}

ALICE_REPLY = {
    8: ["172.27.232.10"],
    11: ["eng"],
    19: ["superuser,autologin,reroute_gw"],
    25: ["vpn-admins"],
    88: ["admins"],
}


def load_script(server, tmp_path, text):
    path = tmp_path / "post_auth.py"
    path.write_text(text)
    server.sacli("--key", "auth.module.post_auth_script", "--value_file=%s" % path, "ConfigPut")


def login(server, user, password, *options):
    """authcli's fields as a dict, plus rc and elapsed seconds."""
    started = time.monotonic()
    proc = server.authcli("--user", user, "--pass", password, *options)
    fields = {"rc": proc.returncode, "elapsed": time.monotonic() - started}
    lines = proc.stdout.splitlines()
    assert lines and lines[0] == "API METHOD: authenticate", (proc.stdout, proc.stderr)
    for line in lines[1:]:
        if line.strip() != "AUTH_RETURN":
            name, value = line.strip().split(" : ", 1)
            fields[name] = value
    return fields


def report(fields):
    return json.loads(fields["client_reason"])


# LDAP -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("api", ["ldap3", "python-ldap"])
def test_ldap_login_hands_the_script_a_service_connection(slapd, make_server, tmp_path, api):
    # the flavour is chosen at install time here (--ldap-api), as a fleet would pin it per AS version
    server = slapd.configure(make_server("--ldap-api", api))
    assert server.root.settings()["ldap_api"] == api
    load_script(server, tmp_path, SCRIPTS[api] + POST_AUTH)
    for user in ("alice", "bob"):
        fields = login(server, user, slapd.users[user][0])
        assert fields["status"] == "SUCCEED", fields
        assert fields["reason"] == "LDAP auth succeeded"
        assert fields["user"] == user
        seen = report(fields)
        assert seen == {
            "flavour": True, "groups": slapd.groups_of(user), "dns": [slapd.user_dn(user)], "uname_attr": "uid",
            "user_dn": slapd.user_dn(user), "search_base": slapd.users_base_dn, "user": user, "method": "ldap",
        }


def test_ldap_groups_of_the_fixture_are_the_expected_ones(slapd):
    """The directory itself (read with ldapsearch) gives alice both VPN groups: the fixture is sound."""
    proc = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", slapd.bind_dn, "-w", slapd.bind_pw,
         "-b", slapd.users_base_dn, "(uid=alice)", "memberOf"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    values = sorted(line.split(": ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("memberOf: "))
    assert values == [ADMINS, USERS] == slapd.groups_of("alice")


@pytest.mark.parametrize("api", ["ldap3", "python-ldap"])
def test_ldap_challenge_answer_gets_a_fresh_context(slapd, server, tmp_path, api):
    slapd.configure(server, api=api)
    load_script(server, tmp_path, SCRIPTS[api] + POST_AUTH_CR)
    first = login(server, "alice", "alice-pw")
    assert first["status"] == "FAIL" and first["challenge"].startswith("CRV1:R:"), first
    state_id = first["challenge"].split(":")[2]
    with open(server.root.crstate_file) as handle:
        saved = json.load(handle)[state_id]["info"]
    assert "ldap_context" not in saved and saved["user_dn"] == slapd.user_dn("alice")
    second = login(server, "alice", "CRV1::%s::4242" % state_id)
    assert second["status"] == "SUCCEED", second
    seen = report(second)
    assert seen["flavour"] is True and seen["uname_attr"] == "uid"
    assert seen["groups"] == [ADMINS, USERS]
    assert seen["user_dn"] == seen["first_user_dn"] == slapd.user_dn("alice")


def test_ldap_wrong_password_fails_before_the_script(slapd, server, tmp_path):
    slapd.configure(server)
    load_script(server, tmp_path, "def post_auth(authcred, attributes, authret, info):\n"
                                  "    authret['status'] = SUCCEED\n    return authret\n")
    for api in ("ldap3", "python-ldap"):
        server.settings(ldap_api=api)
        fields = login(server, "alice", "bob-pw")
        assert (fields["status"], fields["rc"]) == ("FAIL", 1), api
        assert fields["reason"] == "LDAP auth failed: invalid credentials", api
        assert "session_id" not in fields


def test_ldap_empty_password_is_not_an_anonymous_bind(slapd, server):
    slapd.configure(server)
    fields = login(server, "alice", "")
    assert fields["status"] == "FAIL"
    assert fields["reason"].startswith("LDAP auth failed: invalid credentials")


def test_ldap_unknown_user_and_filter_characters(slapd, server):
    """Names are escaped in the search filter: `al*` must not log in as alice with her password."""
    slapd.configure(server)
    for name in ("nobody", "al*", "*", "alice)(uid=*", "\\61lice"):
        fields = login(server, name, "alice-pw")
        assert fields["status"] == "FAIL", name
        assert fields["reason"] == "LDAP auth failed: user not found", name


def test_ldap_additional_requirement(slapd, server):
    slapd.configure(server)
    assert login(server, "carol", "carol-pw")["status"] == "SUCCEED"
    # with and without the enclosing parentheses
    for add_req in ("(memberOf=%s)" % USERS, "memberOf=%s" % USERS):
        server.sacli("--key", "auth.ldap.0.add_req", "--value", add_req, "ConfigPut")
        assert login(server, "alice", "alice-pw")["status"] == "SUCCEED", add_req
        assert login(server, "bob", "bob-pw")["status"] == "SUCCEED", add_req
        refused = login(server, "carol", "carol-pw")
        assert refused["status"] == "FAIL", add_req
        assert refused["reason"] == "LDAP auth failed: user does not meet the additional requirement (add_req)"


def test_ldap_user_is_the_directory_spelling(slapd, server, tmp_path):
    slapd.configure(server)
    load_script(server, tmp_path, INFO_PROBE)
    for typed in ("dave", "DAVE", "Dave"):
        fields = login(server, typed, "dave-pw")
        assert fields["status"] == "SUCCEED", fields
        assert fields["user"] == "Dave"
        info = ast.literal_eval(fields["client_reason"])
        assert info["user_dn"] == slapd.user_dn("Dave")


def test_ldap_port_key_and_auth_method_option(slapd, server):
    """server.0.port is honoured; --auth-method ldap overrides auth.module.type."""
    slapd.configure(server, use_port_key=True)
    server.sacli("--key", "auth.module.type", "--value", "local", "ConfigPut")
    assert login(server, "alice", "alice-pw")["reason"].startswith("local auth failed")
    fields = login(server, "alice", "alice-pw", "--auth-method", "ldap")
    assert (fields["status"], fields["reason"]) == ("SUCCEED", "LDAP auth succeeded")


def test_ldap_service_account_bind_failure(slapd, server):
    slapd.configure(server, bind_pw="not-the-password")
    fields = login(server, "alice", "alice-pw")
    assert fields["status"] == "FAIL"
    assert fields["reason"].startswith("LDAP auth failed: bind as %s failed" % slapd.bind_dn)


def test_ldap_server_unreachable(slapd, server):
    slapd.configure(server, **{"server.0.host": "127.0.0.1:%d" % servers.free_port()})
    for api in ("ldap3", "python-ldap"):
        server.settings(ldap_api=api)
        fields = login(server, "alice", "alice-pw")
        assert fields["status"] == "FAIL", api
        assert fields["reason"].startswith("LDAP auth failed: server unreachable: "), fields
        assert fields["elapsed"] < 10


def test_ldap_next_server_when_the_first_is_down(slapd, server):
    slapd.configure(server, **{"server.0.host": "127.0.0.1:%d" % servers.free_port(),
                               "server.1.host": "127.0.0.1:%d" % slapd.port})
    assert login(server, "bob", "bob-pw")["status"] == "SUCCEED"


LACKS_LDAP3 = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('ldap3') is None else 3)"


def _python_without_ldap3():
    """The oldest Python 3 here that runs and has no ldap3 (pyenv's 3.6 first, then the system's)."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = sorted(glob.glob(os.path.join(pyenv, "versions", "3.6*", "bin", "python3"))) + ["/usr/bin/python3"]
    for python in candidates:
        if not os.path.exists(python):
            continue
        probe = subprocess.run([python, "-c", LACKS_LDAP3], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return python
    return None


def test_emulator_needs_the_libraries_only_for_ldap_logins(slapd, make_server):
    python = _python_without_ldap3()
    if python is None:
        pytest.skip("every Python here has ldap3")
    server = slapd.configure(make_server("--python", python))
    fields = login(server, "alice", "alice-pw")
    assert fields["status"] == "FAIL"
    assert fields["reason"].startswith("LDAP auth failed: the ldap3 library is not installed")
    server.sacli("--key", "auth.module.type", "--value", "local", "ConfigPut")
    server.set_password("alice", "local-pw")
    assert login(server, "alice", "local-pw")["status"] == "SUCCEED"


# RADIUS ---------------------------------------------------------------------------------------

def test_radius_accept_hands_the_reply_to_the_script(freeradius, server, tmp_path):
    freeradius.configure(server)
    load_script(server, tmp_path, INFO_PROBE)
    for user, expected in (("alice", ALICE_REPLY), ("bob", {25: ["vpn-users"]}), ("carol", {})):
        fields = login(server, user, freeradius.users[user])
        assert fields["status"] == "SUCCEED", fields
        assert fields["reason"] == "RADIUS auth succeeded"
        assert fields["user"] == user
        info = ast.literal_eval(fields["client_reason"])
        assert info == {"auth_method": "radius", "radius_reply": expected}, user


def test_radius_user_is_the_name_typed(freeradius, server, tmp_path):
    """With a local account `Bob` on record, the RADIUS login `bob` stays `bob`."""
    freeradius.configure(server)
    server.sacli("--user", "Bob", "--key", "prop_autologin", "--value", "true", "UserPropPut")
    fields = login(server, "bob", "bob-pw")
    assert (fields["status"], fields["user"]) == ("SUCCEED", "bob")
    assert ast.literal_eval(fields["proplist"])["prop_autologin"] == "true"


def test_radius_wrong_password_is_rejected(freeradius, server):
    freeradius.configure(server)
    fields = login(server, "alice", "bob-pw")
    assert (fields["status"], fields["rc"]) == ("FAIL", 1)
    assert fields["reason"] == "RADIUS auth failed: Access-Reject"


def test_radius_reject_carries_the_reply_message(freeradius, server):
    freeradius.configure(server)
    fields = login(server, "eve", "eve-pw")
    assert fields["status"] == "FAIL"
    assert fields["reason"] == "RADIUS auth failed: Access-Reject: account disabled"


@pytest.mark.parametrize("case", ["wrong secret", "nobody listening"])
def test_radius_server_unreachable(freeradius, server, case):
    if case == "wrong secret":
        freeradius.configure(server, secret="not-the-secret", timeout=1)
    else:
        freeradius.configure(server, port=servers.free_port(socket.SOCK_DGRAM), timeout=1)
    fields = login(server, "alice", "alice-pw")
    assert fields["status"] == "FAIL"
    assert fields["reason"].startswith("RADIUS server unreachable")
    # three attempts of one second each, not the default three seconds each
    assert 1 <= fields["elapsed"] < 8


def test_radius_reply_survives_a_challenge(freeradius, server, tmp_path):
    freeradius.configure(server)
    load_script(server, tmp_path, (
        "def post_auth_cr(authcred, attributes, authret, info, crstate):\n"
        "    if not crstate.response():\n"
        "        return crstate.challenge_post_auth(authret, 'Enter PIN')\n"
        "    authret['client_reason'] = repr(info['radius_reply'])\n"
        "    authret['status'] = SUCCEED\n"
        "    return authret\n"
    ))
    first = login(server, "alice", "alice-pw")
    state_id = first["challenge"].split(":")[2]
    second = login(server, "alice", "CRV1::%s::1234" % state_id)
    assert second["status"] == "SUCCEED", second
    assert ast.literal_eval(second["client_reason"]) == ALICE_REPLY


# SAML -----------------------------------------------------------------------------------------

def test_saml_attributes_reach_the_script(server, tmp_path):
    load_script(server, tmp_path, INFO_PROBE)
    fields = login(server, "alice@example.com", "", "--auth-method", "saml", "--saml-attr", "groups=vpn-admins",
                   "--saml-attr", "groups=vpn-users", "--saml-attr", "email=alice@example.com")
    assert fields["status"] == "SUCCEED"
    info = ast.literal_eval(fields["client_reason"])
    assert info == {"auth_method": "saml",
                    "saml_attr": {"groups": ["vpn-admins", "vpn-users"], "email": ["alice@example.com"]}}
