"""Every capability in ONE script: group mapping (LDAP, the real slapd), device pinning and host checker.

One role run composes the script; the logins show the order of the checks (custom authentication ->
group mapping -> device pinning -> host checker): the first refusal is the one the user sees. The
same root also shows that an internal error fails closed, that a second role run changes nothing
and that the rendered script compiles with every Python 3 of the machine.
"""

import subprocess

import pytest
from policy import ADMINS_DN, MESSAGES, PYTHONS, Log, recap, scenarios, user_props, vpn

from asemu import postauth
from pyovpn.plugin import FAIL, SUCCEED

ALICE_LAPTOP = "00:11:22:33:44:55"
BOB_LAPTOP = "00:11:22:33:44:66"
STRANGER = "02:99:99:99:99:99"

COMBINED = {
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["ldap"],
    "post_auth_group_mapping_rules": [
        {"name": "administrators", "ldap_groups": [ADMINS_DN], "group": "admins"},
        {"name": "users", "ldap_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_deny_unmatched": True,
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "manual",
    "post_auth_device_pinning_registry": {"alice": [ALICE_LAPTOP.upper()], "bob": [BOB_LAPTOP]},
    # a directory group from the mapping exempts from device pinning
    "post_auth_device_pinning_exempt_groups": ["engineering"],
    "post_auth_host_checker": True,
    "host_checker_apps": [
        {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    ],
    "post_auth_policy_tests": [{
        "name": "alice from her laptop with a current Firefox",
        "user": "alice",
        "auth_method": "ldap",
        "ldap": {"groups": [ADMINS_DN]},
        "properties": {"pvt_hw_addr": ALICE_LAPTOP},
        "client": {"hw_addr": ALICE_LAPTOP, "platform": "win", "info": {"UV_APPVER_FIREFOX": "128.0"}},
        "expect": {"status": "SUCCEED", "group": "admins"},
    }],
}

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


def client(hw_addr, firefox="128.0.3", platform="win"):
    return vpn(hw_addr, "10.0.0.8", IV_PLAT=platform, UV_APPVER_FIREFOX=firefox)


@pytest.fixture(scope="module")
def combined(tmp_path_factory, slapd):
    return scenarios(tmp_path_factory, {"combined": (COMBINED, slapd.configure)})["combined"]


def login(sc, user, *options):
    return sc.login(user, PASSWORDS[user], *options)


def test_loaded_with_one_start(combined):
    commands = combined.server.commands()
    # the query file (host_checker role) and the script, applied with one start
    assert commands.count("ConfigPut") == 2, commands
    assert commands.count("start") == 1, commands
    script = combined.script
    assert "# ovpnas.fleet.features: group_mapping, device_pinning, host_checker\n" in script
    # the manual registry went to userprop.db
    assert user_props(combined.server, "alice")["pvt_hw_addr"] == ALICE_LAPTOP
    assert user_props(combined.server, "bob")["pvt_hw_addr"] == BOB_LAPTOP


def test_everything_right_gets_in_with_the_mapped_group(combined):
    alice = login(combined, "alice", *client(ALICE_LAPTOP.replace(":", "-")))
    assert alice["status"] == "SUCCEED", alice
    assert alice.group == "admins"
    bob = login(combined, "bob", *client(BOB_LAPTOP))
    assert bob["status"] == "SUCCEED", bob
    assert bob.group == "users"


def test_wrong_device_is_refused_by_device_pinning(combined):
    outcome = login(combined, "alice", *client(STRANGER))
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MESSAGES["device_not_registered"]
    assert outcome["reason"].startswith("device_pinning: ")


def test_bad_app_is_refused_by_the_host_checker(combined):
    outcome = login(combined, "alice", *client(ALICE_LAPTOP, firefox="102.15"))
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == "MSG FIREFOX older than 115.0"
    assert outcome["reason"] == "host_checker: FIREFOX 102.15 is older than 115.0"


@pytest.mark.parametrize("platform", ["win ", "WIN", " Mac\t", "mac\n"])
def test_the_claimed_platform_is_normalized(combined, platform):
    """A platform with spaces or capitals is still checked: it cannot skip the applications."""
    outcome = login(combined, "alice", *client(ALICE_LAPTOP, firefox="102.15", platform=platform))
    assert outcome["status"] == "FAIL", outcome
    assert outcome["reason"] == "host_checker: FIREFOX 102.15 is older than 115.0"
    assert login(combined, "alice", *client(ALICE_LAPTOP, platform=platform))["status"] == "SUCCEED"


@pytest.mark.parametrize("platform", [7, None, ["win"], {"win": 1}])
def test_a_platform_that_is_not_text_is_no_platform(combined, platform):
    """What a crafted call may hold: not an internal error, the same outcome as no IV_PLAT at all."""
    script = postauth.load(combined.script, combined.server.root)

    def call(info):
        authret = {"status": SUCCEED, "reason": "LDAP auth succeeded", "user": "alice",
                   "proplist": {"type": "user_connect", "pvt_hw_addr": ALICE_LAPTOP}}
        authcred = {"username": "alice", "client_ip_addr": "10.0.0.8", "client_hw_addr": ALICE_LAPTOP}
        attributes = {"client_info": dict(info, UV_APPVER_FIREFOX="102.15"), "vpn_auth": True,
                      "ldap_context": None}
        return postauth.call(script, combined.server.root, authcred, attributes, authret, {"auth_method": "ldap"})[0]

    crafted, absent = call({"IV_PLAT": platform}), call({})
    assert crafted["status"] == absent["status"] and crafted.get("reason") == absent.get("reason"), crafted
    assert crafted.get("client_reason") != MESSAGES["internal_error"]


def test_order_of_the_checks(combined):
    log = Log(combined.server)
    # wrong device and an old Firefox: device pinning runs first
    both = login(combined, "alice", *client(STRANGER, firefox="102.15"))
    assert both["status"] == "FAIL"
    assert both["client_reason"] == MESSAGES["device_not_registered"]
    # no group, wrong device, old Firefox: group mapping runs before both
    carol = login(combined, "carol", *client(STRANGER, firefox="102.15"))
    assert carol["status"] == "FAIL"
    assert carol["client_reason"] == MESSAGES["group_unmatched"]
    assert carol["reason"].startswith("group_mapping: ")
    text = log.new()
    assert "refused alice: device_pinning: " in text and "refused carol: group_mapping: " in text
    assert "host_checker" not in text


def test_directory_groups_reach_device_pinning(combined):
    # bob is in engineering (memberOf): exempt from device pinning, still checked by the host checker
    exempt = login(combined, "bob", *client(STRANGER))
    assert exempt["status"] == "SUCCEED", exempt
    assert exempt.group == "users"
    old = login(combined, "bob", *client(STRANGER, firefox="100.0"))
    assert old["status"] == "FAIL"
    assert old["client_reason"] == "MSG FIREFOX older than 115.0"
    # alice is not in engineering: the same device is refused
    assert login(combined, "alice", *client(STRANGER))["status"] == "FAIL"


def test_web_login_is_only_mapped(combined):
    web = login(combined, "alice", "--web")
    assert web["status"] == "SUCCEED", web
    assert web.group == "admins"


def test_internal_error_fails_closed_through_authcli(combined):
    """A login whose authret carries no user name: the script refuses it with the generic message."""
    log = Log(combined.server)
    outcome = combined.login("", None, "--auth-method", "session", *client(ALICE_LAPTOP))
    assert outcome["status"] == "FAIL"
    assert outcome["client_reason"] == MESSAGES["internal_error"]
    assert outcome["reason"] == "post_auth error in setup: ValueError: authret carries no user name"
    text = log.new()
    assert "Traceback (most recent call last):" in text
    assert 'File "<string>"' in text and "ValueError: authret carries no user name" in text


def test_internal_error_fails_closed_with_a_crafted_call(combined):
    """The loaded script, called as Access Server would with an authret that lacks 'user'."""
    server = combined.server
    log = Log(server)
    script = postauth.load(combined.script, server.root)
    authret = {"status": SUCCEED, "reason": "LDAP auth succeeded", "proplist": {"type": "user_connect"}}
    authcred = {"username": "alice", "client_ip_addr": "10.0.0.8", "client_hw_addr": ALICE_LAPTOP}
    attributes = {"client_info": {"IV_PLAT": "win", "UV_APPVER_FIREFOX": "128.0"}, "vpn_auth": True}
    result, save = postauth.call(script, server.root, authcred, attributes, authret, {"auth_method": "ldap"})
    assert result["status"] == FAIL
    assert result["client_reason"] == MESSAGES["internal_error"]
    assert result["reason"].startswith("post_auth error in setup: ValueError: ")
    assert save == {}
    text = log.new()
    assert "Traceback (most recent call last):" in text and "authret carries no user name" in text


def test_rendered_script_compiles_with_every_python(combined, tmp_path):
    assert PYTHONS, "no Python 3 under PYENV_ROOT"
    assert combined.variables["post_auth_validate_interpreters"] == PYTHONS
    path = tmp_path / "post_auth.py"
    path.write_text(combined.script, encoding="utf-8")
    versions = []
    for python in PYTHONS:
        proc = subprocess.run(
            [python, "-c", "import sys; compile(open(sys.argv[1], 'rb').read().decode('utf-8'), '<string>', 'exec');"
             " print('%d.%d' % sys.version_info[:2])", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, (python, proc.stderr)
        versions.append(proc.stdout.strip())
    assert all(v.startswith("3.") for v in versions), versions
    assert len(set(versions)) == len(PYTHONS), versions


def test_second_role_run_changes_nothing(combined):
    before = combined.script
    combined.server.reset_calls()
    again = combined.apply()
    assert recap(again.stdout)["as01"]["changed"] == 0, again.stdout
    # one ConfigQuery per role (query file, script), one UserPropGet for the registry: no ConfigPut, no start
    assert sorted(combined.server.commands()) == ["ConfigQuery", "ConfigQuery", "UserPropGet"]
    assert combined.script == before
