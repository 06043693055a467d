"""An administrator's own post-auth script through deploy_postauth.yml: the same discipline as a composed one.

The scripts are this project's, written in the styles administrators run (tests/integration/scripts): loaded by
hand first, as Access Server's documentation tells, then carried by the rollout without a write; changed, gated,
restored; removed; audited.
"""

import hashlib
import json
import os
import sys

import pytest
from conftest import REPO, install_server, recap, run_playbook

DEPLOY = os.path.join(REPO, "playbooks", "deploy_postauth.yml")
REMOVE = os.path.join(REPO, "playbooks", "remove_postauth.yml")
AUDIT = os.path.join(REPO, "playbooks", "audit_postauth.yml")
SCRIPTS = os.path.join(REPO, "tests", "integration", "scripts")
SCRIPT_KEY = "auth.module.post_auth_script"
WRITES = {"ConfigPut", "ConfigDel", "UserPropPut", "UserPropDel", "UserPropDelAll"}
CANARY_PW = "canary-pw"
LAPTOP = "00:16:3e:aa:bb:01"
HOSTS = ("as01", "as02", "as03")

VARIABLES = {
    "ovpnas_target": "fleet",
    "ovpnas_become": False,
    "ovpnas_sacli_path": "{{ sacli_path }}",
    "ovpnas_start_wait_timeout": 20,
    "post_auth_python": sys.executable,
    "post_auth_source": "scripts/hw_registration.py",
    "post_auth_policy_tests": [
        {"name": "a first login registers the device", "user": "alice", "client": {"hw_addr": "00:16:3e:00:00:01"},
         "expect": {"status": "SUCCEED", "saved": {"pvt_hw_addr": "00:16:3e:00:00:01"}}},
        {"name": "the registered device again", "user": "alice", "client": {"hw_addr": "00:16:3E:00:00:01"},
         "expect": {"status": "SUCCEED"}},
        {"name": "another device", "user": "alice", "client": {"hw_addr": "00:16:3e:00:00:02"},
         "expect": {"status": "FAIL", "client_reason": "not the one registered"}},
    ],
    "rollout_canary_logins": [
        {"name": "canary laptop", "user": "canary", "password": CANARY_PW,
         "client_info": {"IV_PLAT": "win", "IV_HWADDR": LAPTOP}, "expect": {"status": "SUCCEED"}},
    ],
}


def source(name):
    with open(os.path.join(SCRIPTS, name)) as handle:
        return handle.read()


@pytest.fixture
def fleet(tmp_path):
    """Three emulated servers, each running hw_registration.py loaded by hand; an inventory beside scripts/."""
    servers = {}
    for name in HOSTS:
        servers[name] = install_server(tmp_path / "fleet" / name, "--vpn-clients", "3")
        servers[name].set_password("canary", CANARY_PW)
        servers[name].sacli("--key", SCRIPT_KEY, "--value", source("hw_registration.py"), "ConfigPut")
        servers[name].sacli("start")
        servers[name].reset_calls()
    repository = tmp_path / "repository"
    (repository / "scripts").mkdir(parents=True)
    for name in os.listdir(SCRIPTS):
        (repository / "scripts" / name).write_text(source(name))
    inventory = repository / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {
        "hosts": {name: {"sacli_path": server.sacli_path} for name, server in servers.items()},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    return servers, str(inventory), repository


def play(tmp_path, inventory, playbook=DEPLOY, *options, **changes):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(dict(VARIABLES, **changes)))
    result = run_playbook(playbook, inventory, "-e", "@%s" % path, *options)
    return result, recap(result.stdout)


def reset(servers):
    for server in servers.values():
        server.reset_calls()


def writes(server):
    return [command for command in server.commands() if command in WRITES]


def test_a_hand_loaded_script_is_carried_without_a_write_then_changed_canary_first(fleet, tmp_path):
    servers, inventory, repository = fleet

    # the same text as the servers run: nothing to do, in check mode as in a real run, one read per host
    for options in (("--check", "--diff"), ()):
        result, hosts = play(tmp_path, inventory, DEPLOY, *options)
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(r["changed"] == 0 for r in hosts.values()), result.stdout
        for name, server in servers.items():
            assert server.commands() == ["ConfigQuery"], (name, options)
        reset(servers)
    # the server keeps what was loaded by hand: no header was written either
    assert all(server.config()[SCRIPT_KEY] == source("hw_registration.py") for server in servers.values())

    # a change: web logins need a registered device too
    changed = source("hw_registration.py").replace(" or not attributes.get(\"vpn_auth\")", "")
    assert changed != source("hw_registration.py")
    (repository / "scripts" / "hw_registration.py").write_text(changed)
    check, predicted = play(tmp_path, inventory, DEPLOY, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "-    if authret[\"status\"] != SUCCEED or not attributes.get(\"vpn_auth\"):" in check.stdout
    assert "+    if authret[\"status\"] != SUCCEED:" in check.stdout
    assert all(not writes(server) and "start" not in server.commands() for server in servers.values())
    reset(servers)

    real, hosts = play(tmp_path, inventory)
    assert real.returncode == 0, real.stdout + real.stderr
    # check mode predicted the real run: the same tasks changed on every server
    assert {n: r["changed"] for n, r in predicted.items()} == {n: r["changed"] for n, r in hosts.items()}
    assert all(r["changed"] > 0 for r in hosts.values())
    for name, server in servers.items():
        live = server.config()[SCRIPT_KEY]
        assert changed in live and "# ovpnas.fleet.generator: ovpnas.fleet (own script)" in live, name
        assert "# ovpnas.fleet.source: hw_registration.py" in live, name
        assert writes(server) == ["ConfigPut"] and server.commands().count("start") == 1, name
        # the canary laptop's login went through the script, which registered it
        assert server.userprops()["canary"]["pvt_hw_addr"] == LAPTOP, name
    reset(servers)

    again, hosts = play(tmp_path, inventory)
    assert again.returncode == 0 and all(r["changed"] == 0 for r in hosts.values()), again.stdout
    assert all(server.commands() == ["ConfigQuery"] for server in servers.values())


def test_a_version_the_gate_refuses_is_restored_on_the_canary_and_goes_no_further(fleet, tmp_path):
    servers, inventory, repository = fleet
    before = {name: server.config()[SCRIPT_KEY] for name, server in servers.items()}
    # passes the policy cases (which give no platform) and locks out every Windows client: the canary laptop
    bad = source("hw_registration.py").replace(
        "    address = (attributes", "    if (attributes.get(\"client_info\") or {}).get(\"IV_PLAT\") == \"win\":\n"
        "        authret[\"status\"] = FAIL\n        return authret\n    address = (attributes", 1)
    (repository / "scripts" / "bad.py").write_text(bad)

    result, _hosts = play(tmp_path, inventory, DEPLOY, post_auth_source="scripts/bad.py")
    assert result.returncode != 0, result.stdout
    canary = servers["as01"]
    assert writes(canary).count("ConfigPut") == 2, canary.commands()  # the change, and its restore
    assert canary.config()[SCRIPT_KEY] == before["as01"]
    for name in ("as02", "as03"):
        assert not writes(servers[name]) and servers[name].config()[SCRIPT_KEY] == before[name], name


def test_check_mode_masks_the_secrets_of_an_own_script(fleet, tmp_path):
    servers, inventory, _repository = fleet
    secret = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
    cases = [{"name": "allowed", "user": "alice",
              "http_replies": {"https://api-4f2a.duo.example.com/auth/v2/auth": {"stat": "OK",
                                                                                 "response": {"result": "allow"}}},
              "expect": {"status": "SUCCEED"}},
             {"name": "API down", "user": "alice", "http_replies": {"/auth/v2/auth": {"status": 503}},
              "expect": {"status": "FAIL", "reason": "second factor unavailable"}},
             {"name": "another host", "user": "alice", "expect": {"status": "FAIL"}}]
    result, _hosts = play(tmp_path, inventory, DEPLOY, "--check", "--diff", "-vvv",
                          post_auth_source="scripts/duo_style.py", post_auth_policy_tests=cases[:2],
                          rollout_canary_logins=[])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+SKEY = ********" in result.stdout and "+IKEY = \"DIWJ8X6AEYOR5OMC6TQ1\"" in result.stdout
    assert secret not in result.stdout + result.stderr
    assert all(not writes(server) for server in servers.values())

    # the policy cases run on the server before anything is loaded: a host the case scripts no reply for is named
    failed, _hosts = play(tmp_path, inventory, DEPLOY, post_auth_source="scripts/duo_style.py",
                          post_auth_policy_tests=cases, rollout_canary_logins=[])
    assert failed.returncode != 0
    assert "reached for api-4f2a.duo.example.com:443, for which the case scripts no reply" in failed.stdout
    assert secret not in failed.stdout + failed.stderr
    assert all(not writes(server) for server in servers.values())


def test_refusals_come_before_any_read(fleet, tmp_path):
    servers, inventory, _repository = fleet
    digest = hashlib.sha256(source("hw_registration.py").encode()).hexdigest()
    for changes, message in (
            ({"post_auth_source_sha256": "0" * 64}, "has the sha256 %s, not the pinned %s" % (digest, "0" * 64)),
            ({"post_auth_device_pinning": True}, "post_auth_source and post_auth_device_pinning are both set"),
            ({"post_auth_source": "scripts/missing.py"}, "post_auth_source: 'scripts/missing.py' is no file"),
            ({"post_auth_source_secrets": ["IKEY"]}, "hw_registration.py assigns no IKEY")):
        result, _hosts = play(tmp_path, inventory, DEPLOY, **changes)
        assert result.returncode != 0 and message in " ".join(result.stdout.split()), (changes, result.stdout)
        for name, server in servers.items():
            assert server.commands() == [], (changes, name)


def test_a_template_renders_values_as_literals_and_the_script_is_removed_and_audited(fleet, tmp_path):
    servers, inventory, repository = fleet
    refusal = "This device is not the one registered for you (it's \"pinned\")."
    (repository / "scripts" / "pinned.py.j2").write_text(
        source("hw_registration.py").replace('"This device is not the one registered for you."',
                                             "{{ refusal | ovpnas.fleet.pyliteral }}"))
    result, _hosts = play(tmp_path, inventory, DEPLOY, post_auth_source="scripts/pinned.py.j2", refusal=refusal)
    assert result.returncode == 0, result.stdout + result.stderr
    for server in servers.values():
        assert "authret[\"client_reason\"] = %r" % refusal in server.config()[SCRIPT_KEY]
    reset(servers)

    report_dir = tmp_path / "report"
    audit, _hosts = play(tmp_path, inventory, AUDIT, post_auth_source="scripts/pinned.py.j2", refusal=refusal,
                         ovpnas_audit_dir=str(report_dir))
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads((report_dir / "drift.json").read_text())
    assert report["totals"]["in_sync"] == 3, report
    drifted, _hosts = play(tmp_path, inventory, AUDIT, ovpnas_audit_dir=str(report_dir))
    assert drifted.returncode == 0
    assert json.loads((report_dir / "drift.json").read_text())["totals"]["drift"] == 3
    assert all(server.commands() == ["ConfigQuery"] * 2 for server in servers.values())
    reset(servers)

    removed, _hosts = play(tmp_path, inventory, REMOVE)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert all(SCRIPT_KEY not in server.config() for server in servers.values())


def test_what_a_template_takes_from_a_secret_variable_is_masked(fleet, tmp_path):
    servers, inventory, repository = fleet
    key = "kX9'vQ\"2-rotated-secret-value"
    (repository / "scripts" / "keyed.py.j2").write_text(
        source("hw_registration.py") + "\nK2 = {{ duo.secret_key | ovpnas.fleet.pyliteral }}\n")
    result, _hosts = play(tmp_path, inventory, DEPLOY, "--check", "--diff", "-vvv",
                          post_auth_source="scripts/keyed.py.j2", duo={"secret_key": key, "host": "api.example"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+K2 = " in result.stdout
    for form in (key, repr(key)[1:-1], "rotated-secret"):
        assert form not in result.stdout + result.stderr, form
    assert all(not writes(server) for server in servers.values())


# Each script of tests/integration/scripts through the whole discipline: its policy cases on the server, the rollout
# and its gate (a canary login that goes through the script), a version the gate refuses restored, the audit, the
# removal. The bad version refuses Windows clients, which no policy case is and the canary laptop is.
REFUSE_WINDOWS = '''

def _refusing_windows(entry):
    def checked(authcred, attributes, authret, info, *rest):
        result = entry(authcred, attributes, authret, info, *rest)
        returned = result[0] if isinstance(result, tuple) else result
        if (attributes.get("client_info") or {}).get("IV_PLAT") == "win":
            returned["status"] = FAIL
            returned["client_reason"] = "Windows is not allowed."
        return result
    return checked


if "post_auth_cr" in globals():
    post_auth_cr = _refusing_windows(post_auth_cr)
else:
    post_auth = _refusing_windows(post_auth)
'''
CANARY = {"name": "canary laptop", "user": "canary", "password": CANARY_PW,
          "client_info": {"IV_PLAT": "win", "IV_HWADDR": LAPTOP}, "expect": {"status": "SUCCEED"}}
ALLOW = {"stat": "OK", "response": {"result": "allow"}}
SCRIPTED = {
    "hw_registration.py": (VARIABLES["post_auth_policy_tests"], [CANARY]),
    "group_mapper.py": ([
        {"name": "a VPN user", "user": "bob", "auth_method": "ldap",
         "ldap": {"groups": ["cn=vpn-users,ou=groups,dc=example,dc=com"]}, "expect": {"group": "users"}},
        {"name": "an administrator, through python-ldap", "user": "alice", "auth_method": "ldap",
         "ldap": {"api": "python-ldap", "groups": ["CN=VPN-Admins,ou=groups,dc=example,dc=com"]},
         "expect": {"status": "SUCCEED", "group": "admins"}},
        {"name": "in no mapped group", "user": "carol", "auth_method": "ldap", "ldap": {"groups": []},
         "expect": {"status": "FAIL", "client_reason": "no group"}},
        {"name": "a local login", "user": "dave", "expect": {"status": "SUCCEED"}},
    ], [CANARY]),
    "dynamic_challenge.py": ([
        {"name": "asked", "user": "alice", "expect": {"status": "FAIL", "challenge": True}},
        {"name": "a wrong answer", "user": "alice", "client": {"response": "1"},
         "expect": {"status": "FAIL", "client_reason": "Wrong answer."}},
        {"name": "a reauthentication", "user": "alice", "client": {"reauth": True}, "expect": {"status": "SUCCEED"}},
    ], [CANARY]),
    "pas_only.py": ([
        {"name": "a partner", "user": "erin", "auth_method": "pas_only", "client": {"password": "erin-pw"},
         "expect": {"status": "SUCCEED", "group": "partners"}},
        {"name": "a wrong password", "user": "erin", "auth_method": "pas_only", "client": {"password": "erin"},
         "expect": {"status": "FAIL", "reason": "wrong password"}},
        {"name": "an unknown user", "user": "mallory", "auth_method": "pas_only", "client": {"password": "x"},
         "expect": {"status": "FAIL"}},
    ], [CANARY]),
    # its API is not reachable from an emulated server: the gate checks the services only
    "duo_style.py": ([
        {"name": "allowed", "user": "alice",
         "http_replies": {"https://api-4f2a.duo.example.com/auth/v2/auth": ALLOW}, "expect": {"status": "SUCCEED"}},
        {"name": "denied", "user": "alice",
         "http_replies": {"/auth/v2/auth": {"stat": "OK", "response": {"result": "deny", "status_msg": "Denied"}}},
         "expect": {"status": "FAIL", "client_reason": "Denied"}},
    ], []),
}


# The kinds share one fleet: a server per kind, each carrying its own script, policy cases and canary logins as host
# variables (extra vars would give every host the same), and each phase is one run for the whole fleet.
KINDS = {name: "as%02d" % index for index, name in enumerate(sorted(SCRIPTED), 1)}
PER_HOST = ("post_auth_source", "post_auth_policy_tests", "rollout_canary_logins")
# One batch for the whole fleet (ovpnas_serial): a gate refusal fails its batch and a failed batch ends the rollout,
# so with the default batches (one canary first) the bad version would stop at the canary and the other kinds would
# never be gated. Within the one batch every server is converged, started, gated and restored before any is failed,
# so the default max_fail_percentage (0) still holds and each server's own outcome is asserted. That the canary
# goes first, and alone, is test_a_version_the_gate_refuses_is_restored_on_the_canary_and_goes_no_further's.
FLEET_VARIABLES = dict({k: v for k, v in VARIABLES.items() if k not in PER_HOST}, ovpnas_serial=[len(KINDS)])


def fleet_play(tmp_path, servers, playbook, sources, *options):
    """Run playbook on the fleet of KINDS, the host of each kind loading scripts/<sources[kind]>."""
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"fleet": {"hosts": {
        KINDS[name]: {"sacli_path": server.sacli_path, "post_auth_source": "scripts/" + sources[name],
                      "post_auth_policy_tests": SCRIPTED[name][0], "rollout_canary_logins": SCRIPTED[name][1]}
        for name, server in servers.items()},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(FLEET_VARIABLES))
    result = run_playbook(playbook, str(inventory), "-e", "@%s" % path, *options)
    return result, recap(result.stdout)


def failure(stdout, host):
    """Why the run failed host (its last error not ignored, words joined by single spaces), or None."""
    lines, found = stdout.splitlines(), None
    for index, line in enumerate(lines):
        if line.startswith("fatal: [%s]" % host):
            block = [line]
            for following in lines[index + 1:]:
                if following and not following[0].isspace():
                    if not following.startswith("...ignoring"):
                        found = " ".join(" ".join(block).split())
                    break
                block.append(following)
            else:
                found = " ".join(" ".join(block).split())
    return found


def test_each_kind_of_script_is_rolled_out_gated_restored_audited_and_removed(tmp_path):
    servers = {}
    for name, host in KINDS.items():
        servers[name] = install_server(tmp_path / "fleet" / host, "--vpn-clients", "2")
        servers[name].set_password("canary", CANARY_PW)
        servers[name].reset_calls()
    (tmp_path / "scripts").mkdir()
    for name in KINDS:
        (tmp_path / "scripts" / name).write_text(source(name))
        (tmp_path / "scripts" / ("bad-" + name)).write_text(source(name) + REFUSE_WINDOWS)
    gated = [name for name in KINDS if SCRIPTED[name][1]]
    assert gated and len(gated) < len(KINDS)
    own = {name: name for name in KINDS}

    result, hosts = fleet_play(tmp_path, servers, DEPLOY, own)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(hosts) == set(KINDS.values()), result.stdout
    good = {}
    for name, server in servers.items():
        good[name] = server.config()[SCRIPT_KEY]
        assert source(name) in good[name], name
        assert writes(server) == ["ConfigPut"] and server.commands().count("start") == 1, (name, server.commands())
        if name in gated:
            # the gate's login went through the script
            assert len(server.calls("authcli")) == 1, (name, server.calls("authcli"))
    # each host has its own script: no host was given another's
    assert len(set(good.values())) == len(KINDS)
    reset(servers)

    # the same scripts again: one read per host, nothing changed
    again, hosts = fleet_play(tmp_path, servers, DEPLOY, own)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {h: r["changed"] for h, r in hosts.items()} == dict.fromkeys(KINDS.values(), 0), again.stdout
    for name, server in servers.items():
        assert server.commands() == ["ConfigQuery"], (name, server.commands())
    reset(servers)

    # the bad version, on every kind the canary login gates (the others keep theirs: nothing to change there)
    bad, hosts = fleet_play(tmp_path, servers, DEPLOY, dict(own, **{name: "bad-" + name for name in gated}))
    assert bad.returncode != 0, bad.stdout
    for name, server in servers.items():
        assert server.config()[SCRIPT_KEY] == good[name], name
        if name in gated:
            assert hosts[KINDS[name]]["failed"] == 1, (name, bad.stdout)
            refusal = "%s: the gate failed: canary login \"canary laptop\" returned FAIL" % KINDS[name]
            assert refusal in (failure(bad.stdout, KINDS[name]) or ""), (name, bad.stdout)
            assert writes(server) == ["ConfigPut"] * 2, (name, server.commands())  # the change, and its restore
        else:
            assert failure(bad.stdout, KINDS[name]) is None and not writes(server), (name, bad.stdout)
    reset(servers)

    report_dir = tmp_path / "report"
    audit, _hosts = fleet_play(tmp_path, servers, AUDIT, own, "-e", "ovpnas_audit_dir=%s" % report_dir)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    report = json.loads((report_dir / "drift.json").read_text())
    assert report["totals"]["in_sync"] == len(KINDS), report
    assert {h["host"]: h["status"] for h in report["hosts"]} == dict.fromkeys(KINDS.values(), "in_sync"), report
    for name, server in servers.items():
        assert server.commands() == ["ConfigQuery"], (name, server.commands())

    removed, _hosts = fleet_play(tmp_path, servers, REMOVE, own)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    for name, server in servers.items():
        assert SCRIPT_KEY not in server.config(), name
