"""Emulated servers for pytest: the Server helper and the ``server`` and ``make_server`` fixtures.

A conftest.py makes the fixtures available by importing them::

    from asemu.testing import make_server, server  # noqa: F401

Each server is installed with ``python -m asemu.install`` of the running interpreter, so the
``asemu`` it imports (the installed distribution) is the code under test.  Needs pytest; the
emulator itself does not import this module.
"""

import json
import os
import subprocess
import sys

import pytest

from asemu.root import Root


def _run(argv, timeout=60):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout, check=False)


class Server:
    """One emulated Access Server installed in a folder."""

    def __init__(self, path):
        self.path = str(path)
        self.root = Root(self.path)
        self.sacli_path = os.path.join(self.path, "scripts", "sacli")
        self.authcli_path = os.path.join(self.path, "scripts", "authcli")

    def sacli(self, *args, check=True):
        proc = _run([self.sacli_path, *args])
        if check and proc.returncode != 0:
            raise AssertionError("sacli %s failed (%s): %s" % (args, proc.returncode, proc.stderr))
        return proc

    def authcli(self, *args):
        return _run([self.authcli_path, *args])

    def config(self):
        return json.loads(self.sacli("ConfigQuery").stdout)

    def userprops(self):
        return json.loads(self.sacli("UserPropGet").stdout)

    def calls(self, tool="sacli"):
        return [c for c in self.root.calls() if c["tool"] == tool]

    def commands(self, tool="sacli"):
        return [c["command"] for c in self.calls(tool)]

    def reset_calls(self):
        if os.path.exists(self.root.call_log):
            os.remove(self.root.call_log)

    def set_fault(self, command, **fault):
        self.root.set_fault(command, **fault)

    def settings(self, **changes):
        self.root.update_settings(**changes)

    def set_password(self, user, password):
        self.sacli("--user", user, "--new_pass", password, "SetLocalPassword")


def install_server(path, *options):
    """Install an emulated server into ``path`` with installer options; a Server with an empty call log."""
    proc = _run([sys.executable, "-m", "asemu.install", str(path), *options])
    if proc.returncode != 0:
        raise AssertionError("install %s %s failed (%s): %s" % (path, options, proc.returncode, proc.stderr))
    server = Server(path)
    server.reset_calls()
    return server


class Traffic(object):
    """Simulated clients logging in to emulated servers in the background (``asemu.traffic``).

    ``with Traffic([server], "--users", "30", "--rate", "20") as traffic:`` starts the generator (for at most
    ``--duration``, default 300 s) and stops it on leaving (SIGTERM), which prints its JSON summary into
    ``traffic.summary``.
    """

    def __init__(self, servers, *options):
        self.argv = [sys.executable, "-m", "asemu.traffic", *(s.path for s in servers), "--json", *options]
        if "--duration" not in options and "--count" not in options:
            self.argv += ["--duration", "300"]
        self.proc = None
        self.summary = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     universal_newlines=True)
        return self

    def stop(self):
        if self.proc is None or self.summary is not None:
            return self.summary
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise AssertionError("traffic failed (%s): %s" % (self.proc.returncode, err[-2000:]))
        self.summary = json.loads(out)
        return self.summary

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def server(tmp_path):
    """A freshly installed, running emulated server with an empty call log."""
    return install_server(tmp_path / "as")


@pytest.fixture
def make_server(tmp_path):
    """Install emulated servers with installer options: make_server("--start-output", "json")."""
    counter = iter(range(1000))

    def make(*options):
        return install_server(tmp_path / ("as%d" % next(counter)), *options)

    return make
