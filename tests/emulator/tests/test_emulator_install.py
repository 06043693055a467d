"""The emulator's installer: the layout it creates, what it refuses, relocation and the agent socket."""

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[1] / "install"


def install(root, *options):
    return subprocess.run([str(INSTALL), str(root), *options], capture_output=True, text=True, timeout=60, check=False)


def tool(root, name, *args):
    """Run scripts/NAME of an installed root, failing the test on a non-zero exit."""
    proc = subprocess.run(
        [str(Path(root, "scripts", name)), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def query(db_path, sql, *params):
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def profile_items(db_path, profile):
    return dict(query(
        db_path,
        "SELECT config.name, config.value FROM config JOIN profile ON profile.id = config.profile_id"
        " WHERE profile.name = ?",
        profile,
    ))


def test_layout(tmp_path):
    root = tmp_path / "as"
    proc = install(root)

    assert proc.returncode == 0, proc.stderr
    for name in ("sacli", "authcli"):
        path = root / "scripts" / name
        assert path.is_file() and os.access(str(path), os.X_OK), name
    conf = (root / "etc" / "as.conf").read_text().splitlines()
    assert "config_db=sqlite:///~/db/config.db" in conf
    assert "user_prop_db=sqlite:///~/db/userprop.db" in conf
    assert "sa.sock=~/sock/sagent" in conf
    assert (root / "log").is_dir()


@pytest.mark.parametrize("db, profiles", [
    ("config.db", {"Default", "_INTERNAL"}),
    ("userprop.db", {"__DEFAULT__", "openvpn"}),
])
def test_databases_are_sqlite_with_profile_and_config_tables(tmp_path, db, profiles):
    root = tmp_path / "as"
    install(root)
    path = root / "etc" / "db" / db

    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    tables = {name for (name,) in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"profile", "config"} <= tables
    columns = [row[1] for row in query(path, "PRAGMA table_info(config)")]
    assert columns == ["profile_id", "name", "value"]
    assert {name for (name,) in query(path, "SELECT name FROM profile")} == profiles


def test_configquery_reads_the_default_profile_of_config_db(tmp_path):
    root = tmp_path / "as"
    install(root, "--hostname", "vpn.example.com", "--version", "2.13.1")

    stored = profile_items(root / "etc" / "db" / "config.db", "Default")
    assert json.loads(tool(root, "sacli", "ConfigQuery")) == stored
    assert stored["host.name"] == "vpn.example.com"
    assert stored["upgrade.current_version"] == "2.13.1"
    assert tool(root, "sacli", "Version") == "2.13.1\n"


@pytest.mark.parametrize("occupant", ["file inside", "plain file"])
def test_refuses_a_non_empty_root(tmp_path, occupant):
    root = tmp_path / "as"
    if occupant == "file inside":
        root.mkdir()
        precious = root / "precious.txt"
    else:
        precious = root
    precious.write_text("keep me\n")

    proc = install(root)

    assert proc.returncode != 0
    assert "refusing" in proc.stderr
    assert precious.read_text() == "keep me\n"
    if root.is_dir():
        assert sorted(os.listdir(str(root))) == ["precious.txt"]


def test_installs_into_an_empty_existing_folder(tmp_path):
    root = tmp_path / "as"
    root.mkdir()

    proc = install(root)

    assert proc.returncode == 0, proc.stderr
    assert json.loads(tool(root, "sacli", "ConfigQuery"))["auth.module.type"] == "local"


@pytest.mark.parametrize("relocate", [shutil.move, shutil.copytree], ids=["moved", "copied"])
def test_tools_find_their_databases_after_relocation(tmp_path, relocate):
    first, second = tmp_path / "first", tmp_path / "elsewhere" / "second"
    install(first)
    tool(first, "sacli", "ConfigQuery")  # leaves __pycache__ and a call log behind, as real use does
    first_calls = (first / "log" / "calls.jsonl").read_text()
    second.parent.mkdir()
    relocate(str(first), str(second))

    tool(second, "sacli", "--key", "relocated.key", "--value", "yes", "ConfigPut")
    tool(second, "sacli", "--user", "carol", "--new_pass", "pw-carol", "SetLocalPassword")
    auth = tool(second, "authcli", "--user", "carol", "--pass", "pw-carol")

    assert profile_items(second / "etc" / "db" / "config.db", "Default")["relocated.key"] == "yes"
    assert "  status : SUCCEED" in auth.splitlines()
    assert len((second / "log" / "calls.jsonl").read_text().splitlines()) == 4
    if first.exists():
        assert "relocated.key" not in profile_items(first / "etc" / "db" / "config.db", "Default")
        assert (first / "log" / "calls.jsonl").read_text() == first_calls


def test_agent_socket_follows_stop_and_start(tmp_path):
    root = tmp_path / "as"
    install(root)
    sock = root / "etc" / "sock" / "sagent"

    assert sock.exists()
    stopped = json.loads(tool(root, "sacli", "stop"))
    assert not sock.exists()
    assert set(stopped["service_status"].values()) == {"off"}
    assert set(json.loads(tool(root, "sacli", "status"))["service_status"].values()) == {"off"}
    tool(root, "sacli", "start")
    assert sock.exists()
    assert set(json.loads(tool(root, "sacli", "status"))["service_status"].values()) == {"on"}


def test_stopped_option_leaves_the_services_stopped(tmp_path):
    root = tmp_path / "as"
    install(root, "--stopped")
    sock = root / "etc" / "sock" / "sagent"

    assert not sock.exists()
    assert set(json.loads(tool(root, "sacli", "status"))["service_status"].values()) == {"off"}
    tool(root, "sacli", "start")
    assert sock.exists()


PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
PYENV_PYTHONS = sorted(
    glob.glob(os.path.join(PYENV_ROOT, "versions", "3.*", "bin", "python3")),
    key=lambda p: [int(n) for n in re.findall(r"\d+", p.split("/versions/")[1].split("/")[0])],
)


@pytest.mark.parametrize("python", PYENV_PYTHONS or ["python3"], ids=lambda p: p.split("/versions/")[-1][:5])
def test_runs_on_every_python_3(tmp_path, python):
    """Access Server runs scripts on the platform's Python 3: the emulator must run on 3.6 and up."""
    root = tmp_path / "as"
    env = dict(os.environ, PYTHON=python)
    proc = subprocess.run([str(INSTALL), str(root), "--python", python], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\nfrom pyovpn.plugin import *\n\n"
        "def post_auth(authcred, attributes, authret, info):\n"
        "    authret['client_reason'] = 'python %d.%d' % sys.version_info[:2]\n"
        "    return authret, {'seen': 'yes'}\n"
    )
    tool(root, "sacli", "--key", "auth.module.post_auth_script", "--value_file=%s" % script, "ConfigPut")
    assert json.loads(tool(root, "sacli", "status"))["errors"] == {}
    assert "RunStart" in tool(root, "sacli", "start")
    tool(root, "sacli", "--user", "u1", "--new_pass", "pw", "SetLocalPassword")
    out = tool(root, "authcli", "--user", "u1", "--pass", "pw")
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert "  status : SUCCEED" in out
    assert "  client_reason : python %s" % version in out
    assert json.loads(tool(root, "sacli", "--pfilt", "u1", "UserPropGet"))["u1"]["seen"] == "yes"


def test_cluster_db_option_points_as_conf_at_the_shared_databases(tmp_path):
    root, shared = tmp_path / "as", tmp_path / "shared"
    proc = install(root, "--cluster-db", str(shared))

    assert proc.returncode == 0, proc.stderr
    conf = (root / "etc" / "as.conf").read_text().splitlines()
    assert "config_db=sqlite:///%s/config.db" % shared in conf
    assert "user_prop_db=sqlite:///%s/userprop.db" % shared in conf
    assert str(shared).startswith("/") and "sa.sock=~/sock/sagent" in conf
    assert not (root / "etc" / "db" / "config.db").exists()
    stored = profile_items(shared / "config.db", "Default")
    assert json.loads(tool(root, "sacli", "ConfigQuery")) == stored
    assert stored["host.name"] == "as"
    assert {name for (name,) in query(shared / "userprop.db", "SELECT name FROM profile")} == {"__DEFAULT__", "openvpn"}


def test_cluster_db_option_takes_a_relative_folder(tmp_path):
    root = tmp_path / "as"
    proc = subprocess.run([str(INSTALL), str(root), "--cluster-db", "shared"], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)

    assert proc.returncode == 0, proc.stderr
    assert "config_db=sqlite:///%s/config.db" % (tmp_path / "shared") in (root / "etc" / "as.conf").read_text()
    assert json.loads(tool(root, "sacli", "ConfigQuery"))["auth.module.type"] == "local"


@pytest.mark.parametrize("options, running", [([], True), (["--stopped"], False)], ids=["running", "stopped"])
def test_standby_option_leaves_no_agent_socket(tmp_path, options, running):
    root = tmp_path / "as"
    proc = install(root, "--standby", *options)

    assert proc.returncode == 0, proc.stderr
    assert not (root / "etc" / "sock" / "sagent").exists()
    settings = json.loads((root / "etc" / "emulator" / "settings.json").read_text())
    assert settings["standby"] is True
    state_file = root / "etc" / "emulator" / "state.json"
    assert (state_file.exists() and json.loads(state_file.read_text())["running"]) is running


def test_vpn_clients_option_must_be_a_count(tmp_path):
    proc = install(tmp_path / "as", "--vpn-clients", "-1")

    assert proc.returncode != 0
    assert "--vpn-clients" in proc.stderr
    assert not (tmp_path / "as").exists()


@pytest.mark.parametrize("python", PYENV_PYTHONS or ["python3"], ids=lambda p: p.split("/versions/")[-1][:5])
def test_cluster_standby_and_vpnsummary_run_on_every_python_3(tmp_path, python):
    env = dict(os.environ, PYTHON=python)
    roots = [tmp_path / "as1", tmp_path / "as2"]
    for root, extra in zip(roots, ([], ["--standby"])):
        proc = subprocess.run([str(INSTALL), str(root), "--python", python, "--cluster-db", str(tmp_path / "db"),
                               "--vpn-clients", "4", *extra], capture_output=True, text=True, timeout=60, env=env,
                              check=False)
        assert proc.returncode == 0, proc.stderr
    procs = [subprocess.Popen([str(roots[0] / "scripts" / "sacli"), "-u", "u1", "-k", "k%d" % n, "-v", "v",
                               "UserPropPut"], stderr=subprocess.PIPE) for n in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6, [p.stderr.read() for p in procs]
    for proc in procs:
        proc.stderr.close()
    standby = subprocess.run([str(roots[1] / "scripts" / "sacli"), "ConfigQuery"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert (standby.returncode, standby.stdout) == (1, "")
    assert "could not connect to the Access Server agent" in standby.stderr

    settings_file = roots[1] / "etc" / "emulator" / "settings.json"
    settings_file.write_text(json.dumps(dict(json.loads(settings_file.read_text()), standby=False)))

    assert len(json.loads(tool(roots[1], "sacli", "--pfilt", "u1", "UserPropGet"))["u1"]) == 6
    assert json.loads(tool(roots[1], "sacli", "VPNSummary")) == {"n_clients": 4}
