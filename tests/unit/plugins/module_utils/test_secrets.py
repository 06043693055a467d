"""Which values are secrets, and how modules register them with no_log_values."""

from types import SimpleNamespace

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import hide_secrets, secret_matcher


@pytest.mark.parametrize("name", [
    "auth.ldap.0.bind_pw", "auth.radius.1.secret", "cs.priv_key", "cs.ca_priv_key", "auth.saml.0.sp_key",
    "auth.saml.0.sp_key_pem", "host.db.mysql_pw", "admin_ui.https.password", "vpn.server.private_key",
    "pvt_password_digest", "pvt_totp_secret", "pvt_google_auth_secret_locked", "api.token",
])
def test_one_secret_list_for_every_module(name):
    assert secret_matcher()(name)
    assert secret_matcher(["x.*"])(name) and secret_matcher(["x.*"])("x.y")


@pytest.mark.parametrize("name", ["host.name", "vpn.client.app_verify", "auth.module.post_auth_script",
                                  "pvt_hw_addr", "conn_group", "cs.cert"])
def test_ordinary_keys_are_shown(name):
    assert not secret_matcher()(name)


def test_hide_secrets_registers_values_their_literals_and_marked_lines():
    module = SimpleNamespace(no_log_values=set())
    script = "X = 1\nSECRETS = {'k': 'it\\'s'}  # ovpnas.fleet.secret\n"
    hide_secrets(module, {"auth.ldap.0.bind_pw": "b\\nd", "host.name": "vpn", "api.token": ""}, secret_matcher(),
                 script=script, known=["caf\u00e9"])
    assert module.no_log_values == {"b\\nd", "b\\\\nd", "caf\u00e9", "caf\\xe9", "SECRETS = {'k': 'it\\'s'}"}
    # (a value that is the same in every form is registered once)


def test_a_flag_under_a_secret_looking_name_is_not_hidden():
    # registered, "true" would be masked everywhere in the result
    module = SimpleNamespace(no_log_values=set())
    hide_secrets(module, {"auth.local.0.enforce_strong_passwords": "true", "vpn.token_auth": "Off",
                          "auth.ldap.0.bind_pw": "n0t-a-flag"}, secret_matcher())
    assert module.no_log_values == {"n0t-a-flag"}
