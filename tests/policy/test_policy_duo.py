"""Duo two-factor, composed by the post_auth role and driven through authcli against the Duo stand-in.

The stand-in (peers.DuoStandIn, HTTPS with the test CA) verifies the signature of every request with
duo_client's own code and answers what each test scripts for a user. Four scenarios, one role run each:
- ask: factor ask, fail mode secure, the secret key inline, exempt users and groups;
- safe: factor push, fail mode safe, the secret key in a root-only file, requests through an HTTP proxy
  (CONNECT), the Duo prompt as static challenge in client profiles;
- down: the API host is a port where nothing listens, fail mode secure;
- combined: Duo, device pinning and LDAP group mapping (the real slapd) in one script.
"""

import os
import time

import peers
import pytest
from policy import ADMINS_DN, PYTHONS, Log, scenarios, user_props, vpn
from policy_mfa import (
    MFA_MESSAGES,
    SECRET_MARKER,
    ConnectProxy,
    answer,
    assert_compiled_everywhere,
    assert_crstate_used_as_documented,
    challenge_of,
    flag_lines,
    lines_with,
    local_users,
)

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_duo_api_host": "api-xxxxxxxx.duosecurity.com", "post_auth_duo_integration_key": "DIXXXXXXXXXXXXXXXXXX",
     "post_auth_duo_secret_key": "ssssssssssssssssssssssssssssssssssssssss"},
    {"post_auth_duo_api_host": "api-xxxxxxxx.duosecurity.com", "post_auth_duo_integration_key": "DIXXXXXXXXXXXXXXXXXX",
     "post_auth_duo_secret_key": "ssssssssssssssssssssssssssssssssssssssss", "post_auth_duo_factor": "ask"},
    {"post_auth_duo_api_host": "api-xxxxxxxx.duosecurity.com", "post_auth_duo_integration_key": "DIXXXXXXXXXXXXXXXXXX",
     "post_auth_duo_secret_key_file": "/etc/openvpn-as/duo.skey", "post_auth_duo_static_challenge": True,
     "post_auth_duo_proxy": "http://proxy.example.com:3128", "post_auth_duo_ca_file": "/etc/ssl/certs/duo-ca.pem",
     "post_auth_duo_fail_mode": "safe", "post_auth_duo_exempt_users": ["svc-backup"],
     "post_auth_duo_exempt_groups": ["break-glass"]},
]

PASSWORD = "duo-tests-pw"
OFFICE_IP = "198.51.100.20"
WRONG_SKEY = "0" * 40
ALICE_LAPTOP = "00:11:22:33:44:55"
BOB_LAPTOP = "00:11:22:33:44:66"
CAROL_LAPTOP = "00:11:22:33:44:77"


def duo_variables(standin, ca_file, **more):
    variables = {
        "post_auth_duo": True,
        "post_auth_duo_api_host": standin.host,
        "post_auth_duo_integration_key": standin.ikey,
        "post_auth_duo_secret_key": standin.skey,
        "post_auth_duo_ca_file": ca_file,
        "post_auth_duo_timeout": 1,
        "post_auth_duo_auth_timeout": 5,
        "post_auth_messages": MFA_MESSAGES,
        "post_auth_validate_interpreters": PYTHONS,
    }
    variables.update(more)
    return variables


@pytest.fixture(scope="module")
def proxy():
    running = ConnectProxy().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory, duo_session):
    path = str(tmp_path_factory.mktemp("duo-key") / "duo.skey")
    write_key(path, duo_session.skey)
    return path


def write_key(path, key):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory, duo_session, test_ca, slapd, proxy, key_file):
    """The four scenarios, their role runs side by side."""
    ca = test_ca.ca_file
    ask = duo_variables(duo_session, ca, post_auth_duo_factor="ask", post_auth_duo_exempt_users=["BreakGlass"],
                        post_auth_duo_exempt_groups=["Admins"])
    safe = duo_variables(duo_session, ca, post_auth_duo_secret_key="", post_auth_duo_secret_key_file=key_file,
                         post_auth_duo_fail_mode="safe", post_auth_duo_proxy=proxy.url,
                         post_auth_duo_static_challenge=True)
    down = duo_variables(duo_session, ca, post_auth_duo_api_host="127.0.0.1:%d" % peers.free_port())
    combined = duo_variables(
        duo_session, ca, post_auth_duo_factor="ask",
        post_auth_group_mapping=True, post_auth_group_mapping_sources=["ldap"],
        post_auth_group_mapping_rules=[{"name": "administrators", "ldap_groups": [ADMINS_DN], "group": "admins"},
                                       {"name": "users", "ldap_groups": ["vpn-users"], "group": "users"}],
        post_auth_group_mapping_default_group="staff",
        post_auth_device_pinning=True, post_auth_device_pinning_mode="auto",
    )
    return scenarios(tmp_path_factory, {
        "duo-ask": (ask, local_users(PASSWORD, "alice", "breakglass", "adele", adele={"conn_group": "Admins"})),
        "duo-safe": (safe, local_users(PASSWORD, "alice")),
        "duo-down": (down, local_users(PASSWORD, "alice")),
        "duo-combined": (combined, combined_prepare(slapd)),
    })


def combined_prepare(slapd):
    def prepare(server):
        slapd.configure(server)
        # bob's laptop is registered already
        server.sacli("--user", "bob", "--key", "pvt_hw_addr", "--value", BOB_LAPTOP, "UserPropPut")
    return prepare


@pytest.fixture(scope="module")
def ask(built):
    return built["duo-ask"]


@pytest.fixture(scope="module")
def safe(built):
    return built["duo-safe"]


def signed_properly(standin, requests):
    """Every request carried a good signature (sig v5, HMAC-SHA512, the API host as host, a fresh date)."""
    assert requests
    for request in requests:
        assert (request.verified, request.sig_version, request.digest, request.date_ok) == (True, 5, "sha512", True), \
            request
        assert request.signed_host == standin.host
    return True


def paths(standin):
    return [request.path for request in standin.requests]


# the ask scenario: the role run ------------------------------------------------------------------

def test_ask_role_run(ask, duo):
    script = ask.script
    commands = ask.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    assert "# ovpnas.fleet.features: duo\n" in script
    assert "\ndef post_auth_cr(authcred, attributes, authret, info, crstate):\n" in script
    assert "\ndef post_auth(" not in script
    # network calls: a worker thread; no static challenge in the profiles
    assert flag_lines(script) == {"SYNCHRONOUS": "False"}
    # the secret key only in SECRETS, on a marked line
    key_lines = lines_with(script, duo.skey)
    assert len(key_lines) == 1 and key_lines[0].endswith(SECRET_MARKER), key_lines
    assert duo.requests == []


# passcodes ----------------------------------------------------------------------------------------

def test_passcode_in_the_static_response(ask, duo):
    duo.script("alice", passcodes="123456")
    # the user types the name in another case: Duo hears the name Access Server normalized
    outcome = ask.login("ALICE", PASSWORD, "--sr", "123456", "--client-ip", OFFICE_IP)
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome["user"] == "alice"
    assert paths(duo) == ["/auth/v2/preauth", "/auth/v2/auth"]
    preauth, auth = duo.requests
    assert preauth.params == {"username": "alice", "ipaddr": OFFICE_IP}
    assert auth.params == {"username": "alice", "ipaddr": OFFICE_IP, "factor": "passcode", "passcode": "123456"}
    assert signed_properly(duo, duo.requests)


def test_passcode_through_the_dynamic_challenge(ask, duo):
    duo.script("alice", passcodes="123456")
    log = Log(ask.server)
    first = ask.login("alice", PASSWORD, "--client-ip", OFFICE_IP)
    question = challenge_of(first)
    assert question["flags"] == "R,E"
    assert question["user"] == "alice"
    assert question["text"] == MFA_MESSAGES["duo_prompt"]
    # asked only preauth: nothing was sent to the user's phone
    assert paths(duo) == ["/auth/v2/preauth"]

    second = answer(ask.server, "alice", question["state_id"], "123456", "--client-ip", OFFICE_IP)
    assert second["status"] == "SUCCEED", second
    assert second["reason"] == "local auth succeeded"
    assert paths(duo) == ["/auth/v2/preauth", "/auth/v2/auth"]
    assert duo.requests[1].params == {"username": "alice", "ipaddr": OFFICE_IP, "factor": "passcode",
                                      "passcode": "123456"}
    assert signed_properly(duo, duo.requests)
    text = log.new()
    assert "asking alice a question (duo)" in text and "Duo allowed alice (passcode)" in text
    assert PASSWORD not in text

    # the answer was used: the same state does not let anybody in again
    again = answer(ask.server, "alice", question["state_id"], "123456")
    assert again["status"] == "FAIL"
    assert len(duo.requests) == 2


def test_wrong_passcode_is_refused_with_duos_message(ask, duo):
    duo.script("alice", passcodes="123456")
    static = ask.login("alice", PASSWORD, "--sr", "654321")
    assert static["status"] == "FAIL"
    assert static["client_reason"] == "Incorrect passcode. Please try again."
    assert static["reason"] == "duo: Duo denied alice (passcode): deny"

    question = challenge_of(ask.login("alice", PASSWORD))
    dynamic = answer(ask.server, "alice", question["state_id"], "111111")
    assert dynamic["status"] == "FAIL"
    assert dynamic["client_reason"] == "Incorrect passcode. Please try again."
    assert [r.params.get("passcode") for r in duo.requests if r.path == "/auth/v2/auth"] == ["654321", "111111"]


def test_an_answer_that_is_neither_passcode_nor_factor(ask, duo):
    duo.script("alice", passcodes="123456")
    question = challenge_of(ask.login("alice", PASSWORD))
    for word in ("12345", "letmein"):
        outcome = answer(ask.server, "alice", question["state_id"], word)
        assert outcome["status"] == "FAIL"
        assert outcome["client_reason"] == MFA_MESSAGES["duo_invalid_answer"]
        assert outcome["reason"] == "duo: alice answered neither a passcode nor a factor"
        question = challenge_of(ask.login("alice", PASSWORD))
    assert "/auth/v2/auth" not in paths(duo)


# push, phone, sms --------------------------------------------------------------------------------

@pytest.mark.parametrize("word,factor", [("push", "push"), ("Phone", "phone")])
def test_push_and_phone_answers(ask, duo, word, factor):
    duo.script("alice", push="allow", phone="allow")
    question = challenge_of(ask.login("alice", PASSWORD))
    outcome = answer(ask.server, "alice", question["state_id"], word, "--client-ip", OFFICE_IP)
    assert outcome["status"] == "SUCCEED", outcome
    auth = duo.last("/auth/v2/auth")
    assert auth.params == {"username": "alice", "ipaddr": OFFICE_IP, "factor": factor, "device": "auto"}
    assert signed_properly(duo, duo.requests)


def test_denied_push_and_phone_pass_duos_message(ask, duo):
    duo.script("alice", push="deny", phone="timeout")
    question = challenge_of(ask.login("alice", PASSWORD))
    pushed = answer(ask.server, "alice", question["state_id"], "push")
    assert pushed["status"] == "FAIL"
    assert pushed["client_reason"] == "Login request denied."
    assert pushed["reason"] == "duo: Duo denied alice (push): deny"
    question = challenge_of(ask.login("alice", PASSWORD))
    called = answer(ask.server, "alice", question["state_id"], "phone")
    assert called["status"] == "FAIL"
    assert called["client_reason"] == "Login timed out."
    assert called["reason"] == "duo: Duo denied alice (phone): timeout"


def test_sms_sends_passcodes_then_one_of_them_works(ask, duo):
    duo.script("alice", sms="sent", sms_passcodes="777001")
    # before the SMS went out, its passcode is worth nothing
    early = ask.login("alice", PASSWORD, "--sr", "777001")
    assert early["status"] == "FAIL"
    assert early["client_reason"] == "Incorrect passcode. Please try again."

    question = challenge_of(ask.login("alice", PASSWORD))
    sent = answer(ask.server, "alice", question["state_id"], "sms")
    second = challenge_of(sent)
    assert second["flags"] == "R,E"
    assert second["text"] == "New SMS passcodes sent."
    assert second["state_id"] != question["state_id"]
    assert duo.last("/auth/v2/auth").params == {"username": "alice", "ipaddr": "127.0.0.1", "factor": "sms",
                                                "device": "auto"}

    done = answer(ask.server, "alice", second["state_id"], "777001")
    assert done["status"] == "SUCCEED", done
    assert duo.last("/auth/v2/auth").params["factor"] == "passcode"
    assert duo.last("/auth/v2/auth").params["passcode"] == "777001"
    # the SMS round trip did not call preauth again
    assert paths(duo).count("/auth/v2/preauth") == 2
    assert signed_properly(duo, duo.requests)


# preauth results ------------------------------------------------------------------------------------

def test_preauth_allow_lets_the_user_in_without_a_question(ask, duo):
    duo.script("alice", preauth="allow")
    log = Log(ask.server)
    outcome = ask.login("alice", PASSWORD)
    assert outcome["status"] == "SUCCEED", outcome
    assert "challenge" not in outcome
    assert paths(duo) == ["/auth/v2/preauth"]
    assert "Duo lets alice in without a second factor (bypass)" in log.new()


def test_preauth_deny_passes_duos_message(ask, duo):
    duo.script("alice", preauth="deny", status_msg="Your Duo account is locked out")
    for options in ([], ["--sr", "123456"], ["--web"]):
        outcome = ask.login("alice", PASSWORD, *options)
        assert outcome["status"] == "FAIL", options
        assert "challenge" not in outcome
        assert outcome["client_reason"] == "Your Duo account is locked out"
        assert outcome["reason"] == "duo: Duo preauth for alice: deny"
    assert set(paths(duo)) == {"/auth/v2/preauth"}


def test_preauth_enroll_sends_the_user_to_the_portal(ask, duo):
    duo.script("alice", preauth="enroll", enroll_portal_url="https://127.0.0.1/enroll?t=abc")
    outcome = ask.login("alice", PASSWORD)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == "MSG enroll in Duo first: https://127.0.0.1/enroll?t=abc"
    assert outcome["reason"] == "duo: alice is not enrolled in Duo"
    assert paths(duo) == ["/auth/v2/preauth"]


# Duo cannot be reached, or answers with an error --------------------------------------------------

@pytest.mark.parametrize("behaviour", ["timeout", "error500", "garbage"])
def test_unreachable_duo_refuses_in_secure_mode(ask, duo, behaviour):
    duo.script("alice", passcodes="123456")
    duo.behave(behaviour, delay=6)
    started = time.monotonic()
    outcome = ask.login("alice", PASSWORD, "--sr", "123456")
    elapsed = time.monotonic() - started
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["duo_unavailable"]
    assert outcome["reason"].startswith("duo: Duo unreachable: "), outcome
    assert paths(duo) == ["/auth/v2/preauth"]
    # post_auth_duo_timeout is 1 second: the script did not wait for the 6 seconds of the stand-in
    assert elapsed < 4.5, elapsed


def test_unreachable_duo_host_refuses_in_secure_mode(built, duo):
    down = built["duo-down"]
    outcome = down.login("alice", PASSWORD, "--sr", "123456")
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["duo_unavailable"]
    assert outcome["reason"].startswith("duo: Duo unreachable: URLError"), outcome
    assert "Connection refused" in outcome["reason"]
    assert duo.requests == []


# who is not asked ------------------------------------------------------------------------------------

def test_exempt_users_and_groups_are_not_asked(ask, duo):
    for user in ("breakglass", "BreakGlass", "adele"):
        outcome = ask.login(user, PASSWORD)
        assert outcome["status"] == "SUCCEED", (user, outcome)
    assert duo.requests == []
    # the same server asks everybody else
    assert ask.login("alice", PASSWORD)["status"] == "FAIL"
    assert paths(duo) == ["/auth/v2/preauth"]


@pytest.mark.parametrize("method", ["session", "autologin"])
def test_sessions_and_autologin_are_not_asked(ask, duo, method):
    outcome = ask.login("alice", None, "--auth-method", method)
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome["reason"] == "%s auth succeeded" % method
    assert duo.requests == []


def test_web_login_is_asked_with_the_dynamic_challenge(ask, duo):
    duo.script("alice", passcodes="123456")
    question = challenge_of(ask.login("alice", PASSWORD, "--web"))
    assert question["text"] == MFA_MESSAGES["duo_prompt"]
    assert paths(duo) == ["/auth/v2/preauth"]
    outcome = answer(ask.server, "alice", question["state_id"], "123456", "--web")
    assert outcome["status"] == "SUCCEED", outcome
    assert duo.last().params["factor"] == "passcode"


# the safe scenario: key file, proxy, fail mode safe ---------------------------------------------------

def test_key_file_keeps_the_key_out_of_the_script(safe, duo, key_file):
    script = safe.script
    assert duo.skey not in script
    assert SECRET_MARKER not in script
    # no inline secret: the script holds no SECRETS at all, and reads the key from the file
    assert "\nSECRETS = " not in script
    assert "\nSECRET_FILES = {}\n" in script
    assert "'skey': {'file': %r}" % key_file in script
    assert os.stat(key_file).st_mode & 0o777 == 0o600


def test_static_challenge_puts_the_duo_prompt_in_profiles(safe, duo):
    assert flag_lines(safe.script) == {"SYNCHRONOUS": "False", "STATIC_CHALLENGE": repr(MFA_MESSAGES["duo_prompt"]),
                                       "STATIC_CHALLENGE_ECHO": "True"}
    # the static response may name a factor too
    duo.script("alice", phone="allow")
    outcome = safe.login("alice", PASSWORD, "--sr", "phone")
    assert outcome["status"] == "SUCCEED", outcome
    assert duo.last().params == {"username": "alice", "ipaddr": "127.0.0.1", "factor": "phone", "device": "auto"}


def test_missing_key_file_fails_closed_even_in_safe_mode(safe, duo, key_file):
    duo.script("alice", push="allow")
    os.rename(key_file, key_file + ".away")
    try:
        outcome = safe.login("alice", PASSWORD)
    finally:
        os.rename(key_file + ".away", key_file)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["internal_error"]
    assert outcome["reason"].startswith("post_auth error in duo: FileNotFoundError: "), outcome
    assert duo.requests == []


def test_push_without_a_question_through_the_proxy(safe, duo, proxy):
    duo.script("alice", push="allow")
    del proxy.requests[:]
    outcome = safe.login("alice", PASSWORD, "--client-ip", OFFICE_IP)
    assert outcome["status"] == "SUCCEED", outcome
    assert "challenge" not in outcome
    assert [(r.path, r.params) for r in duo.requests] == [
        ("/auth/v2/preauth", {"username": "alice", "ipaddr": OFFICE_IP}),
        ("/auth/v2/auth", {"username": "alice", "ipaddr": OFFICE_IP, "factor": "push", "device": "auto"}),
    ]
    assert signed_properly(duo, duo.requests)
    # both requests went through the proxy, to the API host
    assert proxy.requests == ["CONNECT %s HTTP/1.0" % duo.host] * 2


def test_denied_push_is_refused_in_safe_mode_too(safe, duo):
    duo.script("alice", push="deny")
    outcome = safe.login("alice", PASSWORD)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == "Login request denied."
    duo.script("alice", push="timeout")
    outcome = safe.login("alice", PASSWORD)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == "Login timed out."


def test_static_passcode_in_push_mode(safe, duo):
    duo.script("alice", passcodes="246810")
    outcome = safe.login("alice", PASSWORD, "--sr", "246810")
    assert outcome["status"] == "SUCCEED", outcome
    assert duo.last().params["factor"] == "passcode"


@pytest.mark.parametrize("behaviour", ["timeout", "error500", "garbage", "proxy refuses"])
def test_unreachable_duo_lets_in_and_logs_in_safe_mode(safe, duo, proxy, behaviour):
    duo.script("alice", push="deny")
    log = Log(safe.server)
    if behaviour == "proxy refuses":
        proxy.refuse = True
    else:
        duo.behave(behaviour, delay=6)
    try:
        outcome = safe.login("alice", PASSWORD)
    finally:
        proxy.refuse = False
    assert outcome["status"] == "SUCCEED", outcome
    assert "Duo unreachable (" in log.new() and "): letting alice in, fail_mode is safe" in log.new()
    assert "/auth/v2/auth" not in paths(duo)


def test_an_error_from_duo_refuses_even_in_safe_mode(safe, duo, key_file):
    duo.script("alice", push="allow")
    write_key(key_file, WRONG_SKEY)
    try:
        outcome = safe.login("alice", PASSWORD)
    finally:
        write_key(key_file, duo.skey)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["duo_unavailable"]
    assert outcome["reason"] == ("duo: Duo error: /auth/v2/preauth: HTTP 401, code 40103: "
                                 "Invalid signature in request credentials")
    assert [(r.verified, r.reason, r.status) for r in duo.requests] == [(False, "bad signature", 401)]
    assert WRONG_SKEY not in outcome["reason"]
    # with the right key again, the same script works
    assert safe.login("alice", PASSWORD)["status"] == "SUCCEED"


# Duo, device pinning and LDAP group mapping in one script ---------------------------------------------

@pytest.fixture(scope="module")
def combined(built):
    return built["duo-combined"]


def test_combined_one_script_one_start(combined, duo):
    commands = combined.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    assert "# ovpnas.fleet.features: group_mapping, device_pinning, duo\n" in combined.script
    assert flag_lines(combined.script) == {"SYNCHRONOUS": "False", "GROUP_SELECT": "True"}


def test_combined_push_round_trip(combined, duo):
    duo.script("alice", push="allow")
    question = challenge_of(combined.login("alice", "alice-pw", *vpn(ALICE_LAPTOP, OFFICE_IP)))
    assert question["user"] == "alice"
    # nothing registered while the question is open
    assert "pvt_hw_addr" not in user_props(combined.server, "alice")
    outcome = answer(combined.server, "alice", question["state_id"], "push", *vpn(ALICE_LAPTOP, OFFICE_IP))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "admins"
    assert user_props(combined.server, "alice")["pvt_hw_addr"] == ALICE_LAPTOP
    assert [(r.path, r.params.get("factor")) for r in duo.requests] == [
        ("/auth/v2/preauth", None), ("/auth/v2/auth", "push"),
    ]
    assert {r.params["username"] for r in duo.requests} == {"alice"}
    assert {r.params["ipaddr"] for r in duo.requests} == {OFFICE_IP}
    assert signed_properly(duo, duo.requests)


def test_combined_passcode_round_trip(combined, duo):
    duo.script("bob", passcodes="135790")
    question = challenge_of(combined.login("bob", "bob-pw", *vpn(BOB_LAPTOP)))
    outcome = answer(combined.server, "bob", question["state_id"], "135790", *vpn(BOB_LAPTOP))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome.group == "users"
    assert user_props(combined.server, "bob")["pvt_hw_addr"] == BOB_LAPTOP
    assert "pvt_hw_addr2" not in user_props(combined.server, "bob")
    assert duo.last().params == {"username": "bob", "ipaddr": "127.0.0.1", "factor": "passcode",
                                 "passcode": "135790"}
    # the static response works as well, with the registered device
    static = combined.login("bob", "bob-pw", "--sr", "135790", *vpn(BOB_LAPTOP))
    assert static["status"] == "SUCCEED", static
    assert signed_properly(duo, duo.requests)


def test_combined_duo_hears_the_directory_spelling(combined, duo):
    duo.script("Dave", passcodes="864200")
    outcome = combined.login("DAVE", "dave-pw", "--sr", "864200", *vpn("00:11:22:33:44:88"))
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome["user"] == "Dave"
    assert outcome.group == "staff"
    assert {r.params["username"] for r in duo.requests} == {"Dave"}


def test_combined_unreachable_duo_refuses_and_registers_nothing(combined, duo):
    duo.script("carol", passcodes="112233")
    duo.behave("error500")
    outcome = combined.login("carol", "carol-pw", "--sr", "112233", *vpn(CAROL_LAPTOP))
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["duo_unavailable"]
    assert outcome["reason"].startswith("duo: Duo unreachable: HTTP 500"), outcome
    assert "pvt_hw_addr" not in user_props(combined.server, "carol")
    duo.behave(None)
    again = combined.login("carol", "carol-pw", "--sr", "112233", *vpn(CAROL_LAPTOP))
    assert again["status"] == "SUCCEED", again
    assert again.group == "staff"
    assert user_props(combined.server, "carol")["pvt_hw_addr"] == CAROL_LAPTOP


def test_combined_device_pinning_refuses_before_duo_is_asked(combined, duo):
    duo.script("bob", push="allow")
    outcome = combined.login("bob", "bob-pw", *vpn("02:00:00:00:00:99"))
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["device_not_registered"]
    assert outcome["reason"].startswith("device_pinning: ")
    assert duo.requests == []


# every script of this module -------------------------------------------------------------------

def test_scripts_compile_with_every_python(built, tmp_path):
    assert assert_compiled_everywhere(built, tmp_path)


def test_scripts_use_only_what_access_server_offers_on_crstate(built):
    assert assert_crstate_used_as_documented(built)
