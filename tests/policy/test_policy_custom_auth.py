"""Custom authentication (PAS only), composed by the post_auth role and driven through authcli.

With AUTH_NULL Access Server lets everyone through and the script authenticates the user, with the
password RETAIN_PASSWORD hands it. Five scenarios, one role run each:
- http: the HTTP peer's /auth over HTTPS (test CA), a bearer token inline, its groups mapped by
  group mapping rules (custom_auth_groups);
- relay: the same endpoint behind a TCP relay that reaches the good peer or one whose certificate
  the test CA does not vouch for; no token;
- hashes: a table of PBKDF2-SHA256 hashes;
- down: the endpoint is a port where nothing listens;
- combined: PAS only, group mapping, device pinning and a TOTP challenge in one script.
The users of the endpoint have no local password: only the endpoint knows them.
"""

import time

import peers
import pytest
from policy import PYTHONS, Log, scenarios, user_props, vpn
from policy_mfa import (
    MFA_MESSAGES,
    SECRET_MARKER,
    Relay,
    answer,
    assert_compiled_everywhere,
    assert_crstate_used_as_documented,
    challenge_of,
    flag_lines,
    lines_with,
    pbkdf2_hash,
    random_token,
    totp,
)

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_custom_auth_method": "http", "post_auth_custom_auth_url": "https://auth.example.com/vpn"},
    {"post_auth_custom_auth_method": "hashes",
     "post_auth_custom_auth_hashes": {
         "svc": "pbkdf2_sha256$100000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}},
    {"post_auth_custom_auth_method": "http", "post_auth_custom_auth_url": "https://auth.example.com/vpn/check?realm=corp",
     "post_auth_custom_auth_ca_file": "/etc/ssl/certs/corp-ca.pem", "post_auth_custom_auth_timeout": 10,
     "post_auth_custom_auth_token": "t0ken-0123456789abcdef0123456789abcdef0123456789abcdef",
     "post_auth_custom_auth_success_field": "ok", "post_auth_custom_auth_groups_field": "roles"},
    {"post_auth_custom_auth_method": "http", "post_auth_custom_auth_url": "http://127.0.0.1:8080/check",
     "post_auth_custom_auth_token_file": "/etc/openvpn-as/custom-auth.token"},
    {"post_auth_custom_auth_method": "hashes",
     "post_auth_custom_auth_hashes": {
         "svc": "pbkdf2_sha256$100000$c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
         "ops": "pbkdf2_sha256$600000$c2FsdHNhbHQ$BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="}},
]

TOKEN = random_token("custom-auth")
OFFICE_IP = "198.51.100.40"
DISTINCT_PASSWORD = "Zoe-Distinct-Password-5e1f"
WRONG_PASSWORD = "Wrong-Password-77c3a"
HASHES = {
    "svc-backup": pbkdf2_hash("backup-pw-1", "salt0backup"),
    "SVC-Report": pbkdf2_hash("report-pw-2", "salt0report", iterations=120000),
}
MAPPING = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["custom_auth"],
    "post_auth_group_mapping_rules": [
        {"name": "administrators", "custom_auth_groups": ["VPN-Admins"], "group": "admins",
         "properties": {"prop_autologin": False}},
        {"name": "users", "custom_auth_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_default_group": "everyone",
}
SEEDS = {"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "bob": "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
         "carol": "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U", "dave": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}
ALICE_LAPTOP = "00:11:22:33:44:55"
BOB_LAPTOP = "00:11:22:33:44:66"
CAROL_LAPTOP = "00:11:22:33:44:77"


def common(**more):
    variables = {"post_auth_custom_auth": True, "post_auth_messages": MFA_MESSAGES,
                 "post_auth_validate_interpreters": PYTHONS}
    variables.update(more)
    return variables


@pytest.fixture(scope="module")
def relay(http_peer_session):
    running = Relay(target=(peers.LOOPBACK, http_peer_session.port)).start()
    yield running
    running.stop()


def register_carol(server):
    server.sacli("--user", "carol", "--key", "pvt_hw_addr", "--value", CAROL_LAPTOP, "UserPropPut")


@pytest.fixture(scope="module")
def built(tmp_path_factory, http_peer_session, test_ca, relay):
    """The five scenarios, their role runs side by side."""
    endpoint = dict(post_auth_custom_auth_ca_file=test_ca.ca_file, post_auth_custom_auth_timeout=1)
    http = common(post_auth_custom_auth_url=http_peer_session.auth_url, post_auth_custom_auth_token=TOKEN,
                  **endpoint, **MAPPING)
    relayed = common(post_auth_custom_auth_url=relay.url_for("/auth"), **endpoint)
    hashes = common(post_auth_custom_auth_method="hashes", post_auth_custom_auth_hashes=HASHES)
    down = common(post_auth_custom_auth_url=peers.down_url("/auth"), **endpoint)
    combined = common(
        post_auth_custom_auth_url=http_peer_session.auth_url, **endpoint, **MAPPING,
        post_auth_device_pinning=True, post_auth_device_pinning_mode="auto",
        post_auth_challenge=True, post_auth_challenge_totp_secrets=SEEDS,
    )
    return scenarios(tmp_path_factory, {
        "custom-auth-http": (http, None),
        "custom-auth-relay": (relayed, None),
        "custom-auth-hashes": (hashes, None),
        "custom-auth-down": (down, None),
        "custom-auth-combined": (combined, register_carol),
    })


@pytest.fixture(scope="module")
def http(built):
    return built["custom-auth-http"]


@pytest.fixture(scope="module")
def hashes(built):
    return built["custom-auth-hashes"]


@pytest.fixture(scope="module")
def combined(built):
    return built["custom-auth-combined"]


# the role run -------------------------------------------------------------------------------------

def test_role_run_sets_auth_null_and_retain_password(http):
    script = http.script
    assert "# ovpnas.fleet.features: custom_auth, group_mapping\n" in script
    assert flag_lines(script) == {"SYNCHRONOUS": "False", "GROUP_SELECT": "True", "AUTH_NULL": "True",
                                  "RETAIN_PASSWORD": "True"}
    assert "\ndef post_auth(authcred, attributes, authret, info):\n" in script
    token_lines = lines_with(script, TOKEN)
    assert len(token_lines) == 1 and token_lines[0].endswith(SECRET_MARKER), token_lines
    commands = http.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    # nobody has a local account
    assert set(http.server.userprops()) == {"__DEFAULT__", "openvpn"}


# the HTTPS endpoint --------------------------------------------------------------------------------

def test_endpoint_users_get_in_with_their_mapped_groups(http, http_peer):
    alice = http.login("alice", "alice-pw", "--client-ip", OFFICE_IP)
    assert alice["status"] == "SUCCEED", alice
    assert alice["reason"] == "null auth succeeded (PAS only)"
    assert alice.group == "admins"
    assert alice.props["prop_autologin"] == "false"
    request = http_peer.last("/auth")
    assert request.json == {"username": "alice", "password": "alice-pw", "client_ip": OFFICE_IP}
    assert request.headers.get("Authorization") == "Bearer %s" % TOKEN
    assert request.headers.get("Content-Type") == "application/json"

    bob = http.login("bob", "bob-pw")
    assert bob["status"] == "SUCCEED", bob
    assert bob.group == "users"
    # carol has no groups at the endpoint: the default group
    carol = http.login("carol", "carol-pw")
    assert carol["status"] == "SUCCEED", carol
    assert carol.group == "everyone"
    # the mapping is not saved, and no local account appeared
    assert "conn_group" not in user_props(http.server, "alice")


def test_wrong_password_and_unknown_user_are_refused_alike(http, http_peer):
    for user, password in (("alice", WRONG_PASSWORD), ("mallory", "mallory-pw"), ("alice", "ALICE-PW")):
        outcome = http.login(user, password)
        assert outcome["status"] == "FAIL", (user, password)
        assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_failed"]
        assert outcome["reason"] == "custom_auth: %s: wrong password or unknown user" % user
        assert http_peer.last("/auth").json["password"] == password
    assert [r.status for r in http_peer.requests] == [200, 200, 200]


def test_empty_password_is_refused_without_asking(http, http_peer):
    outcome = http.login("alice", "")
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_failed"]
    assert http_peer.requests == []


@pytest.mark.parametrize("mode,options", [
    ("slow", {"seconds": 6}),
    ("status", {"status": 500}),
    ("status", {"status": 502}),
    ("status", {"status": 503}),
    ("garbage", {}),
    ("close", {}),
], ids=["slow", "500", "502", "503", "garbage", "close"])
def test_endpoint_unavailable_is_refused(http, http_peer, mode, options):
    http_peer.behave(mode, **options)
    started = time.monotonic()
    outcome = http.login("alice", "alice-pw")
    elapsed = time.monotonic() - started
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_unavailable"]
    assert outcome["reason"].startswith("custom_auth: authentication endpoint unavailable: "), outcome
    assert len(http_peer.requests) == 1
    # post_auth_custom_auth_timeout is 1 second
    assert elapsed < 4.5, elapsed


def test_endpoint_that_wants_the_token(http, http_peer, built):
    http_peer.token = TOKEN
    assert http.login("alice", "alice-pw")["status"] == "SUCCEED"
    # the script of the relay scenario has no token: the endpoint refuses it
    relayed = built["custom-auth-relay"]
    log = Log(relayed.server)
    refused = relayed.login("alice", "alice-pw")
    assert refused["status"] == "FAIL"
    # a refused token is the endpoint's configuration, not the user's password
    assert refused["client_reason"] == MFA_MESSAGES["custom_auth_unavailable"]
    assert refused["reason"] == "custom_auth: authentication endpoint answered HTTP 401"
    request = http_peer.last("/auth")
    assert "Authorization" not in request.headers
    assert request.status == 401
    assert "refused alice: custom_auth: authentication endpoint answered HTTP 401" in log.new()


@pytest.mark.parametrize("method", ["session", "autologin"])
def test_sessions_and_autologin_are_not_authenticated_again(http, http_peer, method):
    # the client sends its session token where the password goes
    outcome = http.login("alice", "SESS_ID_dGVzdHNlc3Npb24=", "--auth-method", method)
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome["reason"] == "%s auth succeeded" % method
    assert http_peer.requests == []


def test_password_never_reaches_the_logs(http, http_peer):
    http_peer.set_user("zoe", DISTINCT_PASSWORD, ["vpn-users"])
    log = Log(http.server)
    outputs = []
    for password in (DISTINCT_PASSWORD, WRONG_PASSWORD):
        outcome = http.login("zoe", password)
        outputs.append(outcome)
    http_peer.behave("status", status=500)
    outputs.append(http.login("zoe", DISTINCT_PASSWORD))
    assert [o["status"] for o in outputs] == ["SUCCEED", "FAIL", "FAIL"]
    text = log.new()
    assert "zoe authenticated (http)" in text
    with open(http.server.root.call_log) as handle:
        calls = handle.read()
    assert "authcli" in calls
    for password in (DISTINCT_PASSWORD, WRONG_PASSWORD):
        assert password not in text
        assert password not in calls
        assert all(password not in str(o) for o in outputs)


# relay: bad certificates ------------------------------------------------------------------------

def test_relay_to_the_good_peer_works(built, http_peer, relay):
    relay.target = (peers.LOOPBACK, http_peer.port)
    outcome = built["custom-auth-relay"].login("bob", "bob-pw")
    assert outcome["status"] == "SUCCEED", outcome
    assert http_peer.last("/auth").json["username"] == "bob"


@pytest.mark.parametrize("which", ["other_ca", "wrong_name"])
def test_endpoint_with_a_bad_certificate_is_refused(built, http_peer, bad_tls_peers, relay, which):
    bad = getattr(bad_tls_peers, which)
    relay.target = (peers.LOOPBACK, bad.port)
    try:
        outcome = built["custom-auth-relay"].login("alice", "alice-pw")
    finally:
        relay.target = (peers.LOOPBACK, http_peer.port)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_unavailable"]
    assert "CERTIFICATE_VERIFY_FAILED" in outcome["reason"], outcome
    assert bad.requests == []
    assert relay.connections[-1] == (peers.LOOPBACK, bad.port)


def test_endpoint_down_is_refused(built, http_peer):
    outcome = built["custom-auth-down"].login("alice", "alice-pw")
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_unavailable"]
    assert "Connection refused" in outcome["reason"], outcome
    assert http_peer.requests == []


# PBKDF2 hashes --------------------------------------------------------------------------------------

def test_hashes_role_run(hashes):
    script = hashes.script
    assert flag_lines(script) == {"SYNCHRONOUS": "False", "AUTH_NULL": "True", "RETAIN_PASSWORD": "True"}
    for digest in HASHES.values():
        found = lines_with(script, digest)
        assert len(found) == 1 and found[0].endswith(SECRET_MARKER), found


def test_hashes_right_password(hashes):
    log = Log(hashes.server)
    for user, password in (("svc-backup", "backup-pw-1"), ("svc-report", "report-pw-2"),
                           ("SVC-Backup", "backup-pw-1")):
        outcome = hashes.login(user, password)
        assert outcome["status"] == "SUCCEED", (user, outcome)
        assert outcome["reason"] == "null auth succeeded (PAS only)"
    text = log.new()
    assert "svc-backup authenticated (hashes)" in text
    assert "backup-pw-1" not in text and "report-pw-2" not in text


def test_hashes_wrong_password_and_unknown_user(hashes):
    for user, password in (("svc-backup", "report-pw-2"), ("svc-backup", "backup-pw-1 "),
                           ("svc-unknown", "backup-pw-1")):
        outcome = hashes.login(user, password)
        assert outcome["status"] == "FAIL", (user, password)
        assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_failed"]
        assert outcome["reason"] == "custom_auth: %s: wrong password or unknown user" % user


# PAS only, group mapping, device pinning and a TOTP challenge in one script -------------------------

def test_combined_one_script(combined):
    script = combined.script
    assert "# ovpnas.fleet.features: custom_auth, group_mapping, device_pinning, challenge\n" in script
    assert flag_lines(script) == {
        "SYNCHRONOUS": "False", "GROUP_SELECT": "True", "AUTH_NULL": "True", "RETAIN_PASSWORD": "True",
        "STATIC_CHALLENGE": repr("Enter your one-time code"), "STATIC_CHALLENGE_ECHO": "False",
    }
    commands = combined.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    for user, seed in SEEDS.items():
        assert user_props(combined.server, user)["pvt_totp_secret"] == seed


def test_combined_dynamic_round_trip_without_the_password(combined, http_peer):
    first = combined.login("alice", "alice-pw", *vpn(ALICE_LAPTOP, OFFICE_IP))
    question = challenge_of(first)
    assert question["user"] == "alice"
    assert question["text"] == "Enter your one-time code"
    assert len(http_peer.requests) == 1
    # the client answers with CRV1::<state>::<code> in place of the password
    outcome = answer(combined.server, "alice", question["state_id"], totp(SEEDS["alice"]),
                     *vpn(ALICE_LAPTOP, OFFICE_IP))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "admins"
    assert outcome.props["prop_autologin"] == "false"
    props = user_props(combined.server, "alice")
    assert props["pvt_hw_addr"] == ALICE_LAPTOP
    assert props["pvt_totp_secret_last_step"]
    # the endpoint was asked once, on the first login
    assert [r.json["username"] for r in http_peer.requests] == ["alice"]


def test_combined_static_response(combined, http_peer):
    outcome = combined.login("bob", "bob-pw", "--sr", totp(SEEDS["bob"]), *vpn(BOB_LAPTOP))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "users"
    assert user_props(combined.server, "bob")["pvt_hw_addr"] == BOB_LAPTOP
    assert len(http_peer.requests) == 1


def test_combined_wrong_password_is_refused_before_the_question(combined, http_peer):
    outcome = combined.login("bob", WRONG_PASSWORD, *vpn(BOB_LAPTOP))
    assert outcome["status"] == "FAIL"
    assert "challenge" not in outcome
    assert outcome["client_reason"] == MFA_MESSAGES["custom_auth_failed"]


def test_combined_unregistered_device_is_refused_before_the_question(combined, http_peer):
    outcome = combined.login("carol", "carol-pw", *vpn("02:00:00:00:00:99"))
    assert outcome["status"] == "FAIL"
    assert "challenge" not in outcome
    assert outcome["client_reason"] == MFA_MESSAGES["device_not_registered"]
    # carol's registered laptop gets the question
    question = challenge_of(combined.login("carol", "carol-pw", *vpn(CAROL_LAPTOP)))
    outcome = answer(combined.server, "carol", question["state_id"], totp(SEEDS["carol"]), *vpn(CAROL_LAPTOP))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "everyone"


def test_combined_wrong_code_then_the_right_one(combined, http_peer):
    http_peer.set_user("dave", "dave-pw", ["VPN-Users"])
    question = challenge_of(combined.login("dave", "dave-pw", "--web"))
    codes = {totp(SEEDS["dave"], n) for n in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in codes)
    retry = challenge_of(answer(combined.server, "dave", question["state_id"], wrong, "--web"))
    assert retry["text"] == MFA_MESSAGES["challenge_retry"] + " Enter your one-time code"
    # what custom authentication found survives the second question
    outcome = answer(combined.server, "dave", retry["state_id"], totp(SEEDS["dave"]), "--web")
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "users"
    # the answers are not passwords: the endpoint was asked once, for the first login
    assert [r.json["password"] for r in http_peer.requests] == ["dave-pw"]


# every script of this module -------------------------------------------------------------------

def test_scripts_compile_with_every_python(built, tmp_path):
    assert assert_compiled_everywhere(built, tmp_path)


def test_scripts_use_only_what_access_server_offers_on_crstate(built):
    assert assert_crstate_used_as_documented(built)
