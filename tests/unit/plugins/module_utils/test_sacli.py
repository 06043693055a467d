"""The runner: exact command lines (with run_command mocked) and the output parsers."""

import json
import os
import stat
from unittest import mock

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils import sacli as sacli_utils
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    SacliCommandError,
    SacliNotFoundError,
    SacliOutputError,
    SacliRunner,
    SacliTimeoutError,
    parse_json_object,
    parse_start_output,
    same_value,
    services_not_up,
    split_start_errors,
    to_sacli_string,
)

# `sacli start` as Access Server prints it (see docs/access-server.md)
START_FULL = """RunStart warm None
{
  "active_profile": "Default",
  "errors": {},
  "last_restarted": "Tue Jul 18 19:56:21 2023",
  "service_status": {
    "api": "on",
    "auth": "on",
    "openvpn_0": "restarted",
    "web": "restarted"
  }
}
WILL_RESTART ['web', 'client']
"""
WITHHELD = "<%d bytes withheld: this output may hold secrets>"
START_JSON = START_FULL.split("\n", 1)[1].rsplit("WILL_RESTART", 1)[0]


class FakeModule:
    """What the runner uses of AnsibleModule, with run_command recording what it saw."""

    def __init__(self, tmpdir, outputs=None, timeout=60, has_timeout_bin=True):
        self.params = dict(sacli_path=str(tmpdir / "sacli"), sacli_timeout=timeout)
        self.tmpdir = str(tmpdir)
        self.outputs = list(outputs or [])
        self.seen = []
        self.has_timeout_bin = has_timeout_bin
        (tmpdir / "sacli").write_text("#!/bin/sh\n")
        os.chmod(str(tmpdir / "sacli"), 0o755)

    def get_bin_path(self, name, required=False):
        return "/usr/bin/timeout" if self.has_timeout_bin and name == "timeout" else None

    def run_command(self, argv, check_rc=False, environ_update=None, handle_exceptions=True):
        assert handle_exceptions is False, "an exec error must reach the runner, not end the module"
        if isinstance(self.outputs[0] if self.outputs else None, Exception):
            raise self.outputs.pop(0)
        value_file = next((a.split("=", 1)[1] for a in argv if a.startswith("--value_file=")), None)
        content = mode = None
        if value_file is not None and os.path.exists(value_file):
            with open(value_file) as handle:
                content = handle.read()
            mode = stat.S_IMODE(os.stat(value_file).st_mode)
        self.seen.append(dict(argv=list(argv), check_rc=check_rc, env=environ_update, content=content, mode=mode,
                              value_file=value_file))
        return self.outputs.pop(0) if self.outputs else (0, "", "")


@pytest.fixture
def fake(tmp_path):
    return FakeModule(tmp_path)


def test_reads_pin_exact_argv(fake):
    sacli = fake.params["sacli_path"]
    fake.outputs = [(0, '{"a": "1"}', ""), (0, "{}", ""), (0, '{"service_status": {}}', ""), (0, "2.14.3\n", "")]
    runner = SacliRunner(fake)
    assert runner.config_query() == {"a": "1"}
    assert runner.userprop_get(pfilt="alice") == {}
    runner.status()
    assert runner.version() == "2.14.3"
    prefix = ["/usr/bin/timeout", "--kill-after=5", "60", sacli]
    assert [call["argv"] for call in fake.seen] == [
        prefix + ["ConfigQuery"],
        prefix + ["--pfilt", "alice", "UserPropGet"],
        prefix + ["status"],
        prefix + ["Version"],
    ]
    assert all(call["env"] == dict(LC_ALL="C", LANG="C", LC_MESSAGES="C") for call in fake.seen)
    assert all(call["check_rc"] is False for call in fake.seen)
    assert runner.commands == [], "reads are not listed as commands"


@pytest.mark.parametrize(
    "method, args, expected",
    [
        ("config_put", ("vpn.x", "s3cr3t value"), ["--key", "vpn.x", "ConfigPut"]),
        ("userprop_put", ("alice", "pvt_hw_addr", "00:11"), ["--user", "alice", "--key", "pvt_hw_addr", "UserPropPut"]),
    ],
)
def test_values_travel_in_a_private_file_that_is_removed(fake, method, args, expected):
    runner = SacliRunner(fake)
    getattr(runner, method)(*args)
    call = fake.seen[0]
    value = args[-1]
    argv = call["argv"]
    assert value not in " ".join(argv), "a value reached the command line"
    assert call["content"] == value
    assert call["mode"] == 0o600
    assert os.path.dirname(call["value_file"]) == fake.tmpdir
    assert not os.path.exists(call["value_file"]), "the value file was not removed"
    assert [a for a in argv[4:] if not a.startswith("--value_file=")] == expected
    assert runner.commands == ["sacli %s --value_file=<private file> %s" % (" ".join(expected[:-1]), expected[-1])]


def test_value_file_removed_even_when_sacli_fails(fake):
    fake.outputs = [(2, "", "boom")]
    runner = SacliRunner(fake)
    with pytest.raises(SacliCommandError) as info:
        runner.config_put("k", "v")
    error = info.value
    assert (error.rc, error.stderr) == (2, "boom")
    assert not os.path.exists(fake.seen[0]["value_file"])


def test_a_value_file_that_cannot_be_written_is_a_failed_call(fake):
    """A full disk, or a folder gone: a SacliError like any failed call (the caller undoes), sacli never run."""
    runner = SacliRunner(fake)
    runner.tmpdir = os.path.join(fake.tmpdir, "gone")
    with pytest.raises(SacliCommandError) as info:
        runner.config_put("k", "s3cr3t value")
    assert str(info.value).startswith("cannot write the value file of sacli ConfigPut: ")
    assert "s3cr3t" not in str(info.value)
    assert fake.seen == []


def test_deletes_and_start(fake):
    fake.outputs = [(0, "", ""), (0, "", ""), (0, "", ""), (0, START_FULL, "")]
    runner = SacliRunner(fake)
    runner.config_del("k")
    runner.userprop_del("bob", "prop_x")
    runner.userprop_del_all("bob")
    runner.start()
    assert [call["argv"][4:] for call in fake.seen] == [
        ["--key", "k", "ConfigDel"],
        ["--user", "bob", "--key", "prop_x", "UserPropDel"],
        ["--user", "bob", "UserPropDelAll"],
        ["start"],
    ]
    assert runner.commands == [
        "sacli --key k ConfigDel",
        "sacli --user bob --key prop_x UserPropDel",
        "sacli --user bob UserPropDelAll",
        "sacli start",
    ]


def test_no_timeout_wrapper_when_disabled_or_missing(tmp_path):
    for module in (FakeModule(tmp_path, timeout=0), FakeModule(tmp_path, has_timeout_bin=False)):
        module.outputs = [(0, "{}", "")]
        SacliRunner(module).config_query()
        assert module.seen[0]["argv"] == [module.params["sacli_path"], "ConfigQuery"]


def test_timeout_exit_code_raises_timeout(fake):
    fake.outputs = [(124, "", "")]
    with pytest.raises(SacliTimeoutError, match="within 60 seconds"):
        SacliRunner(fake).config_query()


def test_missing_sacli(tmp_path, fake):
    fake.params["sacli_path"] = str(tmp_path / "nowhere" / "sacli")
    with pytest.raises(SacliNotFoundError, match="set sacli_path"):
        SacliRunner(fake).config_query()
    assert fake.seen == []


@pytest.mark.parametrize(
    "rc, out, shown",
    [
        (1, '{\n  "auth.ldap.0.bind_pw": "hunter2"\n}\n', WITHHELD % 39),
        (0, '{\n  "auth.ldap.0.bind_pw": "hunt', WITHHELD % 32),
        (0, "<html>502</html>", "<html>502</html>"),
        (0, "x" * 201, WITHHELD % 201),
    ],
    ids=["failed-with-config", "truncated-config", "short-garbage", "long-garbage"],
)
def test_failed_reads_withhold_output_that_may_hold_secrets(fake, rc, out, shown):
    fake.outputs = [(rc, out, "err")]
    with pytest.raises(sacli_utils.SacliError) as info:
        SacliRunner(fake).config_query()
    assert info.value.stdout == shown
    assert info.value.stderr == "err"


def test_command_error_carries_everything(fake):
    fake.outputs = [(1, "partial", "sacli: unknown command")]
    with pytest.raises(SacliCommandError) as info:
        SacliRunner(fake).run("Bogus")
    details = info.value.as_dict()
    assert details == dict(
        msg="sacli Bogus failed with exit code 1", cmd="sacli Bogus", rc=1, stdout="partial",
        stderr="sacli: unknown command",
    )


# --- parsers -----------------------------------------------------------------------


def test_start_full_variant():
    parsed = parse_start_output(START_FULL)
    assert parsed["run_start"] == "warm"
    assert parsed["will_restart"] == ["web", "client"]
    assert parsed["result"]["service_status"]["web"] == "restarted"
    assert parsed["result"]["errors"] == {}


def test_start_with_a_blank_line_before_will_restart():
    # older public outputs have a blank line between the JSON object and WILL_RESTART
    parsed = parse_start_output(START_FULL.replace("}\nWILL_RESTART", "}\n\nWILL_RESTART"))
    assert parsed == parse_start_output(START_FULL)
    assert parsed["will_restart"] == ["web", "client"]


def test_start_json_alone():
    parsed = parse_start_output(START_JSON)
    assert parsed["run_start"] is None
    assert parsed["will_restart"] is None
    assert parsed["result"] == json.loads(START_JSON)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "RunStart warm None\n",
        "<html>502 Bad Gateway</html>",
        "RunStart warm None\n{\n  \"errors\": {}\n",
        "RunStart warm None\n[1, 2]\n",
        '{"errors": [], "service_status": {}}',
        "Traceback (most recent call last):\n  File \"sacli\", line 1\n",
    ],
    ids=["empty", "no-json", "garbage", "truncated", "not-object", "errors-not-dict", "traceback"],
)
def test_start_malformed(output):
    with pytest.raises(SacliOutputError) as info:
        parse_start_output(output, "sacli start", 0, "")
    assert info.value.stdout == output
    assert info.value.cmd == "sacli start"


def test_start_odd_will_restart_line_is_kept_raw():
    parsed = parse_start_output(START_JSON + "WILL_RESTART web, client\n")
    assert parsed["will_restart"] == ["web, client"]


@pytest.mark.parametrize("output", ["", "null", "[]", "not json", '{"a": 1'])
def test_json_object_malformed(output):
    with pytest.raises(SacliOutputError):
        parse_json_object(output, "sacli ConfigQuery", 0, "")


def test_split_start_errors():
    errors = {
        "openvpn_0": [["info", "process started successfully on 172.27.224.1"]],
        "crl": [["error", "service failed to start due to unresolved dependencies: {'user'}"]],
        "web": "a message in a shape nobody documented",
        "auth": [["INFO", "fine"], ["warning", "not fine"]],
    }
    fatal, info = split_start_errors(errors)
    assert sorted(fatal) == ["auth", "crl", "web"]
    assert fatal["auth"] == [["warning", "not fine"]]
    assert info == {"openvpn_0": errors["openvpn_0"], "auth": [["INFO", "fine"]]}


def test_services_not_up():
    assert services_not_up({"service_status": {"a": "on", "b": "restarted"}}) == []
    assert services_not_up({"service_status": {"a": "off", "b": "on", "c": "starting"}}) == ["a", "c"]
    assert services_not_up({}) == ["<no service_status>"]


@pytest.mark.parametrize(
    "value, expected", [(True, "true"), (False, "false"), (5, "5"), (1.5, "1.5"), ("x", "x"), ("", "")]
)
def test_to_sacli_string(value, expected):
    assert to_sacli_string(value) == expected


@pytest.mark.parametrize("value", [None, [1], {"a": 1}])
def test_to_sacli_string_refuses(value):
    with pytest.raises(TypeError, match="must be a string"):
        to_sacli_string(value, "settings.k")


def test_same_value_ignores_only_trailing_newlines():
    assert same_value("a\n", "a")
    assert same_value("a", "a\n\n")
    assert not same_value("a ", "a")
    assert not same_value("\na", "a")
    assert not same_value(None, "")
    assert same_value(None, None)


def test_default_path_is_access_servers():
    assert sacli_utils.DEFAULT_SACLI == "/usr/local/openvpn_as/scripts/sacli"
    assert sacli_utils.sacli_argument_spec()["sacli_path"]["default"] == sacli_utils.DEFAULT_SACLI


def test_fail_from_error_passes_details():
    module = mock.Mock()
    error = SacliCommandError("sacli start failed", "sacli start", 3, "out", "err")
    sacli_utils.fail_from_error(module, error, changed=True)
    module.fail_json.assert_called_once_with(
        msg="sacli start failed", cmd="sacli start", rc=3, stdout="out", stderr="err", changed=True
    )


@pytest.mark.parametrize(("out", "fails"), [
    ("", False), ("\n", False), ("[True, {}]\n", False), ("[True, {'x': 1}]", False),
    ("<html><body>502 Bad Gateway</body></html>\n", True), ("[False, {}]", True), ("Traceback ...", True),
])
def test_a_write_that_answers_something_else_fails(out, fails):
    module = mock.MagicMock()
    module.params = {"sacli_path": "/usr/local/openvpn_as/scripts/sacli", "sacli_timeout": 0}
    module.tmpdir = "/tmp"
    module.run_command.return_value = (0, out, "")
    runner = sacli_utils.SacliRunner(module)
    runner._check_path = lambda: None
    if fails:
        with pytest.raises(sacli_utils.SacliOutputError, match="ConfigDel printed an answer that is not a write's"):
            runner.config_del("host.name")
    else:
        runner.config_del("host.name")
    assert module.run_command.call_args[0][0][-3:] == ["--key", "host.name", "ConfigDel"]


@pytest.mark.parametrize(
    "method, args, message",
    [
        ("config_put", ("--user=root", "x"), "the key name '--user=root' starts with '-'"),
        ("config_del", ("host.name\n--key",), "the key name 'host.name\\n--key' holds a control character"),
        ("userprop_put", ("-alice", "pvt_hw_addr", "00:11"), "the user name '-alice' starts with '-'"),
        ("config_put", ("k" * 5000, "x"), "is longer than 4096 characters"),
        ("config_put", ("", "x"), "the key name '' is empty"),
    ],
    ids=["option-key", "newline-key", "option-user", "long-key", "empty-key"],
)
def test_a_name_sacli_cannot_take_is_refused_before_it_runs(fake, method, args, message):
    runner = SacliRunner(fake)
    with pytest.raises(sacli_utils.SacliError) as info:
        getattr(runner, method)(*args)
    assert message in info.value.msg and info.value.msg.endswith("it was not run"), info.value.msg
    assert fake.seen == [] and runner.commands == []


@pytest.mark.parametrize("error", [OSError(7, "Argument list too long"), ValueError("embedded null byte")],
                         ids=["E2BIG", "NUL"])
def test_a_command_that_cannot_run_is_a_failed_call(fake, error):
    fake.outputs = [error]
    runner = SacliRunner(fake)
    with pytest.raises(sacli_utils.SacliError) as info:
        runner.config_put("host.name", "x")
    assert info.value.msg.startswith("cannot run sacli ConfigPut: ") and str(error) in info.value.msg
    assert info.value.cmd == "sacli --key host.name --value_file=<private file> ConfigPut"
