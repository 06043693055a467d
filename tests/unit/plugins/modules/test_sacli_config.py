"""sacli_config against the emulator: value normalisation, refusals, secrets and failures."""

import json
import os
import stat
import sys

import pytest
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_config

# how Ansible shows a value of no_log_values in a result
HIDDEN = remove_values("secret", {"secret"})

SECRET = "S3cr3t-bind-PW-4711"
OLD_SECRET = "0ld-bind-PW-0815"
BIND_PW = "auth.ldap.0.bind_pw"


def run(run_module, server, check_mode=False, diff=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(sacli_config.main, args, check_mode=check_mode, diff=diff)


def test_scalars_are_normalised(server, run_module):
    result = run(run_module, server, settings={"t.bool_t": True, "t.bool_f": False, "t.int": 5, "t.str": "x y"})
    assert not result["failed"], result
    config = server.config()
    assert [config[k] for k in ("t.bool_t", "t.bool_f", "t.int", "t.str")] == ["true", "false", "5", "x y"]
    assert result["changed_keys"] == ["t.bool_f", "t.bool_t", "t.int", "t.str"]
    assert result["restart_required"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(settings={"t.list": [1, 2]}), "settings.t.list must be a string, number or boolean, not list"),
        (dict(key="t.dict", value={"a": 1}), "value must be a string, number or boolean, not dict"),
        (dict(settings={"bad key": "x"}), "invalid configuration key 'bad key'"),
        (dict(key=" lead", value="x"), "invalid configuration key ' lead'"),
        (dict(keys=["vpn.client.routing.reroute_gw"], state="present"), "keys is used with state=absent"),
        (dict(key="host.name", value="x", state="absent"), "value and value_file are not used with state=absent"),
        (dict(key="host.name"), "key needs value or value_file"),
    ],
    ids=["list", "dict", "space in key", "leading space", "keys+present", "value+absent", "no value"],
)
def test_refused_before_any_sacli_call(server, run_module, args, message):
    before = server.config()
    result = run(run_module, server, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert server.commands() == []
    assert server.config() == before


@pytest.mark.parametrize("diff", [True, False])
def test_secret_keys_are_masked_everywhere(server, run_module, tmp_path, diff):
    server.sacli("--key", BIND_PW, "--value", OLD_SECRET, "ConfigPut")
    result = run(
        run_module, server, diff=diff, settings={BIND_PW: SECRET, "host.name": "vpn.example.com"},
        secret_keys=["auth.ldap.*.bind_pw"],
    )
    assert not result["failed"], result
    assert server.config()[BIND_PW] == SECRET
    assert result["changed_keys"] == [BIND_PW, "host.name"]
    if diff:
        assert result["diff"]["before"][BIND_PW] == HIDDEN
        assert result["diff"]["after"][BIND_PW] == HIDDEN
        assert result["diff"]["after"]["host.name"] == "vpn.example.com"
    dumped = json.dumps(result)
    assert SECRET not in dumped
    assert OLD_SECRET not in dumped
    with open(server.root.call_log) as handle:
        log = handle.read()
    assert "ConfigPut" in log
    assert SECRET not in log
    puts = [c["options"] for c in server.calls() if c["command"] == "ConfigPut"]
    assert puts == [["key", "value_file"]] * 2, "values travel in a file, never on the command line"
    remote_tmp = tmp_path / "remote_tmp"
    leftovers = [p for p in remote_tmp.rglob("*") if p.is_file()]
    assert all(SECRET not in p.read_text(errors="replace") for p in leftovers), leftovers


def test_secret_masked_in_check_mode_diff(server, run_module):
    result = run(run_module, server, check_mode=True, diff=True, key=BIND_PW, value=SECRET, secret_keys=[BIND_PW])
    assert result["changed"] is True
    assert result["diff"] == {"before": {BIND_PW: None}, "after": {BIND_PW: HIDDEN}}
    assert SECRET not in json.dumps(result)
    assert BIND_PW not in server.config()


def fault_after_first(tmp_path, server, command, **fault):
    """A sacli wrapper that runs the emulator's sacli and arms a fault once `command` has succeeded once."""
    marker = tmp_path / "armed"
    wrapper = tmp_path / "sacli-wrapper"
    wrapper.write_text(
        "#!%s\n"
        "import os, subprocess, sys\n"
        "sys.path.insert(0, %r)\n"
        "from asemu.root import Root\n"
        "rc = subprocess.run([%r] + sys.argv[1:], check=False).returncode\n"
        "if %r in sys.argv and rc == 0 and not os.path.exists(%r):\n"
        "    open(%r, 'w').close()\n"
        "    Root(%r).set_fault(%r, **%r)\n"
        "sys.exit(rc)\n"
        % (sys.executable, os.path.join(server.path, "lib", "python"), server.sacli_path, command, str(marker),
           str(marker), server.path, command.lower(), fault)
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def test_configput_fault_on_second_key_undoes_the_first(server, run_module, tmp_path):
    path = fault_after_first(tmp_path, server, "ConfigPut", action="exit", rc=3, stderr="boom", times=1)
    before = server.config()
    result = run(run_module, server, sacli_path=path, settings={"t.a": "1", "t.b": "2", "t.c": "3"})
    assert result["failed"] is True
    assert result["msg"] == "sacli ConfigPut failed with exit code 3; the writes made before it were undone"
    assert result["rc"] == 3
    assert "boom" in result["stderr"]
    assert result["stdout"] == ""
    assert result["cmd"] == "sacli --key t.b --value_file=<private file> ConfigPut"
    # the server is as it was: nothing to apply
    assert result["changed"] is False
    # the failed write is undone too: it may have happened
    assert server.commands() == ["ConfigQuery", "ConfigPut", "ConfigPut", "ConfigDel", "ConfigDel"]
    assert server.config() == before
    assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "pending_apply.json"))


def test_garbage_configquery_fails_without_writing(server, run_module):
    server.set_fault("configquery", action="garbage")
    result = run(run_module, server, settings={"host.name": "other"})
    assert result["failed"] is True
    assert "not JSON" in result["msg"]
    assert "502 Bad Gateway" in result["stdout"]
    assert result["changed"] is False
    assert server.commands() == ["ConfigQuery"]


def test_missing_sacli_fails_clearly(server, run_module, tmp_path):
    nowhere = str(tmp_path / "no" / "sacli")
    result = run(run_module, server, sacli_path=nowhere, settings={"host.name": "other"})
    assert result["failed"] is True
    assert "sacli not found" in result["msg"]
    assert nowhere in result["msg"]
    assert server.commands() == []


def test_hanging_configquery_times_out(server, run_module):
    server.set_fault("configquery", action="hang", seconds=5)
    result = run(run_module, server, sacli_timeout=1, settings={"host.name": "other"})
    assert result["failed"] is True
    assert "did not finish within 1 seconds" in result["msg"]
    assert result["rc"] == 124
    assert "ConfigPut" not in server.commands()


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_key_that_looks_like_an_option_is_refused_before_any_write(server, run_module, check_mode):
    before = server.config()
    result = run(run_module, server, check_mode=check_mode,
                 settings={"host.name": "vpn.example.com", "--user=root": "x"})
    assert result["failed"] is True and result["changed"] is False, result
    assert "the key name '--user=root' starts with '-'" in result["msg"] and "nothing was changed" in result["msg"]
    assert server.commands() == ["ConfigQuery"]
    assert server.config() == before
