"""post_auth_script against the emulator: validation, interpreters, backups, hashes, faults and diffs."""

import glob
import hashlib
import json
import os
import stat

import pytest

from ansible_collections.ovpnas.fleet.plugins.modules import post_auth_script

KEY = "auth.module.post_auth_script"
OLD = "def post_auth(authcred, attributes, authret, info):\n    return authret\n"
NEW = "from pyovpn.plugin import SUCCEED, FAIL\n\n\n" + OLD
BROKEN = "def post_auth(authcred, attributes, authret, info:\n    return authret\n"
NO_ENTRY = "def pre_auth(authcred):\n    return None\n"
WALRUS = "def post_auth(authcred, attributes, authret, info):\n    if (n := 1):\n        return authret\n"


def run(run_module, server, check_mode=False, diff=False, **args):
    args.setdefault("sacli_path", server.sacli_path)
    server.reset_calls()
    return run_module(post_auth_script.main, args, check_mode=check_mode, diff=diff)


def live(server):
    return server.config().get(KEY)


def load(server, text):
    server.sacli("--key", KEY, "--value", text, "ConfigPut")


def sha(text):
    return hashlib.sha256(text.rstrip("\n").encode("utf-8")).hexdigest()


def pyenv_python(version):
    """A pyenv-installed interpreter of that minor version, or skip."""
    root = os.environ.get("PYENV_ROOT") or "/root/.pyenv"
    found = sorted(glob.glob(os.path.join(root, "versions", "%s.*" % version, "bin", "python3")))
    if not found:
        pytest.skip("no Python %s under %s/versions" % (version, root))
    return found[-1]


@pytest.mark.parametrize(
    ("content", "message"),
    [(BROKEN, "SyntaxError"), (NO_ENTRY, "defines neither post_auth nor post_auth_cr")],
    ids=["does not compile", "no entry point"],
)
@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_invalid_script_is_not_loaded(server, run_module, content, message, check_mode):
    load(server, OLD)
    result = run(run_module, server, check_mode=check_mode, content=content)
    assert result["failed"] is True
    assert message in result["msg"]
    assert "nothing was loaded" in result["msg"]
    assert result["changed"] is False
    assert "ConfigPut" not in server.commands()
    assert live(server) == OLD


def test_validate_false_loads_anyway(server, run_module):
    result = run(run_module, server, content=BROKEN, validate=False)
    assert not result["failed"], result
    assert result["changed"] is True
    assert "validation" not in result
    assert live(server) == BROKEN


def test_validation_reports_the_interpreter(server, run_module):
    python36 = pyenv_python("3.6")
    result = run(run_module, server, check_mode=True, content=NEW, validate_interpreter=python36)
    assert not result["failed"], result
    assert result["validation"]["interpreter"] == python36
    assert result["validation"]["python_version"].startswith("3.6.")


def test_walrus_fails_on_36_and_passes_on_311(server, run_module):
    python36, python311 = pyenv_python("3.6"), pyenv_python("3.11")
    old = run(run_module, server, content=WALRUS, validate_interpreter=python36)
    assert old["failed"] is True
    assert "Python 3.6." in old["msg"] and "SyntaxError" in old["msg"]
    assert live(server) is None
    new = run(run_module, server, content=WALRUS, validate_interpreter=python311)
    assert not new["failed"], new
    assert new["validation"]["python_version"].startswith("3.11.")
    assert live(server) == WALRUS


def test_backup_keeps_the_previous_script_privately(server, run_module):
    load(server, OLD)
    result = run(run_module, server, content=NEW, backup=True)
    assert not result["failed"], result
    path = result["backup_file"]
    folder = os.path.join(server.path, "etc", "ovpnas_fleet", "backups")
    assert os.path.dirname(path) == folder
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    with open(path) as handle:
        assert handle.read() == OLD
    assert live(server) == NEW


def test_backup_of_removed_script_in_backup_dir(server, run_module, tmp_path):
    load(server, OLD)
    folder = tmp_path / "backups" / "deep"
    result = run(run_module, server, state="absent", backup=True, backup_dir=str(folder))
    assert not result["failed"], result
    assert os.path.dirname(result["backup_file"]) == str(folder)
    assert (folder / os.path.basename(result["backup_file"])).read_text() == OLD
    assert live(server) is None


def test_no_backup_when_nothing_was_live(server, run_module):
    result = run(run_module, server, content=NEW, backup=True)
    assert not result["failed"], result
    assert result["changed"] is True
    assert "backup_file" not in result
    assert not os.path.exists(os.path.join(server.path, "etc", "ovpnas_fleet", "backups"))


@pytest.mark.parametrize(
    ("before", "args", "after"),
    [
        (None, dict(content=NEW + "\n\n"), NEW),
        (OLD, dict(content=NEW), NEW),
        (OLD, dict(state="absent"), None),
    ],
    ids=["first load", "replace", "remove"],
)
def test_sha256_values(server, run_module, before, args, after):
    if before is not None:
        load(server, before)
    result = run(run_module, server, **args)
    assert not result["failed"], result
    assert result["sha256_before"] == (sha(before) if before else None)
    assert result["sha256_after"] == (sha(after) if after else None)
    assert result["sha256_after"] != result["sha256_before"]


def test_configput_fault_keeps_the_previous_script(server, run_module):
    load(server, OLD)
    server.set_fault("configput", action="exit", rc=3, stderr="boom", times=1)
    result = run(run_module, server, content=NEW)
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["restart_required"] is False
    assert result["rc"] == 3 and "boom" in result["stderr"]
    assert live(server) == OLD


@pytest.mark.parametrize(
    ("args", "after_header", "after"),
    [(dict(content=NEW), "wanted", NEW), (dict(state="absent"), "removed", "")],
    ids=["present", "absent"],
)
def test_diff_headers(server, run_module, args, after_header, after):
    load(server, OLD)
    result = run(run_module, server, check_mode=True, diff=True, **args)
    assert result["diff"] == {
        "before": OLD,
        "after": after,
        "before_header": "%s (live)" % KEY,
        "after_header": "%s (%s)" % (KEY, after_header),
    }
    assert live(server) == OLD


@pytest.mark.parametrize(
    ("stored", "wanted"),
    [(OLD.rstrip("\n"), OLD), (OLD, OLD + "\n\n"), (OLD + "\n", OLD.rstrip("\n"))],
    ids=["live stripped", "wanted extra newlines", "live extra newline"],
)
def test_trailing_newlines_are_not_a_change(server, run_module, stored, wanted):
    load(server, stored)
    result = run(run_module, server, content=wanted)
    assert not result["failed"], result
    assert result["changed"] is False
    assert result["sha256_before"] == result["sha256_after"] == sha(OLD)
    assert server.commands() == ["ConfigQuery"]


@pytest.mark.parametrize("check_mode", [False, True], ids=["real", "check"])
def test_a_marked_line_with_several_secrets_shows_none_of_them(server, run_module, check_mode):
    # one secret written as it is, one whose literal escapes its quotes (as ascii() writes it), both
    # given in `secrets`: once Ansible masks one of them, the line no longer matches as a whole, and
    # yet neither shows, in the diff (the marked line reads ******** whole) or anywhere else
    plain, quoted = "plain-s3cret-value", "it's \"s3cret\""
    script = NEW + "SECRETS = {'a': %s, 'b': %s}  # ovpnas.fleet.secret\n" % (ascii(plain), ascii(quoted))
    load(server, OLD)
    result = run(run_module, server, check_mode=check_mode, diff=True, content=script, secrets=[plain, quoted])
    assert result["changed"] is True, result
    assert result["diff"]["after"].splitlines()[-1] == "******** # ovpnas.fleet.secret"
    assert "s3cret" not in json.dumps(result)
