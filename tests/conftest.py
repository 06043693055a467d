"""Shared fixtures: emulated Access Server roots and a way to run modules in-process."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

# The emulator (tests/emulator, installed into the virtual environment by requirements-dev.txt):
# its Server helper and the `server` and `make_server` fixtures, which its own tests use too.
from asemu.testing import Server, install_server, make_server, server

# re-exported: test modules take Server and install_server from here, pytest finds the fixtures here
__all__ = ["Server", "install_server", "make_server", "server"]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `ansible_collections.ovpnas.fleet` is the checkout, through the link in .collections: test modules
# import the collection's plugins when they are collected, before anything could set up Ansible's
# collection loader, so the folder that holds `ansible_collections` must be on the path.
sys.path.insert(0, os.path.join(REPO, ".collections"))

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19 reads the module arguments from basic._ANSIBLE_ARGS

    @contextlib.contextmanager
    def patch_module_args(args):
        from ansible.module_utils import basic

        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode("utf-8")
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


@pytest.fixture
def module_warnings(monkeypatch):
    """Module warnings go to the module's result, as on a managed node, and only those of this test.

    From ansible-core 2.19 on, once anything imported the controller's ansible.errors (as filter
    tests do), module.warn() goes to the controller's display instead.
    """
    from ansible.module_utils.common import warnings

    try:
        from ansible.module_utils import _internal
    except ImportError:  # before 2.18
        _internal = None
    if hasattr(_internal, "is_controller"):  # 2.19 and later
        monkeypatch.setattr(_internal, "is_controller", False)
    monkeypatch.setattr(warnings, "_global_warnings", type(warnings._global_warnings)())
    return warnings._global_warnings


@pytest.fixture
def run_module(capsys, tmp_path):
    """Run a module's main() in-process with module args; return its result dict.

    The result carries ``failed`` as the module reported it; sacli runs for real.
    """
    remote_tmp = tmp_path / "remote_tmp"
    remote_tmp.mkdir(exist_ok=True)

    def run(main, args, check_mode=False, diff=False):
        module_args = dict(
            args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_remote_tmp=str(remote_tmp)
        )
        with patch_module_args(module_args), pytest.raises(SystemExit) as exit_info:
            main()
        result = json.loads(capsys.readouterr().out)
        result.setdefault("failed", exit_info.value.code != 0)
        return result

    return run


ANSIBLE_BIN = os.path.dirname(sys.executable)


def write_inventory(path, servers, **host_vars):
    """An inventory of emulated servers in group `fleet`, reached with the local connection."""
    hosts = {}
    for name, node in servers.items():
        hosts[name] = dict(host_vars, sacli_path=node.sacli_path)
    inventory = {
        "fleet": {
            "hosts": hosts,
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    with open(str(path), "w") as handle:
        json.dump(inventory, handle, indent=2)
    return str(path)


def run_playbook(playbook, inventory, *options):
    """Run ansible-playbook from the checkout (so that ansible.cfg resolves ovpnas.fleet)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORKS="10",
               ANSIBLE_NOCOLOR="1", PATH=ANSIBLE_BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        [os.path.join(ANSIBLE_BIN, "ansible-playbook"), "-i", inventory, playbook, *options],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


def run_to_the_end(argv, timeout, env=None):
    """Run a test runner script in a process group of its own: (exit code, stdout and stderr together).

    On a timeout the group is stopped the way Ctrl-C would stop it (SIGTERM), so that the script's own
    clean-up (containers, networks) runs, and the test fails with what it printed.
    """
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", **(env or {})), start_new_session=True)
    try:
        out, _err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _err = proc.communicate()
        pytest.fail("%s took more than %d s:\n%s" % (" ".join(argv), timeout, out))
    return proc.returncode, out


def recap(output):
    """{host: {ok: n, changed: n, failed: n, ...}} from the PLAY RECAP of ansible-playbook."""
    import re

    result = {}
    for line in output.splitlines():
        match = re.match(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", line.strip())
        if match:
            result[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return result


@pytest.fixture
def make_fleet(tmp_path):
    """make_fleet(n, *installer_options) -> {name: Server}, each its own emulator root."""

    fleets = iter(range(1000))

    def make(count, *options):
        folder = tmp_path / ("fleet%d" % next(fleets))
        fleet = {}
        for index in range(1, count + 1):
            name = "as%02d" % index
            fleet[name] = install_server(folder / name, *options)
        return fleet

    return make
