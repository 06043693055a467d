"""The pipelines of docs/gitops: their commands, run as they are written, against the example inventory.

The example's six servers are emulated under their own names (host variables in a copy of the
inventory point them at emulator roots); every `ansible-inventory` and `ansible-playbook`
command of each pipeline runs with the variables the pipeline sets, from a folder laid out as
docs/docsite/rst/gitops.rst says.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ANSIBLE_BIN, REPO, install_server

GITOPS = os.path.join(REPO, "docs", "gitops")
VAULT_PASSWORD = "ovpnas-example"
SECRETS = ("canary-example-pw", "ldap-example-bind-pw", "exampleexampleexample", "partner-example-token",
           "JBSWY3DPEHPK3PXP")
# what only sets a runner up (or lints the pipeline's own repository): not run here
SETUP = re.compile(r"^(pip |ansible-galaxy |printf |install |yamllint |ansible-lint$)")
SCRIPT_KEY = "auth.module.post_auth_script"


def github_jobs():
    with open(os.path.join(GITOPS, "github-actions.yml")) as handle:
        workflow = yaml.safe_load(handle)
    jobs = {}
    for name, job in workflow["jobs"].items():
        commands = []
        for step in job["steps"]:
            commands += [line.strip() for line in step.get("run", "").splitlines() if line.strip()]
        jobs[name] = commands
    return workflow["env"], jobs


def gitlab_jobs():
    with open(os.path.join(GITOPS, "gitlab-ci.yml")) as handle:
        pipeline = yaml.safe_load(handle)
    setup = pipeline["default"]["before_script"]
    jobs = {name: setup + job["script"] + job.get("after_script", [])
            for name, job in pipeline.items() if isinstance(job, dict) and "script" in job}
    return pipeline["variables"], jobs


@pytest.fixture
def repository(tmp_path):
    """A pipeline's repository: the example inventory as inventories/production, its servers emulated."""
    repo = tmp_path / "repo"
    inventory = repo / "inventories" / "production"
    shutil.copytree(os.path.join(REPO, "inventories", "example"), str(inventory))
    # the lab's own script, beside the inventory
    shutil.copytree(os.path.join(REPO, "inventories", "scripts"), str(repo / "inventories" / "scripts"))
    (repo / "rollouts").mkdir()
    shutil.copy(os.path.join(REPO, "rollouts", "example.yml"), str(repo / "rollouts" / "production.yml"))
    (repo / ".vault-password").write_text(VAULT_PASSWORD + "\n")
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["openvpn_as"]["children"]
    office = yaml.safe_load((inventory / "group_vars" / "office.yml").read_text())["ovpnas_config_settings"]
    servers = {}
    for group, members in hosts.items():
        for name in members["hosts"]:
            options = ("--cluster-db", str(tmp_path / "office-db")) if group == "office" else ()
            server = servers[name] = install_server(tmp_path / "fleet" / name, *options)
            server.set_password("vpn-canary", "canary-example-pw")
            server.reset_calls()
            overlay = {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ovpnas_become": False, "ovpnas_sacli_path": server.sacli_path, "post_auth_python": sys.executable,
                # no client logs in to these servers here: nothing to soak (test_soak.py soaks real traffic)
                "rollout_soak": 0,
            }
            if group == "office":
                # no directory here either: the canary logs in with the local method (the script is the same)
                overlay["ovpnas_config_settings"] = dict(office, **{"auth.module.type": "local"})
            if group == "partners":
                # the partners' authentication endpoint does not exist here: the gate checks the services only
                overlay["rollout_canary_logins"] = []
            (inventory / "host_vars").mkdir(exist_ok=True)
            (inventory / "host_vars" / ("%s.yml" % name)).write_text(json.dumps(overlay))
    return repo, servers


def run(repo, variables, command):
    env = dict(os.environ, **{k: str(v) for k, v in variables.items()})
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH=ANSIBLE_BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", command], cwd=str(repo), env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def ansible_commands(commands):
    assert all(SETUP.match(c) or c.startswith(("ansible-playbook ", "ansible-inventory ")) for c in commands), commands
    return [c for c in commands if not SETUP.match(c)]


@pytest.mark.parametrize("pipeline", [github_jobs, gitlab_jobs], ids=["github", "gitlab"])
def test_pipeline_commands(repository, pipeline):
    repo, servers = repository
    variables, jobs = pipeline()
    assert set(jobs) == {"check", "rollout", "promote", "audit"}

    # a pull request: nothing changes on any server; the report says every server drifts
    for command in ansible_commands(jobs["check"]):
        result = run(repo, variables, command)
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
        assert not any(secret in result.stdout + result.stderr for secret in SECRETS), command
    for name, server in servers.items():
        assert {"ConfigPut", "ConfigDel", "UserPropPut", "start"}.isdisjoint(server.commands()), name
    report = json.loads((repo / "audit-report" / "drift.json").read_text())
    assert [h["status"] for h in report["hosts"]] == ["drift"] * 6
    assert report["inventory"] == "inventories/production"

    # the merge: the canary stage, then the audit after it; the canary alone is changed
    for command in ansible_commands(jobs["rollout"]):
        result = run(repo, variables, command)
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
        assert not any(secret in result.stdout + result.stderr for secret in SECRETS), command
        if "deploy_postauth" in command:
            assert "Promote to continue: run the same rollout again with -e ovpnas_stage=promote" in result.stdout
    # (the canary, vpn-office1, is the writer of a cluster: both its nodes are started)
    started = sorted(name for name, server in servers.items() if "start" in server.commands())
    assert started == ["vpn-office1.example.com", "vpn-office2.example.com"]
    assert all(servers[name].commands().count("start") == 1 for name in started)
    # the manual promotion: the others, once each; the canary is read once and left alone
    for command in ansible_commands(jobs["promote"]):
        result = run(repo, variables, command)
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
        assert not any(secret in result.stdout + result.stderr for secret in SECRETS), command
    for name, server in servers.items():
        assert server.commands().count("start") == 1, name
    features = {name: re.search(r"# ovpnas.fleet.features: (.*)", s.config()[SCRIPT_KEY]).group(1)
                for name, s in servers.items() if name != "vpn-lab.example.com"}
    assert features["vpn-office1.example.com"] == "group_mapping, device_pinning, host_checker, duo"
    assert features["vpn-branch1.example.com"] == "group_mapping, host_checker, challenge"
    assert features["vpn-partners.example.com"] == "custom_auth, group_mapping, host_checker"
    # the lab runs its own script, as it is in the repository; the canary laptop's login registered its device
    with open(os.path.join(REPO, "inventories", "scripts", "device_registration.py")) as handle:
        assert handle.read() in servers["vpn-lab.example.com"].config()[SCRIPT_KEY]
    assert servers["vpn-lab.example.com"].userprops()["vpn-canary"]["pvt_hw_addr"] == "00:11:22:33:44:99"

    # the schedule: in sync passes; a hand edit fails the audit and names the server
    for command in ansible_commands(jobs["audit"]):
        assert run(repo, variables, command).returncode == 0, command
    edited = servers["vpn-branch2.example.com"]
    script = edited.config()[SCRIPT_KEY]
    edited.sacli("--key", SCRIPT_KEY, "--value", script.replace("SUCCEED", "SUCCEEd", 1), "ConfigPut")
    for command in ansible_commands(jobs["audit"]):
        result = run(repo, variables, command)
        assert result.returncode != 0 and "drift on vpn-branch2.example.com" in " ".join(result.stdout.split())
