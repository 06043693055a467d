"""Settings of custom authentication, Duo and the custom challenge: refusals, flags, secrets."""

import base64
import hashlib

import pytest
from test_settings import params, post_auth_settings, post_auth_user_properties, refusal

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import MESSAGES

SKEY = "duo-skey-0123456789abcdefghijklmnopqrstuv"
HASH = "pbkdf2_sha256$100000$salt$" + base64.b64encode(
    hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 100000)).decode()


def duo(**changes):
    values = dict(duo=True, duo_api_host="api-1234.duosecurity.com", duo_integration_key="DIKEY", duo_secret_key=SKEY)
    values.update(changes)
    return params(**values)


def pas(**changes):
    values = dict(custom_auth=True, custom_auth_url="https://auth.example.com/vpn")
    values.update(changes)
    return params(**values)


def challenge(**changes):
    return params(challenge=True, **changes)


@pytest.mark.parametrize(
    "values, message",
    [
        (duo(challenge=True), "post_auth_duo: and post_auth_challenge are both on"),
        (duo(duo_secret_key=""), "post_auth_duo_secret_key: is required (or post_auth_duo_secret_key_file"),
        (duo(duo_secret_key="", duo_secret_key_file="relative/path"), "post_auth_duo_secret_key_file: must be an abs"),
        (duo(duo_api_host=""), "post_auth_duo_api_host: is required"),
        (duo(duo_api_host="https://api.example.com/"), "post_auth_duo_api_host: 'https://api.example.com/' is not"),
        (duo(duo_integration_key=""), "post_auth_duo_integration_key: is required"),
        (duo(duo_factor="sms"), "post_auth_duo_factor: 'sms' is not one of push, ask"),
        (duo(duo_fail_mode="open"), "post_auth_duo_fail_mode: 'open' is not one of secure, safe"),
        (duo(duo_proxy="http://user:pass@proxy:3128"), "post_auth_duo_proxy: must not hold credentials"),
        (duo(duo_proxy="proxy:3128"), "post_auth_duo_proxy: is not a proxy URL"),
        (duo(duo_timeout=0), "post_auth_duo_timeout: must be a number from 1 to 120"),
        (pas(custom_auth_url=""), "post_auth_custom_auth_url: is required"),
        (pas(custom_auth_url="http://auth.example.com/vpn"), "post_auth_custom_auth_url: must use https"),
        (pas(custom_auth_url="ftp://x"), "post_auth_custom_auth_url: is not an http(s) URL"),
        (pas(custom_auth_method="ldap"), "post_auth_custom_auth_method: 'ldap' is not one of http, hashes"),
        (pas(custom_auth_method="hashes"), "post_auth_custom_auth_hashes: must map user names"),
        (pas(custom_auth_method="hashes", custom_auth_hashes={"svc": "plain-text-password"}),
         "post_auth_custom_auth_hashes.svc: must be pbkdf2_sha256$ITERATIONS$SALT$BASE64"),
        (pas(custom_auth_method="hashes", custom_auth_hashes={"svc": HASH.replace("100000", "1000")}),
         "post_auth_custom_auth_hashes.svc: must be pbkdf2_sha256$ITERATIONS$SALT$BASE64 with at least 100000"),
        (challenge(challenge_verify="sms"), "post_auth_challenge_verify: 'sms' is not one of totp, http"),
        (challenge(challenge_totp_digits=5), "post_auth_challenge_totp_digits: must be 6, 7 or 8"),
        (challenge(challenge_totp_algorithm="md5"),
         "post_auth_challenge_totp_algorithm: 'md5' is not one of sha1, sha256, sha512"),
        (challenge(challenge_totp_property="totp_secret"), "post_auth_challenge_totp_property: must be a private"),
        (challenge(challenge_text="line one\nline two"), "post_auth_challenge_text: must be one line"),
        (challenge(challenge_verify="http"), "post_auth_challenge_url: is required"),
        (challenge(challenge_max_attempts=0), "post_auth_challenge_max_attempts: must be a number from 1 to 10"),
    ],
)
def test_refusals_name_the_variable(values, message):
    assert refusal(values).startswith(message)


@pytest.mark.parametrize(
    "seed, ok",
    [("JBSWY3DPEHPK3PXP", True), ("jbsw y3dp ehpk 3pxp", True), ("JBSWY3DP", False), ("JBSWY3DPEHPK3PX1", False)],
)
def test_totp_seeds_are_checked_never_echoed(seed, ok):
    values = challenge(challenge_totp_secrets={"alice": seed})
    if ok:
        assert post_auth_user_properties(values) == {"alice": {"pvt_totp_secret": "JBSWY3DPEHPK3PXP"}}
    else:
        message = refusal(values, which=post_auth_user_properties)
        assert message.startswith("post_auth_challenge_totp_secrets.alice: must be a base32 seed")
        assert seed not in message


@pytest.mark.parametrize(
    "values, flags",
    [
        (pas(), {"SYNCHRONOUS": False, "AUTH_NULL": True, "RETAIN_PASSWORD": True}),
        (pas(custom_auth_method="hashes", custom_auth_hashes={"svc": HASH}),
         {"SYNCHRONOUS": False, "AUTH_NULL": True, "RETAIN_PASSWORD": True}),
        (duo(), {"SYNCHRONOUS": False}),
        (duo(duo_static_challenge=True), {"SYNCHRONOUS": False, "STATIC_CHALLENGE": "Duo two-factor: enter a "
                                          "passcode, or push, phone or sms", "STATIC_CHALLENGE_ECHO": True}),
        (challenge(), {"SYNCHRONOUS": True, "STATIC_CHALLENGE": "Enter your one-time code",
                       "STATIC_CHALLENGE_ECHO": False}),
        (challenge(challenge_static=False, challenge_verify="http", challenge_url="https://otp.example.com/v"),
         {"SYNCHRONOUS": False}),
    ],
    ids=["pas-http", "pas-hashes", "duo", "duo-static", "totp-static", "http-dynamic"],
)
def test_flags(values, flags):
    assert post_auth_settings(values)["flags"] == flags


def test_inline_secrets_stay_out_of_the_settings():
    result = post_auth_settings(duo(duo_secret_key=SKEY))
    assert result["secrets"] == {"duo_secret_key": SKEY}
    assert result["settings"]["duo"]["skey"] == {"secret": "duo_secret_key"}
    assert SKEY not in repr(result["settings"])
    assert result["secret_values"] == [SKEY]
    from_file = post_auth_settings(duo(duo_secret_key="", duo_secret_key_file="/root/.duo"))
    assert from_file["secrets"] == {} and from_file["secret_values"] == []
    assert from_file["settings"]["duo"]["skey"] == {"file": "/root/.duo"}


def test_hashes_are_secrets_and_rotation_changes_the_sha():
    first = post_auth_settings(pas(custom_auth_method="hashes", custom_auth_hashes={"SVC": HASH}))
    assert first["secrets"] == {"custom_auth_hashes": {"svc": HASH}}
    assert first["secret_values"] == [HASH]
    rotated = post_auth_settings(duo(duo_secret_key=SKEY + "x"))
    assert rotated["sha256"] != post_auth_settings(duo())["sha256"]


def test_features_in_chain_order():
    values = duo(custom_auth=True, custom_auth_url="https://a.example.com", device_pinning=True)
    assert post_auth_settings(values)["features"] == ["custom_auth", "device_pinning", "duo"]


@pytest.mark.parametrize("values, prefix", [(duo(), "duo_"), (pas(), "custom_auth_"), (challenge(), "challenge_")],
                         ids=["duo", "custom_auth", "challenge"])
def test_each_capability_carries_its_messages(values, prefix):
    messages = post_auth_settings(values)["settings"]["messages"]
    assert set(messages) == {"internal_error"} | {key for key in MESSAGES if key.startswith(prefix)}
