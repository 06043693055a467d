"""The four runs every state-changing module must pass, against a real emulated server.

For each case: check mode with diff (predicts, writes nothing), the real run (does exactly
what check mode predicted), the real run again (no change, one read) and check mode again
(no change, one read).  The emulator's call log counts every sacli call.
"""

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import post_auth_script, sacli_config, sacli_userprop

SCRIPT = (
    "from pyovpn.plugin import SUCCEED, FAIL\n\n\n"
    "def post_auth(authcred, attributes, authret, info):\n    return authret\n"
)
OLD_SCRIPT = "def post_auth(authcred, attributes, authret, info):\n    return authret\n"


def setup_user(server):
    server.sacli("--user", "alice", "--key", "type", "--value", "user_connect", "UserPropPut")
    server.sacli("--user", "alice", "--key", "pvt_hw_addr", "--value", "00:00:00:00:00:01", "UserPropPut")
    server.sacli("--user", "alice", "--key", "pvt_hw_addr2", "--value", "00:00:00:00:00:02", "UserPropPut")
    server.sacli("--user", "alice", "--key", "prop_autologin", "--value", "false", "UserPropPut")


def live_script(server):
    """The loaded script; the emulator may strip trailing newlines (value_file_strip)."""
    return server.config().get("auth.module.post_auth_script", "").rstrip("\n")


def setup_script(server):
    server.sacli("--key", "auth.module.post_auth_script", "--value", OLD_SCRIPT, "ConfigPut")


CASES = {
    "config: five keys, three differ": dict(
        main=sacli_config.main,
        args=dict(settings={
            "vpn.client.routing.reroute_gw": False,
            "vpn.server.daemon.tcp.n_daemons": 4,
            "host.name": "vpn.example.com",
            "cs.https.port": 943,
            "auth.module.type": "local",
        }),
        writes=["ConfigPut"] * 3,
        check=lambda s: (
            s.config()["vpn.client.routing.reroute_gw"] == "false"
            and s.config()["vpn.server.daemon.tcp.n_daemons"] == "4"
            and s.config()["host.name"] == "vpn.example.com"
        ),
    ),
    "config: one key from a file on the host": dict(
        main=sacli_config.main,
        args=dict(key="vpn.client.app_verify", value_file="{tmp}/appver.txt"),
        files={"appver.txt": "win:FIREFOX=^mozilla firefox\nmac:FIREFOX=^firefox\n"},
        writes=["ConfigPut"],
        check=lambda s: s.config().get("vpn.client.app_verify", "").startswith("win:FIREFOX=^mozilla firefox\nmac:"),
    ),
    "config: remove keys, one of them absent": dict(
        main=sacli_config.main,
        args=dict(keys=["vpn.client.routing.reroute_gw", "no.such.key"], state="absent"),
        writes=["ConfigDel"],
        check=lambda s: "vpn.client.routing.reroute_gw" not in s.config(),
    ),
    "userprop: new user with properties": dict(
        main=sacli_userprop.main,
        args=dict(name="bob", properties={"pvt_hw_addr": "AA:BB:CC:DD:EE:FF", "prop_deny_web": True}),
        writes=["UserPropPut"] * 3,
        check=lambda s: s.userprops().get("bob")
        == {"type": "user_connect", "pvt_hw_addr": "AA:BB:CC:DD:EE:FF", "prop_deny_web": "true"},
    ),
    "userprop: new group": dict(
        main=sacli_userprop.main,
        args=dict(name="engineering", kind="group", properties={"prop_reroute_gw_override": "dns_only"}),
        writes=["UserPropPut"] * 3,
        check=lambda s: s.userprops().get("engineering")
        == {"type": "group", "group_declare": "true", "prop_reroute_gw_override": "dns_only"},
    ),
    "userprop: exclusive prefix drops a stale registration": dict(
        main=sacli_userprop.main,
        setup=setup_user,
        args=dict(name="alice", properties={"pvt_hw_addr": "00:00:00:00:00:03"}, exclusive_prefixes=["pvt_hw_addr"]),
        writes=["UserPropPut", "UserPropDel"],
        check=lambda s: s.userprops()["alice"]
        == {"type": "user_connect", "pvt_hw_addr": "00:00:00:00:00:03", "prop_autologin": "false"},
    ),
    "userprop: many users in one read": dict(
        main=sacli_userprop.main,
        setup=setup_user,
        args=dict(users={"alice": {"pvt_hw_addr": "00:00:00:00:00:01"}, "carol": {"pvt_hw_addr": "00:00:00:00:00:09"}},
                  exclusive_prefixes=["pvt_hw_addr"]),
        writes=["UserPropDel", "UserPropPut", "UserPropPut"],
        check=lambda s: "pvt_hw_addr2" not in s.userprops()["alice"]
        and s.userprops().get("carol", {}).get("pvt_hw_addr") == "00:00:00:00:00:09",
    ),
    "userprop: remove properties": dict(
        main=sacli_userprop.main,
        setup=setup_user,
        args=dict(name="alice", properties={"pvt_hw_addr2": None, "prop_autologin": None}, state="absent"),
        writes=["UserPropDel", "UserPropDel"],
        check=lambda s: s.userprops()["alice"] == {"type": "user_connect", "pvt_hw_addr": "00:00:00:00:00:01"},
    ),
    "userprop: remove a user": dict(
        main=sacli_userprop.main,
        setup=setup_user,
        args=dict(name="alice", state="absent"),
        writes=["UserPropDelAll"],
        check=lambda s: "alice" not in s.userprops(),
    ),
    "script: first load": dict(
        main=post_auth_script.main,
        args=dict(content=SCRIPT),
        writes=["ConfigPut"],
        check=lambda s: live_script(s) == SCRIPT.rstrip("\n"),
    ),
    "script: replace from a file, with a backup": dict(
        main=post_auth_script.main,
        setup=setup_script,
        args=dict(src="{tmp}/script.py", backup=True),
        files={"script.py": SCRIPT},
        writes=["ConfigPut"],
        check=lambda s: live_script(s) == SCRIPT.rstrip("\n"),
    ),
    "script: remove": dict(
        main=post_auth_script.main,
        setup=setup_script,
        args=dict(state="absent"),
        writes=["ConfigDel"],
        check=lambda s: "auth.module.post_auth_script" not in s.config(),
    ),
}

READS = {sacli_config.main: "ConfigQuery", post_auth_script.main: "ConfigQuery", sacli_userprop.main: "UserPropGet"}


def prepare(case, server, tmp_path):
    for name, text in case.get("files", {}).items():
        (tmp_path / name).write_text(text)
    if "setup" in case:
        case["setup"](server)
    server.reset_calls()
    args = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in case["args"].items()}
    args["sacli_path"] = server.sacli_path
    return args


def run_and_count(run_module, server, main, args, **kwargs):
    """Run the module; return its result and the sacli commands it made."""
    server.reset_calls()
    result = run_module(main, args, **kwargs)
    return result, server.commands()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("variant", [(), ("--configput-output", "list"), ("--value-file-strip",)], ids=str)
def test_four_runs(name, variant, make_server, run_module, tmp_path):
    case = CASES[name]
    server = make_server(*variant)
    args = prepare(case, server, tmp_path)
    read = READS[case["main"]]

    check, check_calls = run_and_count(run_module, server, case["main"], args, check_mode=True, diff=True)
    assert not check["failed"], check
    assert check["changed"] is True
    assert check_calls == [read], "check mode must only read"
    assert not case["check"](server), "check mode changed the server"

    real, real_calls = run_and_count(run_module, server, case["main"], args, diff=True)
    assert not real["failed"], real
    assert real["changed"] is True
    assert real_calls == [read, *case["writes"]]
    assert case["check"](server)
    assert real["diff"] == check["diff"], "check mode must predict the diff"
    assert real["commands"] == check["commands"], "check mode must predict the commands"
    assert len(real["commands"]) == len(case["writes"])
    assert all("--value_file=<private file>" in c or " --value" not in c for c in real["commands"])

    again, again_calls = run_and_count(run_module, server, case["main"], args, diff=True)
    assert not again["failed"], again
    assert again["changed"] is False
    assert again["commands"] == []
    assert again["restart_required"] is False
    assert again_calls == [read]

    again_check, again_check_calls = run_and_count(run_module, server, case["main"], args, check_mode=True, diff=True)
    assert again_check["changed"] is False
    assert again_check_calls == [read]
