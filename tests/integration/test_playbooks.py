"""Playbooks against emulated fleets, counting every sacli call on every host."""

import os
import re
import stat

from conftest import REPO, recap, run_playbook, write_inventory

PLAYBOOKS = os.path.join(REPO, "tests", "integration", "playbooks")
SECRET = "bind-pw-'\"$(id)`x`"


def record_argv(server):
    """Put a shim in front of sacli that logs its command line, to prove no value is on it."""
    scripts = os.path.dirname(server.sacli_path)
    os.rename(server.sacli_path, os.path.join(scripts, "sacli.real"))
    argv_log = os.path.join(server.path, "log", "argv.log")
    with open(server.sacli_path, "w") as handle:
        handle.write('#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nexec "%s/sacli.real" "$@"\n' % (argv_log, scripts))
    os.chmod(server.sacli_path, stat.S_IRWXU)
    return argv_log


def test_five_keys_on_ten_hosts(make_fleet, tmp_path):
    fleet = make_fleet(10)
    argv_logs = [record_argv(server) for server in fleet.values()]
    inventory = write_inventory(tmp_path / "inventory.json", fleet, bind_pw=SECRET)
    playbook = os.path.join(PLAYBOOKS, "five_keys.yml")

    first = run_playbook(playbook, inventory, "--diff", "-vvv")
    assert first.returncode == 0, first.stdout + first.stderr
    assert all(r["changed"] == 2 and r["failed"] == 0 for r in recap(first.stdout).values()), first.stdout
    for name, server in fleet.items():
        commands = server.commands()
        assert commands[0] == "ConfigQuery"
        assert commands.count("ConfigQuery") == 1, name
        # reroute_dns is already true on a new server: four keys differ
        assert commands[1:5] == ["ConfigPut"] * 4, name
        # the handler: the clients counted, one start, the services' status polled and gated
        assert commands[5:].count("start") == 1 and commands.count("start") == 1, name
        assert set(commands[5:]) == {"VPNSummary", "start", "status"}, name
        assert server.config()["auth.ldap.0.bind_pw"] == SECRET
        server.reset_calls()

    second = run_playbook(playbook, inventory, "--diff", "-vvv")
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(r["changed"] == 0 for r in recap(second.stdout).values())
    for name, server in fleet.items():
        assert server.commands() == ["ConfigQuery"], name
        server.reset_calls()

    check = run_playbook(playbook, inventory, "--check", "--diff")
    assert check.returncode == 0
    assert all(server.commands() == ["ConfigQuery"] for server in fleet.values())

    for output in (first.stdout, second.stdout, check.stdout, first.stderr):
        assert SECRET not in output
        assert "bind-pw" not in output
    for argv_log in argv_logs:
        with open(argv_log) as handle:
            lines = handle.read().splitlines()
        assert lines and not any("bind-pw" in line or "vpn.example.com" in line for line in lines)
        assert any(line.startswith("--key auth.ldap.0.bind_pw --value_file=") for line in lines)


def test_check_mode_predicts_and_repeats_change_nothing(make_fleet, tmp_path):
    fleet = make_fleet(2)
    inventory = write_inventory(tmp_path / "inventory.json", fleet)
    result = run_playbook(os.path.join(PLAYBOOKS, "four_runs.yml"), inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(r["failed"] == 0 and r["ok"] >= 15 for r in recap(result.stdout).values()), result.stdout
    assert all("start" not in server.commands() for server in fleet.values())


def test_demo(tmp_path):
    """`make demo` minus the venv set-up: a canary-first rollout to five servers (two a cluster) whose canary is
    soaked on simulated clients, a run that changes nothing, a bad change the canary's gate catches and takes back,
    one only the soak catches, and a drift audit that finds a hand edit."""
    import subprocess
    import sys

    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run([os.path.join(REPO, "demo", "run")], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # no library of the controller warns about itself on the way (Python's warnings name their category)
    assert "Warning:" not in result.stderr and "Warning:" not in result.stdout, result.stderr
    sections = re.split(r"^== \d\. ", result.stdout, flags=re.M)
    assert len(sections) == 7, result.stdout
    first, second, bad, android, audit, logins = sections[1:]
    assert re.findall(r"Batch (\d) of 3 \(([^)]*)\)", first) == [("1", "as1"), ("2", "as2"), ("3", "as3, as4, as5")]
    assert "Total after batch 3 of 3: 5 of 5 hosts reached (4 changed, 1 cluster node)" in first
    assert re.search(r"as5 +cluster1 +via as4 .* passed", first)
    assert "all:FIREFOX=^mozilla firefox" in first
    assert "Nothing to roll out: 5 of 5 servers are as the inventory says" in second
    for host in ("as1", "as2", "as3", "as4"):
        assert "%s: 1 calls: ConfigQuery\n" % host in second
    assert "as5: no call" in second
    assert 'the gate failed: canary login "canary laptop" returned FAIL' in bad
    assert "the rollout stops here, 4 hosts not reached" in bad
    # the plan read them, and nothing else happened there
    assert all("%s: 1 calls: ConfigQuery\n" % host in bad for host in ("as2", "as3", "as4"))
    assert "as5: no call" in bad
    assert "as1 runs its previous script again" in bad
    # the soak: passed on the canary of the first rollout, on the simulated clients' logins before and after
    assert re.search(r"as1: soak of 10 s passed; before the change (\d{2,}) logins, [\d.]+% failed; after it "
                     r"(\d{2,}) logins", first), first
    assert "logdba" in first.split("as2:")[0] and "logdba" not in first.split("as2:")[1]
    # the Android lockout: caught by the soak alone, named, taken back; as2 to as5 only read to plan
    assert re.search(r"as1: the soak failed: android: failures rose from [\d.]+% to 100%", android), android
    assert "the previous configuration is live again on as1" in " ".join(android.split())
    assert all("%s: 1 calls: ConfigQuery\n" % host in android for host in ("as2", "as3", "as4"))
    assert "as5: no call" in android and "as1 runs its previous script again" in android
    assert "as3: drift; differs: auth.module.post_auth_script" in audit and "(seal broken)" in audit
    # the line edited by hand, live and expected
    assert re.search(r"^    -.*SUCCEEd", audit, re.M) and re.search(r"^    \+.*SUCCEED", audit, re.M), audit
    report = os.path.join(REPO, ".demo", "audit")
    assert sorted(os.listdir(report)) == ["drift.html", "drift.json", "drift.md"]
    # Windows clients are asked about Firefox, so the one with a current version gets in
    assert re.search(r"alice, laptop, Firefox 128: +SUCCEED", logins)
    assert re.search(r"alice, laptop, Firefox 102: +FAIL FIREFOX must be updated", logins)
