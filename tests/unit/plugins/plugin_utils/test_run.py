"""The token that names a controller run: the boot, the main process's id and its start time."""

import os
import socket

import pytest

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.run import controller_run

BOOT = "5d0c2a9e-0c57-4b8e-9d2c-3f1c6b1a7e42"


def fake_proc(tmp_path, stat, boot=BOOT):
    (tmp_path / str(os.getppid())).mkdir()
    (tmp_path / str(os.getppid()) / "stat").write_text(stat)
    if boot is not None:
        (tmp_path / "sys" / "kernel" / "random").mkdir(parents=True)
        (tmp_path / "sys" / "kernel" / "random" / "boot_id").write_text(boot + "\n")
    return str(tmp_path)


def stat_line(start):
    # a command name with spaces and parentheses does not shift the fields
    fields = ["S"] + [str(n) for n in range(4, 22)] + [start] + ["0"] * 30
    return "%d (ansible (main) x) %s\n" % (os.getppid(), " ".join(fields))


def test_the_boot_the_parent_process_and_its_start_time(tmp_path):
    token = controller_run(fake_proc(tmp_path, stat_line("123456")))
    assert token == "%s:%s:%d:123456" % (socket.gethostname(), BOOT, os.getppid())


def test_no_token_where_they_cannot_be_read(tmp_path):
    assert controller_run(str(tmp_path / "none")) is None
    assert controller_run(fake_proc(tmp_path, "%d (short) S 1\n" % os.getppid())) is None


def test_no_token_without_the_boot_id(tmp_path):
    assert controller_run(fake_proc(tmp_path, stat_line("123456"), boot=None)) is None


def test_one_run_one_token_on_this_machine():
    if not os.path.exists("/proc/sys/kernel/random/boot_id"):
        pytest.skip("no /proc on this machine")
    token = controller_run()
    assert token == controller_run() and token.split(":")[2] == str(os.getppid())
