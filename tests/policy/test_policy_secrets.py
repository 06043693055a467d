"""Secrets of the post_auth role never show: not in verbose output, diffs, logs or staged files.

One inventory of three emulated servers, the secrets in the extra-vars file (as a vault would pass
them), the switches in host variables:
- as01: Duo (secret key inline) and custom authentication over HTTPS (bearer token inline);
- as02: custom authentication with PBKDF2 hashes and a TOTP challenge (seeds pushed as user properties);
- as03: the same hashes and a challenge checked by an HTTPS endpoint (bearer token inline).
The role runs three times: --check --diff -vvv on the fresh servers, --diff -vvv, then --diff -vvv
again on as01 after the Duo secret key changed. Each run gets private temporary folders (TMPDIR,
ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TMP) so that what it leaves behind can be searched.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from ansible.module_utils.common.parameters import remove_values
from policy import PLAYBOOK, PYTHONS, REPO, SCRIPT_KEY, Log, fleet, recap, user_props
from policy_mfa import MFA_MESSAGES, SECRET_MARKER, pbkdf2_hash, random_base32, random_token, totp

from ansible_collections.ovpnas.fleet.plugins.modules import sacli_info

# how Ansible shows a value of no_log_values in a result
HIDDEN = remove_values("secret", {"secret"})

KEY_OLD = random_token("duoskeyold")
KEY_NEW = random_token("duoskeynew")
AUTH_TOKEN = random_token("authtoken")
CHALLENGE_TOKEN = random_token("challengetoken")
HASHED_PASSWORD = random_token("hashed-password")
HASH = pbkdf2_hash(HASHED_PASSWORD, random_token("salt"))
SEED_ALICE = random_base32()
SEED_BOB = random_base32()
SECRETS = {
    "the old Duo secret key": KEY_OLD,
    "the new Duo secret key": KEY_NEW,
    "the custom authentication token": AUTH_TOKEN,
    "the challenge token": CHALLENGE_TOKEN,
    "the PBKDF2 hash": HASH,
    "the key of the PBKDF2 hash": HASH.rsplit("$", 1)[1],
    "the salt of the PBKDF2 hash": HASH.split("$")[2],
    "alice's TOTP seed": SEED_ALICE,
    "bob's TOTP seed": SEED_BOB,
    "the hashed password": HASHED_PASSWORD,
}

HOSTS = {
    "as01": {"post_auth_duo": True, "post_auth_custom_auth": True},
    "as02": {"post_auth_custom_auth": True, "post_auth_custom_auth_method": "hashes", "post_auth_challenge": True},
    "as03": {"post_auth_custom_auth": True, "post_auth_custom_auth_method": "hashes", "post_auth_challenge": True,
             "post_auth_challenge_verify": "http"},
}


def leaks(text, where):
    """The secrets found in ``text``, named (an empty list is good)."""
    return ["%s in %s" % (name, where) for name, value in SECRETS.items() if value in text]


class Run:
    """One ansible-playbook run of the role over the three servers, with private temporary folders."""

    def __init__(self, folder, name, argv):
        self.temp = {kind: os.path.join(folder, "%s-%s" % (name, kind)) for kind in ("tmp", "local", "remote")}
        for path in self.temp.values():
            os.makedirs(path)
        env = dict(os.environ, TMPDIR=self.temp["tmp"], ANSIBLE_LOCAL_TEMP=self.temp["local"],
                   ANSIBLE_REMOTE_TMP=self.temp["remote"])
        self.result = subprocess.run(
            [os.path.join(fleet.ANSIBLE_BIN, "ansible-playbook"), *argv],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
            env=dict(env, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                     PATH=fleet.ANSIBLE_BIN + os.pathsep + env.get("PATH", "")),
        )
        self.output = self.result.stdout + self.result.stderr

    def left_behind(self):
        """{path: content} of every file left in the private temporary folders."""
        files = {}
        for top in self.temp.values():
            for walked in os.walk(top):
                for name in walked[2]:
                    path = os.path.join(walked[0], name)
                    with open(path, "rb") as handle:
                        files[path] = handle.read().decode("utf-8", errors="replace")
        return files


@pytest.fixture(scope="module")
def fleet_runs(tmp_path_factory, duo_session, http_peer_session, test_ca):
    folder = str(tmp_path_factory.mktemp("secrets"))
    servers = {name: fleet.install_server(os.path.join(folder, name)) for name in HOSTS}
    for server in servers.values():
        server.set_password("alice", "unused-local-pw")
        server.reset_calls()
    inventory = fleet.write_inventory(os.path.join(folder, "inventory.json"), servers)
    with open(inventory) as handle:
        document = json.load(handle)
    for name, host_vars in HOSTS.items():
        document["fleet"]["hosts"][name].update(host_vars)
    with open(inventory, "w") as handle:
        json.dump(document, handle, indent=2)

    secrets = {
        "post_auth_python": sys.executable,
        "post_auth_validate_interpreters": PYTHONS,
        "post_auth_messages": MFA_MESSAGES,
        "post_auth_duo_api_host": duo_session.host,
        "post_auth_duo_integration_key": duo_session.ikey,
        "post_auth_duo_secret_key": KEY_OLD,
        "post_auth_duo_ca_file": test_ca.ca_file,
        "post_auth_custom_auth_url": http_peer_session.auth_url,
        "post_auth_custom_auth_ca_file": test_ca.ca_file,
        "post_auth_custom_auth_token": AUTH_TOKEN,
        "post_auth_custom_auth_hashes": {"alice": HASH},
        "post_auth_challenge_url": http_peer_session.verify_url,
        "post_auth_challenge_ca_file": test_ca.ca_file,
        "post_auth_challenge_token": CHALLENGE_TOKEN,
        "post_auth_challenge_totp_secrets": {"alice": SEED_ALICE, "bob": SEED_BOB},
    }
    vars_file = os.path.join(folder, "vars.json")

    def run(name, *options, **changes):
        with open(vars_file, "w") as handle:
            json.dump(dict(secrets, **changes), handle, indent=2)
        os.chmod(vars_file, 0o600)
        return Run(folder, name, ["-i", inventory, PLAYBOOK, "-e", "@" + vars_file, "-vvv", *options])

    runs = {"check": run("check", "--check", "--diff")}
    calls_after_check = {name: server.commands() for name, server in servers.items()}
    scripts_after_check = {name: server.config().get(SCRIPT_KEY) for name, server in servers.items()}
    runs["apply"] = run("apply", "--diff")
    scripts_before_rotation = {name: server.config()[SCRIPT_KEY] for name, server in servers.items()}
    runs["rotate"] = run("rotate", "--diff", "--limit", "as01", post_auth_duo_secret_key=KEY_NEW)
    return {"servers": servers, "runs": runs, "calls_after_check": calls_after_check,
            "scripts_after_check": scripts_after_check, "before_rotation": scripts_before_rotation}


def test_every_run_succeeded(fleet_runs):
    runs = fleet_runs["runs"]
    for name, run in runs.items():
        assert run.result.returncode == 0, (name, run.result.stdout[-4000:], run.result.stderr[-2000:])
    assert {host: counts["failed"] for host, counts in recap(runs["apply"].result.stdout).items()} == \
        {"as01": 0, "as02": 0, "as03": 0}
    assert list(recap(runs["rotate"].result.stdout)) == ["as01"]
    assert recap(runs["rotate"].result.stdout)["as01"]["changed"] >= 1


def test_no_secret_in_any_output(fleet_runs):
    found = []
    for name, run in fleet_runs["runs"].items():
        # the output is verbose indeed, and shows the diffs
        assert "<127.0.0.1> EXEC" in run.output or "ESTABLISH LOCAL CONNECTION" in run.output, name
        assert "ovpnas.fleet.settings_sha256" in run.output, name
        found += leaks(run.output, "the output of the %s run" % name)
    assert found == []


def test_check_mode_changed_nothing(fleet_runs):
    for name, commands in fleet_runs["calls_after_check"].items():
        # reads only: the configuration, the users' properties, and the clients a restart would drop
        assert set(commands) <= {"ConfigQuery", "UserPropGet", "VPNSummary"}, (name, commands)
        assert "ConfigQuery" in commands, (name, commands)
        assert fleet_runs["scripts_after_check"][name] is None
    # and showed the scripts it would load, masked
    output = fleet_runs["runs"]["check"].result.stdout
    assert "+******** %s" % SECRET_MARKER in output


def test_rotated_key_shows_as_a_masked_change(fleet_runs):
    before = fleet_runs["before_rotation"]["as01"]
    after = fleet_runs["servers"]["as01"].config()[SCRIPT_KEY]
    assert KEY_OLD in before and KEY_NEW not in before
    assert KEY_NEW in after and KEY_OLD not in after
    old_sha = re.search(r"# ovpnas.fleet.settings_sha256: (\w+)", before).group(1)
    new_sha = re.search(r"# ovpnas.fleet.settings_sha256: (\w+)", after).group(1)
    assert old_sha != new_sha
    output = fleet_runs["runs"]["rotate"].result.stdout
    assert "-# ovpnas.fleet.settings_sha256: %s" % old_sha in output
    assert "+# ovpnas.fleet.settings_sha256: %s" % new_sha in output
    assert leaks(output, "the rotation diff") == []
    # the other servers kept their scripts
    for name in ("as02", "as03"):
        assert fleet_runs["servers"][name].config()[SCRIPT_KEY] == fleet_runs["before_rotation"][name]


def test_staged_files_are_gone(fleet_runs):
    for name, server in fleet_runs["servers"].items():
        # scripts and cases are staged in the collection's root-only folder on the server, and removed
        staging = os.path.join(server.path, "etc", "ovpnas_fleet", "staging")
        assert os.path.isdir(staging), name
        assert os.listdir(staging) == [], name
    for name, run in fleet_runs["runs"].items():
        left = run.left_behind()
        found = []
        for path, content in left.items():
            found += leaks(content, path)
        assert found == [], name


def test_logs_hold_no_secret(fleet_runs, http_peer):
    servers = fleet_runs["servers"]
    # logins that use the secrets, so that the logs have something to show
    as02 = servers["as02"]
    login = subprocess.run(
        [as02.authcli_path, "--user", "alice", "--pass", HASHED_PASSWORD, "--sr", totp(SEED_ALICE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert login.returncode == 0
    http_peer.token = CHALLENGE_TOKEN
    as03 = servers["as03"]
    log = Log(as03)
    proc = as03.authcli("--user", "alice", "--pass", HASHED_PASSWORD, "--sr", "123456")
    assert proc.returncode == 0, proc.stdout
    assert "alice authenticated (hashes)" in log.new()
    http_peer.token = AUTH_TOKEN
    as01 = servers["as01"]
    proc = as01.authcli("--user", "alice", "--pass", "alice-pw")
    # the endpoint took the token; Duo refuses the key, which is not the stand-in's
    assert "Duo error: /auth/v2/preauth: HTTP 401" in proc.stdout
    found = []
    for name, server in servers.items():
        for path in (server.root.log_file, server.root.call_log):
            with open(path, encoding="utf-8", errors="replace") as handle:
                found += leaks(handle.read(), "%s of %s" % (os.path.basename(path), name))
    assert found == []


def test_live_scripts_keep_secrets_on_marked_lines(fleet_runs):
    expected = {"as01": [KEY_NEW, AUTH_TOKEN], "as02": [HASH], "as03": [HASH, CHALLENGE_TOKEN]}
    for name, server in fleet_runs["servers"].items():
        script = server.config()[SCRIPT_KEY]
        for value in expected[name]:
            assert value in script, (name, value)
        marked = [line for line in script.splitlines() if line.endswith(SECRET_MARKER)]
        assert marked and marked[0].startswith("SECRETS = {"), (name, marked)
        for line in script.splitlines():
            if any(value in line for value in SECRETS.values()):
                assert line.endswith(SECRET_MARKER), (name, line)
        # TOTP seeds are user properties, not part of any script
        assert SEED_ALICE not in script and SEED_BOB not in script
    assert user_props(fleet_runs["servers"]["as02"], "alice")["pvt_totp_secret"] == SEED_ALICE
    assert user_props(fleet_runs["servers"]["as02"], "bob")["pvt_totp_secret"] == SEED_BOB


def test_sacli_info_shows_the_secrets_masked(fleet_runs, run_module):
    for name, server in fleet_runs["servers"].items():
        result = run_module(sacli_info.main, {"sacli_path": server.sacli_path, "include_script": True,
                                              "gather": ["post_auth", "config"], "users": ["alice", "bob"]})
        assert not result["failed"], result
        content = result["post_auth"]["content"]
        assert "******** %s" % SECRET_MARKER in content, name
        assert content == result["config"][SCRIPT_KEY]
        assert "def post_auth" in content
        assert result["post_auth"]["header"]["generator"] == "ovpnas.fleet"
        assert leaks(json.dumps(result), "what sacli_info returned for %s" % name) == []
        if name == "as02":
            # the seeds the role pushed are there, masked
            assert result["user_properties"]["alice"]["pvt_totp_secret"] == HIDDEN
            assert result["user_properties"]["bob"]["pvt_totp_secret"] == HIDDEN
