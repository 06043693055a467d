"""playbooks/adopt_postauth.yml: a fleet of hand-loaded scripts captured as code, then deployed without a write."""

import json
import os
import re
import sys

import pytest
from conftest import REPO, install_server, recap, run_playbook

ADOPT = os.path.join(REPO, "playbooks", "adopt_postauth.yml")
DEPLOY = os.path.join(REPO, "playbooks", "deploy_postauth.yml")
SCRIPTS = os.path.join(REPO, "tests", "integration", "scripts")
SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
SKEY = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
BIND_PW = "live-bind-pw-{{ not a template }}"
CLUSTER = ("as05", "as06")


def source(name):
    with open(os.path.join(SCRIPTS, name)) as handle:
        return handle.read()


DRIFTED = source("hw_registration.py").replace("This device is not the one registered for you.",
                                               "Not your registered device.")
# what each server runs, loaded by hand (as05 and as06 are one cluster: one configuration database)
LIVE = {"as01": source("hw_registration.py"), "as02": source("hw_registration.py"), "as03": source("duo_style.py"),
        "as04": DRIFTED, "as05": source("group_mapper.py"), "as06": None, "as07": None}


@pytest.fixture
def fleet(tmp_path):
    servers = {}
    for name in LIVE:
        options = ("--cluster-db", str(tmp_path / "cluster-db")) if name in CLUSTER else ()
        servers[name] = install_server(tmp_path / "fleet" / name, "--vpn-clients", "2", *options)
    for name, text in LIVE.items():
        if text is not None:
            servers[name].sacli("--key", SCRIPT_KEY, "--value", text, "ConfigPut")
            servers[name].sacli("start")
    servers["as02"].sacli("--key", QUERY_KEY, "--value", "all:FIREFOX=^mozilla firefox", "ConfigPut")
    # the inventory manages two keys; as01 holds one of them otherwise, and a bind password
    for name, server in servers.items():
        server.sacli("--key", "vpn.client.routing.reroute_gw", "--value", "false" if name == "as01" else "true",
                     "ConfigPut")
    servers["as01"].sacli("--key", "auth.ldap.0.bind_pw", "--value", BIND_PW, "ConfigPut")
    hosts = {name: {"sacli_path": server.sacli_path} for name, server in servers.items()}
    for name in CLUSTER:
        hosts[name]["ovpnas_cluster"] = "c1"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ovpnas_target": "fleet",
        "ovpnas_become": False, "ovpnas_sacli_path": "{{ sacli_path }}", "ovpnas_start_wait_timeout": 20,
        "post_auth_python": sys.executable,
        "ovpnas_config_settings": {"vpn.client.routing.reroute_gw": True, "auth.ldap.0.bind_pw": "inventory-pw"}}}}))
    (tmp_path / "vault-pass").write_text("adopt-test-vault-password\n")
    for server in servers.values():
        server.reset_calls()
    return servers, str(inventory)


def files_of(folder):
    found = {}
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            with open(os.path.join(parent, name), "rb") as handle:
                found[os.path.relpath(os.path.join(parent, name), folder)] = handle.read()
    return found


def reset(servers):
    for server in servers.values():
        server.reset_calls()


def test_an_adopted_fleet_deploys_without_a_write(fleet, tmp_path, monkeypatch):
    servers, inventory = fleet
    adopted = tmp_path / "adopted"

    # without a vault password, the script that holds a secret is named, and nothing is written
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    refused = run_playbook(ADOPT, inventory, "-e", "ovpnas_target=fleet", "-e", "ovpnas_adopt_dir=%s" % adopted)
    assert refused.returncode != 0
    assert "cannot adopt without a vault password: as01, as03 hold secrets (SKEY, auth.ldap.0.bind_pw)" in \
        " ".join(refused.stdout.split()), refused.stdout
    assert not adopted.exists()

    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-pass"))
    reset(servers)
    result = run_playbook(ADOPT, inventory, "-e", "ovpnas_target=fleet", "-e", "ovpnas_adopt_dir=%s" % adopted)
    assert result.returncode == 0, result.stdout + result.stderr
    # read-only, one read per server
    for name, server in servers.items():
        assert server.commands() == ["ConfigQuery"], name

    # the secret is only in the vault, encrypted; the script that held it is a template that reads it from there
    for name, data in files_of(adopted).items():
        assert SKEY.encode() not in data and b"live-bind-pw" not in data, name
    vault = (adopted / "group_vars" / "all" / "adopted_secrets.yml").read_text()
    assert vault.startswith("$ANSIBLE_VAULT;1.1;AES256")
    report = (adopted / "REPORT.md").read_text()
    files = sorted(os.listdir(adopted / "files"))
    assert len([f for f in files if f.startswith("script-")]) == 4 and len([f for f in files if "appver" in f]) == 1
    templates = [f for f in files if f.endswith(".py.j2")]
    assert len(templates) == 1
    assert "SKEY = {% endraw %}{{ ovpnas_adopt_secrets[" in (adopted / "files" / templates[0]).read_text()
    host_vars = {name: (adopted / "host_vars" / ("%s.yml" % name)).read_text() for name in LIVE}
    assert "post_auth_state: absent" in host_vars["as07"]

    def source_of(name):
        return re.search(r"post_auth_source: (.*)", host_vars[name]).group(1)

    assert source_of("as01") == source_of("as02") != source_of("as04")
    assert "post_auth_source_sha256: " in host_vars["as03"] and templates[0] in host_vars["as03"]
    # the drifted copy is named, with the line that differs; the cluster's nodes run one script
    assert "drifted copy of" in report and "+        authret[\"client_reason\"] = \"Not your registered device.\"" \
        in report
    assert source_of("as05") == source_of("as06")
    assert "by hand" in report and "as01, as02" in report

    # the first deploy from the adopted folder: no write and no start on any server
    reset(servers)
    deploy = run_playbook(DEPLOY, inventory, "-i", str(adopted / "hosts.yml"), "-e", "ovpnas_target=fleet")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    hosts = recap(deploy.stdout)
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in hosts.values()), deploy.stdout
    for name, server in servers.items():
        commands = server.commands()
        assert not [c for c in commands if c in WRITES] and "start" not in commands, (name, commands)
        assert server.config().get(SCRIPT_KEY) == (LIVE[name] if name != "as06" else LIVE["as05"]), name
    assert SKEY not in deploy.stdout + deploy.stderr and "live-bind-pw" not in deploy.stdout + deploy.stderr
    # the keys as the servers hold them: as01's own, and the inventory's where a server holds it already
    assert servers["as01"].config()["auth.ldap.0.bind_pw"] == BIND_PW
    assert servers["as01"].config()["vpn.client.routing.reroute_gw"] == "false"
    assert "auth.ldap.0.bind_pw" not in servers["as02"].config()
    assert "| as01 | `vpn.client.routing.reroute_gw` | `true` | `false` |" in report
    # the folder is an inventory source Ansible reads without a complaint
    assert "Unable to parse" not in deploy.stderr and "Failed to parse" not in deploy.stderr, deploy.stderr

    # adopting again replaces the folder with the same content
    before = files_of(adopted)
    again = run_playbook(ADOPT, inventory, "-e", "ovpnas_target=fleet", "-e", "ovpnas_adopt_dir=%s" % adopted)
    assert again.returncode == 0, again.stdout
    after = files_of(adopted)
    # (the vault file is encrypted with a new salt each time)
    vault_file = os.path.join("group_vars", "all", "adopted_secrets.yml")
    assert before.pop(vault_file) != after.pop(vault_file) and before == after
