"""An upgrade of the tooling restarts no server: the script's identity is what it does, not what wrote it.

A fleet converged by this checkout is run again, as an administrator who keeps the tooling current
would: with a new release of the collection (every plugin file changed, an import reordered, the
version bumped) and from controllers with the other ansible-core releases the collection supports
(those of `make compat`). Each run must cost one read per server and write and start nothing, and
the drift audit must find every server in sync throughout. A release that does change the script
is rolled out as before.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, recap, write_inventory

SCRIPT_KEY = "auth.module.post_auth_script"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
# the releases of `make compat` (the Makefile's CORE_VERSIONS): each a controller of its own
with open(os.path.join(REPO, "Makefile")) as _makefile:
    CORE_VERSIONS = re.search(r"^CORE_VERSIONS := (.*)$", _makefile.read(), re.M).group(1).split()
VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "ovpnas_config_settings": {"host.name": "{{ inventory_hostname }}.vpn.example.com"},
    "host_checker_apps": [
        {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    ],
    "post_auth_python": sys.executable,
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_sources": ["saml"],
    "post_auth_group_mapping_rules": [{"name": "admins", "saml_groups": ["vpn-admins"], "group": "admins"}],
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "auto",
    "post_auth_host_checker": True,
    "post_auth_policy_tests": [
        {"name": "an admin", "user": "alice", "auth_method": "saml", "saml_attr": {"groups": ["vpn-admins"]},
         "client": {"hw_addr": "00:11:22:33:44:55", "platform": "mac", "info": {"UV_APPVER_FIREFOX": "128.0"}},
         "expect": {"status": "SUCCEED", "group": "admins"}},
    ],
}


def copy_collection(destination):
    """The collection as a release installs it: its tracked files under DEST/ansible_collections/ovpnas/fleet."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    top = os.path.join(destination, "ansible_collections", "ovpnas", "fleet")
    for name in tracked.stdout.split("\0"):
        source = os.path.join(REPO, name)
        if not name or name.startswith((".", "tests/", "bench/", "docs/")) or not os.path.isfile(source):
            continue
        target = os.path.join(top, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
    return top


def new_release(top, version="9.8.7"):
    """A release that renders the same scripts: every plugin file touched, an import reordered, a new version."""
    touched = 0
    for folder, _dirs, names in os.walk(os.path.join(top, "plugins")):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "a") as handle:
                    handle.write("\n# released as %s\n" % version)
                touched += 1
    compose = os.path.join(top, "plugins", "plugin_utils", "compose.py")
    with open(compose) as handle:
        text = handle.read()
    assert "import hashlib\nimport io\n" in text
    with open(compose, "w") as handle:
        handle.write(text.replace("import hashlib\nimport io\n", "import io\nimport hashlib\n"))
    versioned = ((("galaxy.yml",), r"^version: .*$"),
                 (("roles", "post_auth", "vars", "main.yml"), r"^__post_auth_version: .*$"))
    for parts, pattern in versioned:
        path = os.path.join(top, *parts)
        with open(path) as handle:
            text = handle.read()
        with open(path, "w") as handle:
            field = pattern.split(":", maxsplit=1)[0].lstrip("^")
            handle.write(re.sub(pattern, field + ": " + version, text, flags=re.M))
    return touched


def ansible_playbook(bin_folder, playbook, inventory, extra, collections, home, *options):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_HOME=home, ANSIBLE_FORKS="10", ANSIBLE_NOCOLOR="1",
               PATH=bin_folder + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(bin_folder, "ansible-playbook"), "-i", inventory, playbook, "-e", extra,
                           *options], cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc


def core_bin(version):
    """The bin folder of a venv with that ansible-core (tests/bin/core-venv makes it once, as `make compat` does)."""
    proc = subprocess.run([os.path.join(REPO, "tests", "bin", "core-venv"), version], capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.fixture
def converged(make_fleet, tmp_path):
    """Three servers, converged by this checkout with the ansible-core of .venv."""
    fleet = make_fleet(3)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(VARIABLES))
    run = dict(inventory=inventory, extra="@%s" % extra, collections=os.path.join(REPO, ".collections"),
               home=str(tmp_path / "ansible-home"))
    result = deploy(os.path.dirname(sys.executable), run)
    assert all(r["changed"] > 0 for r in recap(result.stdout).values()), result.stdout
    for server in fleet.values():
        assert server.commands().count("start") == 1
        server.reset_calls()
    return fleet, run


def deploy(bin_folder, run, collections=None, home=None, playbook_top=REPO):
    return ansible_playbook(bin_folder, os.path.join(playbook_top, "playbooks", "deploy_postauth.yml"),
                            run["inventory"], run["extra"], collections or run["collections"], home or run["home"])


def audit(bin_folder, run, tmp_path, name, collections=None, home=None, playbook_top=REPO):
    folder = tmp_path / ("audit-" + name)
    ansible_playbook(bin_folder, os.path.join(playbook_top, "playbooks", "audit_postauth.yml"), run["inventory"],
                     run["extra"], collections or run["collections"], home or run["home"],
                     "-e", "ovpnas_audit_dir=%s" % folder)
    return json.loads((folder / "drift.json").read_text())


def assert_one_read_and_nothing_else(fleet, result, what):
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap(result.stdout).values()), what + result.stdout
    assert "Nothing to roll out: 3 of 3 servers are as the inventory says" in result.stdout, what
    for name, server in fleet.items():
        assert server.commands() == ["ConfigQuery"], (what, name, server.commands())
        server.reset_calls()


def assert_in_sync(fleet, report, what):
    assert report["totals"]["in_sync"] == len(fleet), (what, report["hosts"])
    for server in fleet.values():
        assert [c for c in server.commands() if c in WRITES or c == "start"] == [], what
        server.reset_calls()


def test_a_new_release_of_the_collection_writes_and_starts_nothing(converged, tmp_path):
    fleet, run = converged
    live = {name: server.config()[SCRIPT_KEY] for name, server in fleet.items()}
    for server in fleet.values():
        server.reset_calls()
    collections = str(tmp_path / "release")
    top = copy_collection(collections)
    assert new_release(top) > 30, "every plugin file of the release is touched"
    venv_bin = os.path.dirname(sys.executable)
    # a controller that never rendered these scripts (an empty cache, as a pipeline's runner has)
    home = str(tmp_path / "new-controller")
    result = deploy(venv_bin, run, collections=collections, home=home, playbook_top=top)
    assert_one_read_and_nothing_else(fleet, result, "the new release: ")
    # the release's controller rendered each distinct script once, and keeps its identity
    assert len(os.listdir(os.path.join(home, "ovpnas_fleet", "identities"))) == 1
    # the servers keep the scripts the earlier release wrote, header and all
    assert {name: server.config()[SCRIPT_KEY] for name, server in fleet.items()} == live
    for server in fleet.values():
        server.reset_calls()
    assert all("\n# ovpnas.fleet.version: 0.1.0\n" in text for text in live.values())
    assert_in_sync(fleet, audit(venv_bin, run, tmp_path, "release", collections, home, top), "the release's audit: ")
    assert_in_sync(fleet, audit(venv_bin, run, tmp_path, "checkout"), "the checkout's audit: ")

    # a release that changes what the script does rolls it out, canary first, as before
    frame = os.path.join(top, "templates", "post_auth", "frame.py.j2")
    with open(frame) as handle:
        text = handle.read()
    with open(frame, "w") as handle:
        handle.write(text.replace("Write one line to the Access Server log.", "Write one line to the log."))
    result = deploy(venv_bin, run, collections=collections, home=home, playbook_top=top)
    assert all(r["failed"] == 0 for r in recap(result.stdout).values()), result.stdout
    for name, server in fleet.items():
        commands = server.commands()
        server.reset_calls()
        assert commands.count("ConfigQuery") == 3 and commands.count("start") == 1, (name, commands)
        assert [c for c in commands if c in WRITES] == ["ConfigPut"], (name, commands)
        assert "\n# ovpnas.fleet.version: 9.8.7\n" in server.config()[SCRIPT_KEY]


@pytest.mark.parametrize("version", CORE_VERSIONS)
def test_another_ansible_core_writes_and_starts_nothing(converged, tmp_path, version):
    fleet, run = converged
    bin_folder = core_bin(version)
    home = str(tmp_path / ("controller-%s" % version))
    result = deploy(bin_folder, run, home=home)
    assert_one_read_and_nothing_else(fleet, result, "ansible-core %s: " % version)
    assert_in_sync(fleet, audit(bin_folder, run, tmp_path, version, home=home), "ansible-core %s: " % version)
