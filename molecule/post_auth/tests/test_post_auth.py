"""What the converge left on each server, checked inside the containers."""

import hashlib
import json
import os
import re

import pytest
import testinfra
import yaml
from hosts import podman_hosts
from policy_mfa import totp

testinfra_hosts = podman_hosts("openvpn_as")

AS = "/usr/local/openvpn_as"
STATE = AS + "/etc/ovpnas_fleet"
SCENARIO = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
with open(os.path.join(SCENARIO, "vars", "main.yml")) as handle:
    VARS = yaml.safe_load(handle)
with open(os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "galaxy.yml")) as handle:
    VERSION = yaml.safe_load(handle)["version"]
# what prepare loaded before the collection ran (molecule.yml)
with open(os.path.join(SCENARIO, "molecule.yml")) as handle:
    PREVIOUS = yaml.safe_load(handle)["provisioner"]["inventory"]["group_vars"]["openvpn_as"]["prepare_script"]
# every value of the inventory that must never be readable by the login user
SECRETS = [*VARS["post_auth_challenge_totp_secrets"].values(), "svc-pw"]
FIREFOX = ["--client-info", "IV_PLAT=win", "--client-info", "UV_APPVER_FIREFOX=128.0"]


def sacli(host, *args):
    return host.check_output(" ".join([AS + "/scripts/sacli", *args]))


def config(host):
    return json.loads(sacli(host, "ConfigQuery"))


def login(host, user, password, *args):
    """authcli's answer as {name: value}, e.g. status, reason, and conn_group from the proplist."""
    out = host.run(" ".join([AS + "/scripts/authcli", "-u", user, "--pass", password, *args])).stdout
    answer = dict(re.findall(r"^  (\w+) : (.*)$", out, re.M))
    group = re.search(r"'conn_group': '([^']*)'", answer.get("proplist", ""))
    answer["group"] = group.group(1) if group else None
    return answer


def test_ansible_logged_in_as_the_unprivileged_user(host):
    # its remote temporary folder is in the login user's home, and nothing of the run is left there
    home = host.file("/home/ansible/.ansible/tmp")
    assert (home.is_directory, home.user) == (True, "ansible")
    assert host.check_output("ls -A /home/ansible/.ansible/tmp") == ""


def test_the_live_script_is_sealed_and_declares_its_features(host):
    script = config(host)["auth.module.post_auth_script"]
    body, seal = script.rstrip("\n").rsplit("\n", 1)
    assert seal == "# ovpnas.fleet.sha256: " + hashlib.sha256((body + "\n").encode()).hexdigest()
    header = dict(re.findall(r"^# ovpnas\.fleet\.(\w+): (.*)$", body, re.M))
    assert header["version"] == VERSION
    assert header["features"] == "group_mapping, device_pinning, host_checker, challenge"


def test_the_live_script_is_the_one_the_start_applied(host):
    live = config(host)["auth.module.post_auth_script"]
    applied = json.loads(host.check_output("cat %s/applied.json" % STATE))
    # the sha256 of the stored text without its trailing newlines, as the collection hashes it
    assert applied["sha256"]["auth.module.post_auth_script"] == hashlib.sha256(live.rstrip("\r\n").encode()).hexdigest()
    assert not host.file(STATE + "/pending_apply.json").exists


def test_both_servers_run_one_script():
    scripts = {config(testinfra.get_host(spec))["auth.module.post_auth_script"] for spec in testinfra_hosts}
    assert len(scripts) == 1


def test_app_verify_holds_the_query_file(host):
    assert config(host)["vpn.client.app_verify"].splitlines() == ["all:FIREFOX=^mozilla firefox"]


def test_nothing_is_left_in_staging(host):
    assert host.file(STATE + "/staging").is_directory
    assert host.check_output("ls -A %s/staging" % STATE) == ""


def test_the_previous_script_is_backed_up_root_only(host):
    names = host.check_output("ls %s/backups" % STATE).split()
    assert names
    for name in names:
        backup = host.file("%s/backups/%s" % (STATE, name))
        assert (backup.user, backup.group, backup.mode) == ("root", "root", 0o600)
    assert any(host.file("%s/backups/%s" % (STATE, n)).content_string == PREVIOUS for n in names)
    state = host.file(STATE)
    assert (state.user, state.mode) == ("root", 0o700)


@pytest.mark.parametrize("secret", SECRETS)
def test_no_secret_is_readable_by_the_login_user(host, secret):
    unprivileged = host.get_host("podman://ansible@%s" % host.backend.name)
    assert unprivileged.check_output("id -un") == "ansible"
    # every file, binary ones too (-a: the databases); those the user cannot read are skipped (-s), so
    # what is printed, the user could read
    found = unprivileged.run("grep -rlsaF -e '%s' / --exclude-dir=proc --exclude-dir=sys" % secret)
    assert found.stdout == ""
    # ...while the secret is on the server, where root reads it
    assert host.run("grep -rlsaF -e '%s' %s/etc" % (secret, AS)).stdout != ""


def test_registrations_are_user_properties(host):
    props = json.loads(sacli(host, "UserPropGet"))
    for user, addresses in VARS["post_auth_device_pinning_registry"].items():
        keys = ["pvt_hw_addr"] + ["pvt_hw_addr%d" % n for n in range(2, len(addresses) + 1)]
        assert [props[user][k] for k in keys] == addresses


def test_a_registered_device_with_its_code_logs_in_with_the_directory_group(host):
    alice = login(host, "alice", "alice-pw", "--hw-addr", "00:11:22:33:44:55", *FIREFOX,
                  "--sr", totp(VARS["post_auth_challenge_totp_secrets"]["alice"]))
    assert (alice["status"], alice["group"]) == ("SUCCEED", "admins"), alice
    bob = login(host, "bob", "bob-pw", "--hw-addr", "00:11:22:33:44:67", *FIREFOX,
                "--sr", totp(VARS["post_auth_challenge_totp_secrets"]["bob"]))
    assert (bob["status"], bob["group"]) == ("SUCCEED", "engineering"), bob


@pytest.mark.parametrize(("case", "args", "reason"), [
    ("an unregistered device", ["--hw-addr", "00:11:22:33:44:56", *FIREFOX], "not registered"),
    ("an old Firefox", ["--hw-addr", "00:11:22:33:44:55", "--client-info", "IV_PLAT=mac",
                        "--client-info", "UV_APPVER_FIREFOX=102.0"], "FIREFOX"),
    ("no report of Firefox", ["--hw-addr", "00:11:22:33:44:55", "--client-info", "IV_PLAT=win"], "FIREFOX"),
    ("a wrong code", ["--hw-addr", "00:11:22:33:44:55", *FIREFOX, "--sr", "000000"], "challenge"),
])
def test_refused(host, case, args, reason):
    answer = login(host, "alice", "alice-pw", *args)
    assert answer["status"] == "FAIL", case
    assert reason in answer.get("reason", ""), answer


def test_a_wrong_directory_password_is_refused(host):
    assert login(host, "bob", "not-bob-pw", "--hw-addr", "00:11:22:33:44:66", *FIREFOX)["status"] == "FAIL"
