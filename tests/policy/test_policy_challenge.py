"""The custom challenge/response, composed by the post_auth role and driven through authcli.

Five scenarios, one role run each:
- totp: the question in client profiles (static challenge), TOTP codes (RFC 6238, computed here),
  a window of one period, three attempts, re-authentications not asked;
- strict: no static challenge, echo, 8 digits with SHA-256, no window, one attempt, re-authentications
  asked, seeds in a property of our own;
- verify: an HTTPS verification endpoint (the HTTP peer), the bearer token inline;
- relay: the same endpoint behind a TCP relay that reaches the good peer or one whose certificate the
  test CA does not vouch for, the bearer token in a root-only file;
- down: the endpoint is a port where nothing listens.
Each TOTP test uses its own users: a code is good once per user, so tests must not share them.
"""

import base64
import hashlib
import os
import time

import peers
import pytest
from policy import PYTHONS, Log, scenarios, user_props
from policy_mfa import (
    MFA_MESSAGES,
    Relay,
    answer,
    assert_compiled_everywhere,
    assert_crstate_used_as_documented,
    challenge_of,
    current_step,
    flag_lines,
    fresh_period,
    lines_with,
    local_users,
    random_token,
    totp,
)

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_challenge_verify": "totp", "post_auth_challenge_totp_secrets": {"alice": "JBSWY3DPEHPK3PXP"}},
    {"post_auth_challenge_verify": "totp", "post_auth_challenge_static": True,
     "post_auth_challenge_totp_secrets": {"alice": "JBSWY3DPEHPK3PXP"}},
    {"post_auth_challenge_verify": "http", "post_auth_challenge_url": "https://otp.example.com/check"},
    {"post_auth_challenge_verify": "totp", "post_auth_challenge_static": False, "post_auth_challenge_echo": True,
     "post_auth_challenge_totp_algorithm": "sha256", "post_auth_challenge_totp_digits": 8,
     "post_auth_challenge_totp_property": "pvt_otp_seed", "post_auth_challenge_max_attempts": 5,
     "post_auth_challenge_exempt_users": ["svc-backup"], "post_auth_challenge_exempt_groups": ["break-glass"]},
    {"post_auth_challenge_verify": "http", "post_auth_challenge_url": "https://otp.example.com/check",
     "post_auth_challenge_token_file": "/etc/openvpn-as/otp.token", "post_auth_challenge_skip_reauth": False,
     "post_auth_challenge_ca_file": "/etc/ssl/certs/otp-ca.pem"},
]

PASSWORD = "challenge-tests-pw"
TEXT = "Enter the code of your authenticator"
STRICT_TEXT = "Code please (8 digits)"
OFFICE_IP = "198.51.100.30"
RETRY = MFA_MESSAGES["challenge_retry"] + " " + TEXT


def seed_of(user):
    return base64.b32encode(hashlib.sha1(("seed of %s" % user).encode()).digest()).decode("ascii")


TOTP_USERS = ["tess", "walt", "dora", "fred", "rita", "ray", "rosa", "sam", "rob", "ivan"]
SEEDS = {user: seed_of(user) for user in TOTP_USERS}
# inventory may spell a seed in lower case, in groups, with padding: the role stores it normalized
SPELLED = dict(SEEDS, tess=" ".join(SEEDS["tess"][i:i + 4] for i in range(0, 32, 4)).lower() + "====")
STRICT_USERS = ["ursula", "victor"]
STRICT_SEEDS = {user: seed_of(user) for user in STRICT_USERS}

INLINE_TOKEN = random_token("challenge-inline")
FILE_TOKEN = random_token("challenge-file")


def common(**more):
    variables = {"post_auth_challenge": True, "post_auth_messages": MFA_MESSAGES,
                 "post_auth_validate_interpreters": PYTHONS}
    variables.update(more)
    return variables


@pytest.fixture(scope="module")
def relay(http_peer_session):
    running = Relay(target=(peers.LOOPBACK, http_peer_session.port)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("challenge-token") / "token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(FILE_TOKEN + "\n")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, http_peer_session, test_ca, relay, token_file):
    """The five scenarios, their role runs side by side."""
    totp_settings = common(
        post_auth_challenge_text=TEXT,
        post_auth_challenge_totp_secrets=SPELLED,
        post_auth_challenge_exempt_users=["SVC-Monitor"],
        post_auth_challenge_exempt_groups=["Kiosk"],
    )
    strict = common(
        post_auth_challenge_text=STRICT_TEXT,
        post_auth_challenge_static=False,
        post_auth_challenge_echo=True,
        post_auth_challenge_skip_reauth=False,
        post_auth_challenge_max_attempts=1,
        post_auth_challenge_totp_digits=8,
        post_auth_challenge_totp_algorithm="sha256",
        post_auth_challenge_totp_window=0,
        post_auth_challenge_totp_property="pvt_otp_seed",
        post_auth_challenge_totp_secrets=STRICT_SEEDS,
    )
    endpoint = dict(post_auth_challenge_verify="http", post_auth_challenge_ca_file=test_ca.ca_file,
                    post_auth_challenge_timeout=1, post_auth_challenge_text=TEXT)
    verify = common(post_auth_challenge_url=http_peer_session.verify_url, post_auth_challenge_token=INLINE_TOKEN,
                    **endpoint)
    relayed = common(post_auth_challenge_url=relay.url_for("/verify"), post_auth_challenge_token_file=token_file,
                     **endpoint)
    down = common(post_auth_challenge_url=peers.down_url("/verify"), **endpoint)
    return scenarios(tmp_path_factory, {
        "challenge-totp": (totp_settings, local_users(PASSWORD, *TOTP_USERS, "nora", "svc-monitor", "sid", "kim",
                                                      kim={"conn_group": "kiosk"})),
        "challenge-strict": (strict, local_users(PASSWORD, *STRICT_USERS)),
        "challenge-verify": (verify, local_users(PASSWORD, "alice", "bob")),
        "challenge-relay": (relayed, local_users(PASSWORD, "alice")),
        "challenge-down": (down, local_users(PASSWORD, "alice")),
    })


@pytest.fixture(scope="module")
def sc(built):
    return built["challenge-totp"]


@pytest.fixture(scope="module")
def strict(built):
    return built["challenge-strict"]


@pytest.fixture(scope="module")
def verify(built):
    return built["challenge-verify"]


def code(user, offset=0):
    return totp(SEEDS[user], offset)


def last_step(server, user, prop="pvt_totp_secret"):
    return user_props(server, user).get(prop + "_last_step")


def wrong_code(user, digits=6, **options):
    """A code of the right shape that is not valid now (nor one period around now)."""
    valid = {totp(SEEDS.get(user) or STRICT_SEEDS[user], n, digits=digits, **options) for n in (-1, 0, 1)}
    candidates = ("0" * digits, "1" * digits, "2" * digits)
    return next(candidate for candidate in candidates if candidate not in valid)


# our RFC 6238 codes are right --------------------------------------------------------------------

@pytest.mark.parametrize("algorithm,key,expected", [
    ("sha1", b"12345678901234567890", "94287082"),
    ("sha256", b"12345678901234567890123456789012", "46119246"),
    ("sha512", b"1234567890123456789012345678901234567890123456789012345678901234", "90693936"),
])
def test_totp_helper_matches_rfc_6238(algorithm, key, expected):
    seed = base64.b32encode(key).decode("ascii")
    assert totp(seed, digits=8, algorithm=algorithm, at=59) == expected


# the role run ---------------------------------------------------------------------------------------

def test_role_run_pushes_the_seeds_and_sets_the_static_challenge(sc):
    script = sc.script
    assert "# ovpnas.fleet.features: challenge\n" in script
    assert "\ndef post_auth_cr(authcred, attributes, authret, info, crstate):\n" in script
    assert flag_lines(script) == {"SYNCHRONOUS": "True", "STATIC_CHALLENGE": repr(TEXT),
                                  "STATIC_CHALLENGE_ECHO": "False"}
    props = sc.server.userprops()
    for user, seed in SEEDS.items():
        assert props[user]["pvt_totp_secret"] == seed, user
        # seeds are user properties, never part of the script
        assert seed not in script and seed.lower() not in script
    assert "pvt_totp_secret" not in props["nora"]
    commands = sc.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    assert commands.count("UserPropPut") == len(SEEDS), commands


# answers that are right ----------------------------------------------------------------------------

def test_static_answer(sc):
    fresh_period(margin=3)
    step = current_step()
    outcome = sc.login("tess", PASSWORD, "--sr", code("tess"), "--client-ip", OFFICE_IP)
    assert outcome["status"] == "SUCCEED", outcome
    assert "challenge" not in outcome
    assert last_step(sc.server, "tess") == str(step)


def test_web_login_gets_a_dynamic_challenge(sc):
    log = Log(sc.server)
    first = sc.login("walt", PASSWORD, "--web")
    question = challenge_of(first)
    assert question == {"flags": "R", "state_id": question["state_id"], "user": "walt", "text": TEXT}
    assert last_step(sc.server, "walt") is None
    outcome = answer(sc.server, "walt", question["state_id"], code("walt"), "--web")
    assert outcome["status"] == "SUCCEED", outcome
    assert outcome["reason"] == "local auth succeeded"
    assert last_step(sc.server, "walt") is not None
    assert "asking walt a question (challenge)" in log.new()


def test_vpn_login_without_a_static_response_is_asked_too(sc):
    question = challenge_of(sc.login("ivan", PASSWORD))
    assert question["text"] == TEXT
    outcome = answer(sc.server, "ivan", question["state_id"], " %s " % code("ivan"))
    assert outcome["status"] == "SUCCEED", outcome


def test_clock_drift_inside_the_window(sc):
    fresh_period(margin=5)
    step = current_step()
    outcome = sc.login("dora", PASSWORD, "--sr", code("dora", -1))
    assert outcome["status"] == "SUCCEED", outcome
    assert last_step(sc.server, "dora") == str(step - 1)
    # the code of the next period is inside the window too
    ahead = sc.login("dora", PASSWORD, "--sr", code("dora", +1))
    assert ahead["status"] == "SUCCEED", ahead
    assert last_step(sc.server, "dora") == str(step + 1)


def test_clock_drift_outside_the_window_is_refused(sc):
    for offset in (-3, 3):
        outcome = sc.login("fred", PASSWORD, "--sr", code("fred", offset))
        assert outcome["status"] == "FAIL", offset
        assert outcome["client_reason"] == MFA_MESSAGES["challenge_wrong"]
        assert outcome["reason"] == "challenge: wrong answer from fred (attempt 1)"
    assert last_step(sc.server, "fred") is None


# a code is good once ----------------------------------------------------------------------------------

def test_the_same_code_twice_is_refused(sc):
    fresh_period(margin=5)
    step = current_step()
    used = code("rita")
    assert sc.login("rita", PASSWORD, "--sr", used)["status"] == "SUCCEED"
    assert last_step(sc.server, "rita") == str(step)
    again = sc.login("rita", PASSWORD, "--sr", used)
    assert again["status"] == "FAIL"
    assert again["client_reason"] == MFA_MESSAGES["challenge_wrong"]
    # through the dynamic challenge as well
    question = challenge_of(sc.login("rita", PASSWORD, "--web"))
    replayed = answer(sc.server, "rita", question["state_id"], used, "--web")
    assert replayed["status"] == "FAIL" and "challenge" in replayed
    # an older code is refused after a newer one, the next one is good
    older = sc.login("rita", PASSWORD, "--sr", code("rita", -1))
    assert older["status"] == "FAIL"
    assert sc.login("rita", PASSWORD, "--sr", code("rita", +1))["status"] == "SUCCEED"
    assert last_step(sc.server, "rita") == str(step + 1)


# wrong answers -----------------------------------------------------------------------------------------

def test_wrong_answers_are_asked_again_until_max_attempts(sc):
    wrong = wrong_code("ray")
    question = challenge_of(sc.login("ray", PASSWORD, "--web"))
    seen = {question["state_id"]}
    for attempt in (1, 2):
        retry = challenge_of(answer(sc.server, "ray", question["state_id"], wrong, "--web"))
        assert retry["text"] == RETRY, attempt
        assert retry["flags"] == "R"
        assert retry["state_id"] not in seen
        seen.add(retry["state_id"])
        question = retry
    refused = answer(sc.server, "ray", question["state_id"], wrong, "--web")
    assert refused["status"] == "FAIL"
    assert "challenge" not in refused
    assert refused["client_reason"] == MFA_MESSAGES["challenge_wrong"]
    assert refused["reason"] == "challenge: wrong answer from ray (attempt 3)"
    # a new login starts over, and the right code works
    question = challenge_of(sc.login("ray", PASSWORD, "--web"))
    assert question["text"] == TEXT
    assert answer(sc.server, "ray", question["state_id"], code("ray"), "--web")["status"] == "SUCCEED"


def test_right_code_at_the_second_attempt(sc):
    question = challenge_of(sc.login("rosa", PASSWORD))
    for wrong in ("abcdef", "1234567"):
        question = challenge_of(answer(sc.server, "rosa", question["state_id"], wrong))
        assert question["text"] == RETRY
    # two wrong answers, the third is right: max_attempts is 3
    outcome = answer(sc.server, "rosa", question["state_id"], code("rosa"))
    assert outcome["status"] == "SUCCEED", outcome


def test_wrong_static_answer_is_refused_at_once(sc):
    outcome = sc.login("sam", PASSWORD, "--sr", wrong_code("sam"))
    assert outcome["status"] == "FAIL"
    assert "challenge" not in outcome
    assert outcome["client_reason"] == MFA_MESSAGES["challenge_wrong"]
    assert outcome["reason"] == "challenge: wrong answer from sam (attempt 1)"


def test_user_without_a_seed_is_refused(sc):
    static = sc.login("nora", PASSWORD, "--sr", "123456")
    assert static["status"] == "FAIL"
    assert static["client_reason"] == MFA_MESSAGES["challenge_no_secret"]
    assert static["reason"] == "challenge: nora has no seed in pvt_totp_secret"
    question = challenge_of(sc.login("nora", PASSWORD, "--web"))
    dynamic = answer(sc.server, "nora", question["state_id"], "123456", "--web")
    assert dynamic["status"] == "FAIL"
    assert dynamic["client_reason"] == MFA_MESSAGES["challenge_no_secret"]


# who is not asked --------------------------------------------------------------------------------------

def test_reauthentication_is_not_asked(sc):
    outcome = sc.login("rob", PASSWORD, "--reauth")
    assert outcome["status"] == "SUCCEED", outcome
    assert last_step(sc.server, "rob") is None
    # the first authentication of the session is
    challenge_of(sc.login("rob", PASSWORD))


def test_exempt_users_sessions_and_autologin_are_not_asked(sc):
    assert sc.login("svc-monitor", PASSWORD)["status"] == "SUCCEED"
    # kim's group is exempt: no seed needed, no question
    kim = sc.login("kim", PASSWORD)
    assert kim["status"] == "SUCCEED", kim
    assert kim.group == "kiosk"
    for method in ("session", "autologin"):
        outcome = sc.login("sid", None, "--auth-method", method)
        assert outcome["status"] == "SUCCEED", (method, outcome)
    challenge_of(sc.login("sid", PASSWORD))


# the strict scenario ---------------------------------------------------------------------------------

def strict_code(user, offset=0):
    return totp(STRICT_SEEDS[user], offset, digits=8, algorithm="sha256")


def test_strict_role_run(strict):
    script = strict.script
    # no static challenge: the profiles carry no question
    assert flag_lines(script) == {"SYNCHRONOUS": "True"}
    for user, seed in STRICT_SEEDS.items():
        assert user_props(strict.server, user)["pvt_otp_seed"] == seed
        assert "pvt_totp_secret" not in user_props(strict.server, user)
        assert lines_with(script, seed) == []


def test_reauthentication_is_asked_when_skip_reauth_is_false(strict):
    fresh_period(margin=3)
    step = current_step()
    question = challenge_of(strict.login("ursula", PASSWORD, "--reauth"))
    assert question["flags"] == "R,E"
    assert question["text"] == STRICT_TEXT
    outcome = answer(strict.server, "ursula", question["state_id"], strict_code("ursula"), "--reauth")
    assert outcome["status"] == "SUCCEED", outcome
    assert last_step(strict.server, "ursula", "pvt_otp_seed") == str(step)


def test_no_window_and_one_attempt(strict):
    fresh_period(margin=5)
    question = challenge_of(strict.login("victor", PASSWORD))
    # the code of the previous period is outside a window of 0, and there is no second attempt
    refused = answer(strict.server, "victor", question["state_id"], strict_code("victor", -1))
    assert refused["status"] == "FAIL"
    assert "challenge" not in refused
    assert refused["reason"] == "challenge: wrong answer from victor (attempt 1)"
    # a 6-digit code is not an 8-digit one
    question = challenge_of(strict.login("victor", PASSWORD))
    six = totp(STRICT_SEEDS["victor"], algorithm="sha256")
    assert answer(strict.server, "victor", question["state_id"], six)["status"] == "FAIL"
    question = challenge_of(strict.login("victor", PASSWORD))
    assert answer(strict.server, "victor", question["state_id"], strict_code("victor"))["status"] == "SUCCEED"


# an HTTPS verification endpoint ------------------------------------------------------------------------

def test_endpoint_valid_and_invalid(verify, http_peer):
    assert INLINE_TOKEN in verify.script
    # typed in another case: the endpoint hears the name Access Server normalized
    good = verify.login("ALICE", PASSWORD, "--sr", "123456", "--client-ip", OFFICE_IP)
    assert good["status"] == "SUCCEED", good
    assert good["user"] == "alice"
    request = http_peer.last("/verify")
    assert request.json == {"username": "alice", "response": "123456", "client_ip": OFFICE_IP}
    assert request.headers.get("Authorization") == "Bearer %s" % INLINE_TOKEN
    assert request.status == 200
    bad = verify.login("alice", PASSWORD, "--sr", "000000")
    assert bad["status"] == "FAIL"
    assert bad["client_reason"] == MFA_MESSAGES["challenge_wrong"]
    assert bad["reason"] == "challenge: wrong answer from alice (attempt 1)"
    assert http_peer.last("/verify").json["response"] == "000000"
    assert len(http_peer.requests) == 2


def test_endpoint_through_the_dynamic_challenge(verify, http_peer):
    http_peer.set_challenge("bob", "24680")
    question = challenge_of(verify.login("bob", PASSWORD, "--web"))
    assert question["text"] == TEXT
    assert http_peer.requests == []
    retry = challenge_of(answer(verify.server, "bob", question["state_id"], "13579", "--web"))
    assert retry["text"] == RETRY
    outcome = answer(verify.server, "bob", retry["state_id"], "24680", "--web")
    assert outcome["status"] == "SUCCEED", outcome
    assert [r.json["response"] for r in http_peer.requests] == ["13579", "24680"]


def test_endpoint_that_wants_the_token(verify, http_peer):
    http_peer.token = INLINE_TOKEN
    assert verify.login("alice", PASSWORD, "--sr", "123456")["status"] == "SUCCEED"
    http_peer.token = "another-token"
    refused = verify.login("alice", PASSWORD, "--sr", "123456")
    assert refused["status"] == "FAIL"
    # a refused token is not a wrong code: no attempt is spent, the user is told to try later
    assert refused["client_reason"] == MFA_MESSAGES["challenge_unavailable"]
    assert refused["reason"] == "challenge: verification endpoint answered HTTP 401"
    assert http_peer.last().status == 401


@pytest.mark.parametrize("mode,options", [
    ("slow", {"seconds": 6}),
    ("status", {"status": 500}),
    ("status", {"status": 503}),
    ("garbage", {}),
    ("close", {}),
], ids=["slow", "500", "503", "garbage", "close"])
def test_endpoint_unavailable_is_refused(verify, http_peer, mode, options):
    http_peer.behave(mode, **options)
    started = time.monotonic()
    outcome = verify.login("alice", PASSWORD, "--sr", "123456")
    elapsed = time.monotonic() - started
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["challenge_unavailable"]
    assert outcome["reason"].startswith("challenge: verification endpoint unavailable: "), outcome
    assert len(http_peer.requests) == 1
    # post_auth_challenge_timeout is 1 second
    assert elapsed < 4.5, elapsed


def test_token_from_a_file_and_a_good_certificate(built, http_peer, relay, token_file):
    relayed = built["challenge-relay"]
    assert FILE_TOKEN not in relayed.script
    assert "'token': {'file': %r}" % token_file in relayed.script
    http_peer.token = FILE_TOKEN
    relay.target = (peers.LOOPBACK, http_peer.port)
    outcome = relayed.login("alice", PASSWORD, "--sr", "123456")
    assert outcome["status"] == "SUCCEED", outcome
    assert http_peer.last("/verify").headers.get("Authorization") == "Bearer %s" % FILE_TOKEN


@pytest.mark.parametrize("which", ["other_ca", "wrong_name"])
def test_endpoint_with_a_bad_certificate_is_refused(built, http_peer, bad_tls_peers, relay, which):
    relayed = built["challenge-relay"]
    bad = getattr(bad_tls_peers, which)
    relay.target = (peers.LOOPBACK, bad.port)
    try:
        outcome = relayed.login("alice", PASSWORD, "--sr", "123456")
    finally:
        relay.target = (peers.LOOPBACK, http_peer.port)
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["challenge_unavailable"]
    assert "CERTIFICATE_VERIFY_FAILED" in outcome["reason"], outcome
    # the TLS handshake failed: no request reached the peer
    assert bad.requests == []
    assert relay.connections[-1] == (peers.LOOPBACK, bad.port)


def test_endpoint_down_is_refused(built, http_peer):
    outcome = built["challenge-down"].login("alice", PASSWORD, "--sr", "123456")
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MFA_MESSAGES["challenge_unavailable"]
    assert "Connection refused" in outcome["reason"], outcome
    assert http_peer.requests == []


# every script of this module -------------------------------------------------------------------

def test_scripts_use_only_what_access_server_offers_on_crstate(built):
    assert assert_crstate_used_as_documented(built)


def test_scripts_compile_with_every_python(built, tmp_path):
    assert assert_compiled_everywhere(built, tmp_path)
