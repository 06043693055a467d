"""The token that names a controller run: the main process's id and start time."""

import os
import socket

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.run import controller_run


def fake_proc(tmp_path, pid, stat):
    folder = tmp_path / str(pid)
    folder.mkdir()
    (folder / "stat").write_text(stat)
    return str(tmp_path)


def test_the_parent_process_and_its_start_time(tmp_path):
    # a command name with spaces and parentheses does not shift the fields
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["123456"] + ["0"] * 30
    proc = fake_proc(tmp_path, os.getppid(), "%d (ansible (main) x) %s\n" % (os.getppid(), " ".join(fields)))
    assert controller_run(proc) == "%s:%d:123456" % (socket.gethostname(), os.getppid())


def test_no_token_where_the_start_time_cannot_be_read(tmp_path):
    assert controller_run(str(tmp_path)) is None
    assert controller_run(fake_proc(tmp_path, os.getppid(), "%d (short) S 1\n" % os.getppid())) is None


def test_one_run_one_token_and_the_real_proc():
    token = controller_run()
    if os.path.exists("/proc/self/stat"):
        assert token == controller_run() and token.split(":")[1] == str(os.getppid())
