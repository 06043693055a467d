"""Which module files of earlier runs are leftovers: this collection's, old, and used by no process."""

import base64
import io
import os
import subprocess
import sys
import time
import zipfile

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils.leftovers import MIN_AGE, ours, stale_module_folders


def wrapper(names, style):
    """An Ansible module file with a payload holding ``names``, as ansible-core 2.17/2.18 or 2.19 writes it."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name in names:
            archive.writestr(name, "# module\n")
    encoded = base64.b64encode(data.getvalue()).decode("ascii")
    if style == "2.17":
        return "ZIPDATA = %r\nANSIBALLZ_PARAMS = '{\"ANSIBLE_MODULE_ARGS\": {\"secret\": \"s3cret\"}}'\n" % encoded
    return "_ansiballz_main(\nparams='{\"ANSIBLE_MODULE_ARGS\": {}}',\nzip_data=%r,\n)\n" % encoded


def leftover(top, name, names, style="2.19", age=MIN_AGE + 60, module="server_state"):
    folder = top / ("ansible-tmp-1796556042.0236719-%s-78101721" % name)
    folder.mkdir(mode=0o700)
    path = folder / ("AnsiballZ_%s.py" % module)
    path.write_text(wrapper(names, style))
    then = time.time() - age
    os.utime(path, (then, then))
    return str(folder)


OURS = ["ansible/__init__.py", "ansible_collections/ovpnas/fleet/plugins/modules/server_state.py"]
THEIRS = ["ansible/__init__.py", "ansible_collections/community/general/plugins/modules/server_state.py"]


@pytest.mark.parametrize("style", ["2.17", "2.19"])
def test_a_module_of_this_collection_is_told_from_another_ones(tmp_path, style):
    ours_folder = leftover(tmp_path, "1", OURS, style)
    theirs_folder = leftover(tmp_path, "2", THEIRS, style)
    assert ours(os.path.join(ours_folder, "AnsiballZ_server_state.py"))
    assert not ours(os.path.join(theirs_folder, "AnsiballZ_server_state.py"))
    assert stale_module_folders([str(tmp_path)]) == [ours_folder]


def test_a_fresh_folder_or_one_a_process_uses_stays(tmp_path):
    fresh = leftover(tmp_path, "1", OURS, age=5)
    used = leftover(tmp_path, "2", OURS)
    working = leftover(tmp_path, "3", OURS)
    stale = leftover(tmp_path, "4", OURS)
    # what a running task looks like: its module file on a command line, or its folder as a working folder
    holders = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                 os.path.join(used, "AnsiballZ_server_state.py")]),
               subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=working)]
    try:
        assert stale_module_folders([str(tmp_path)]) == [stale]
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert sorted(stale_module_folders([str(tmp_path)])) == sorted([used, working, stale])
    assert fresh not in stale_module_folders([str(tmp_path)])


def test_only_ansible_tmp_folders_with_module_files_count(tmp_path):
    other = tmp_path / "ansible-local-1234abcd"
    other.mkdir()
    (other / "AnsiballZ_server_state.py").write_text(wrapper(OURS, "2.19"))
    os.utime(other / "AnsiballZ_server_state.py", (0, 0))
    empty = tmp_path / "ansible-tmp-1796556042.02-1-2"
    empty.mkdir()
    garbled = leftover(tmp_path, "5", OURS)
    with open(os.path.join(garbled, "AnsiballZ_server_state.py"), "w") as handle:
        handle.write("zip_data='not base64 !'\n")
    os.utime(os.path.join(garbled, "AnsiballZ_server_state.py"), (0, 0))
    assert stale_module_folders([str(tmp_path), str(tmp_path / "missing")]) == []


def test_nothing_is_a_leftover_where_processes_cannot_be_read(tmp_path):
    leftover(tmp_path, "1", OURS)
    assert stale_module_folders([str(tmp_path)], proc=str(tmp_path / "no-proc")) == []
