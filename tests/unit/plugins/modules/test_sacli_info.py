"""sacli_info against the emulator: which calls it makes, keys, secrets, script facts, app_verify, users, status."""

import hashlib
import json

import pytest
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_info

# how Ansible shows a value of no_log_values in a result
HIDDEN = remove_values("secret", {"secret"})

KEY = "auth.module.post_auth_script"
MARKER = "duo-ikey-DIXXXXXXXXXXXXXXXXXX"
SCRIPT = (
    "# ovpnas.fleet.version: 0.1.0\n"
    "# ovpnas.fleet.settings_sha256: abc\n"
    "# a comment that is not a field\n"
    "IKEY = %r\n"
    "\n"
    "def helper():\n"
    "    pass\n"
    "\n"
    "def post_auth_cr(authcred, attributes, authret, info, crstate):\n"
    "    return authret\n" % MARKER
)
BIND_PW = "Bind-PW-sekrit-4711"


def run(run_module, server, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(sacli_info.main, args)


def test_default_gather_makes_two_calls(server, run_module):
    result = run(run_module, server)
    assert not result["failed"], result
    assert sorted(server.commands()) == ["ConfigQuery", "Version"]
    assert result["version"] == "2.14.3" and result["version_number"] == "2.14.3"
    assert result["post_auth"] == {"present": False, "sha256": None, "size": 0, "entry_point": None, "header": {}}
    assert result["app_verify"]["present"] is False
    assert result["changed"] is False
    assert "config" not in result


def test_keys_narrow_config(server, run_module):
    result = run(run_module, server, gather=["version"], keys=["auth.module.type", "no.such.key"])
    assert not result["failed"], result
    assert result["config"] == {"auth.module.type": "local", "no.such.key": None}
    assert sorted(server.commands()) == ["ConfigQuery", "Version"]


def test_ldap_bind_password_is_masked_by_default(server, run_module):
    server.sacli("--key", "auth.ldap.0.bind_pw", "--value", BIND_PW, "ConfigPut")
    result = run(run_module, server, gather=["config"])
    assert not result["failed"], result
    assert result["config"]["auth.ldap.0.bind_pw"] == HIDDEN
    assert result["config"]["auth.ldap.0.name"] == "My LDAP servers"
    assert BIND_PW not in json.dumps(result)


@pytest.mark.parametrize("include", [False, True])
def test_script_text_only_with_include_script(server, run_module, include):
    server.sacli("--key", KEY, "--value", SCRIPT, "ConfigPut")
    result = run(run_module, server, gather=["config", "post_auth"], include_script=include)
    assert not result["failed"], result
    facts = result["post_auth"]
    assert facts["present"] is True
    assert facts["sha256"] == hashlib.sha256(SCRIPT.rstrip("\n").encode()).hexdigest()
    assert facts["size"] == len(SCRIPT.encode())
    assert facts["header"] == {"version": "0.1.0", "settings_sha256": "abc"}
    assert facts["entry_point"] == "post_auth_cr"
    if include:
        assert facts["content"] == SCRIPT
        assert result["config"][KEY] == SCRIPT
    else:
        assert "content" not in facts
        assert result["config"][KEY] == "<omitted: see post_auth>"
        assert MARKER not in json.dumps(result)


@pytest.mark.parametrize(
    ("script", "entry"),
    [
        ("def post_auth(authcred, attributes, authret, info):\n    return authret\n", "post_auth"),
        ("def post_auth(a, b, c, d):\n    return c\n\ndef post_auth_cr(a, b, c, d, e):\n    return c\n",
         "post_auth_cr"),
        ("def other():\n    pass\n", None),
    ],
    ids=["post_auth", "both", "none"],
)
def test_entry_point(server, run_module, script, entry):
    server.sacli("--key", KEY, "--value", script, "ConfigPut")
    result = run(run_module, server, gather=["post_auth"])
    assert result["post_auth"]["entry_point"] == entry
    assert result["post_auth"]["header"] == {}


def test_app_verify_entries(server, run_module):
    text = "win:FIREFOX=^mozilla firefox\nmac:FIREFOX=^firefox\nCHROME=^google chrome\n\nnot an entry\n"
    server.sacli("--key", "vpn.client.app_verify", "--value", text, "ConfigPut")
    result = run(run_module, server, gather=["app_verify"])
    assert not result["failed"], result
    facts = result["app_verify"]
    assert facts["present"] is True
    assert facts["content"] == text
    assert facts["entries"] == [
        {"platform": "win", "name": "FIREFOX", "regex": "^mozilla firefox"},
        {"platform": "mac", "name": "FIREFOX", "regex": "^firefox"},
        {"platform": "all", "name": "CHROME", "regex": "^google chrome"},
    ]
    assert server.commands() == ["ConfigQuery"]


@pytest.mark.parametrize(
    ("users", "pfilt"),
    [(["openvpn", "ghost"], False), (["openvpn"], True)],
    ids=["two", "one"],
)
def test_users(server, run_module, users, pfilt):
    server.set_password("openvpn", "user-password")
    result = run(run_module, server, gather=[], users=users)
    assert not result["failed"], result
    props = result["user_properties"]["openvpn"]
    assert props["type"] == "user_connect"
    assert props["prop_superuser"] == "true"
    assert props["pvt_password_digest"] == HIDDEN
    assert result["missing_users"] == users[1:]
    assert list(result["user_properties"]) == ["openvpn"]
    assert server.commands() == ["UserPropGet"]
    assert ("pfilt" in server.calls()[0]["options"]) is pfilt


def test_users_gather_needs_users(server, run_module):
    result = run(run_module, server, gather=["users"])
    assert result["failed"] is True
    assert "needs the users option" in result["msg"]
    assert server.commands() == []


def test_status(server, run_module):
    server.set_fault("status", action="off", services=["web"], times=1)
    result = run(run_module, server, gather=["status"])
    assert not result["failed"], result
    assert result["service_status"]["web"] == "off"
    assert result["service_status"]["auth"] == "on"
    assert result["errors"] == {}
    assert server.commands() == ["status"]
