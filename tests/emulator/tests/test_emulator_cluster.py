"""Clusters and failover in the emulator: nodes that share their databases, and a UCARP standby."""

import errno
import json
import multiprocessing
import os
import subprocess
from pathlib import Path

import pytest

from asemu.store import Store

INSTALL = Path(__file__).resolve().parents[1] / "install"


def parse_start(stdout):
    """The JSON object of the full output of start (between RunStart and WILL_RESTART)."""
    lines = stdout.splitlines()
    return json.loads("\n".join(lines[1:-1]))


def sacli(root, *args):
    proc = subprocess.run([os.path.join(root, "scripts", "sacli"), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def restarted(server):
    status = parse_start(server.sacli("start").stdout)["service_status"]
    return sorted(name for name, state in status.items() if state == "restarted")


@pytest.fixture
def cluster(tmp_path, make_server):
    """make_cluster(n, *options) -> [Server], n nodes installed with one --cluster-db folder."""

    def make(count, *options):
        shared = str(tmp_path / "cluster-db")
        return [make_server("--cluster-db", shared, "--hostname", "node%d.example.com" % n, *options)
                for n in range(1, count + 1)]

    return make


# clusters --------------------------------------------------------------------------------

def test_nodes_share_configuration_and_user_properties(cluster):
    first, second = cluster(2)

    first.sacli("-k", "vpn.client.routing.reroute_dns", "-v", "false", "ConfigPut")
    second.sacli("-u", "alice", "-k", "conn_group", "-v", "staff", "UserPropPut")
    first.set_password("bob", "pw-bob")

    assert second.config()["vpn.client.routing.reroute_dns"] == "false"
    assert first.userprops()["alice"] == {"conn_group": "staff"}
    assert "  status : SUCCEED" in second.authcli("--user", "bob", "--pass", "pw-bob").stdout.splitlines()
    assert first.config() == second.config()


def test_a_joining_node_leaves_the_shared_databases_alone(tmp_path, make_server):
    shared = str(tmp_path / "cluster-db")
    first = make_server("--cluster-db", shared, "--hostname", "node1.example.com")
    first.sacli("-k", "custom.key", "-v", "kept", "ConfigPut")
    first.sacli("-k", "auth.module.type", "ConfigDel")
    first.sacli("-u", "alice", "-k", "prop_deny", "-v", "true", "UserPropPut")
    config, props = first.config(), first.userprops()

    second = make_server("--cluster-db", shared, "--hostname", "other.example.com", "--version", "2.13.1")

    assert (first.config(), first.userprops()) == (config, props)
    assert second.config()["host.name"] == "node1.example.com"
    assert second.sacli("Version").stdout == "2.13.1\n"
    assert sorted(os.listdir(str(tmp_path / "cluster-db"))) == ["config.db", "userprop.db"]
    # the joining node starts from the shared configuration as it found it: nothing to restart
    assert restarted(second) == []


def test_each_node_keeps_its_own_state_and_needs_its_own_start(cluster):
    first, second = cluster(2)

    first.sacli("-k", "vpn.client.routing.reroute_dns", "-v", "false", "ConfigPut")
    on_first = restarted(first)

    assert on_first  # the change restarts services on the node that starts
    assert set(json.loads(second.sacli("status").stdout)["service_status"].values()) == {"on"}
    assert restarted(second) == on_first  # the other node applies the same change with its own start
    assert restarted(first) == restarted(second) == []

    first.sacli("stop")
    assert set(json.loads(second.sacli("status").stdout)["service_status"].values()) == {"on"}
    assert os.path.exists(second.root.sock) and not os.path.exists(first.root.sock)


def test_nodes_write_the_shared_files_concurrently(cluster):
    nodes = cluster(2)
    commands = []
    for n in range(12):
        node = nodes[n % 2]
        commands.append([node.sacli_path, "-u", "carol", "-k", "key%d" % n, "-v", "v%d" % n, "UserPropPut"])
        commands.append([node.sacli_path, "-k", "race.key%d" % n, "-v", "v%d" % n, "ConfigPut"])
        commands.append([node.sacli_path, "start"])
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
             for c in commands]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()

    assert [r for r in results if r[0] != 0] == []
    assert nodes[0].userprops()["carol"] == {"key%d" % n: "v%d" % n for n in range(12)}
    config = nodes[1].config()
    assert all(config["race.key%d" % n] == "v%d" % n for n in range(12))


def _put_at_once(barrier, path, user, key):
    barrier.wait()
    with Store(path) as db:
        db.put(user, key, "yes")


def test_nodes_create_the_same_user_at_the_same_moment(cluster):
    """What authcli's proplist_save or UserPropPut do on two nodes for one new user, released together."""
    nodes = cluster(2)
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        user = "new%d" % attempt
        barrier = context.Barrier(8)
        procs = [context.Process(target=_put_at_once, args=(barrier, nodes[n % 2].root.userprop_db, user, "k%d" % n))
                 for n in range(8)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)

        assert [proc.exitcode for proc in procs] == [0] * 8, attempt
        assert nodes[attempt % 2].userprops()[user] == {"k%d" % n: "yes" for n in range(8)}


def test_concurrent_installs_fill_the_shared_databases_once(tmp_path):
    shared = tmp_path / "cluster-db"
    roots = [str(tmp_path / ("as%d" % n)) for n in range(4)]
    procs = [subprocess.Popen([str(INSTALL), root, "--cluster-db", str(shared)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True) for root in roots]
    outputs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]

    assert [o for o in outputs if o[2] != 0] == []
    configs = [json.loads(sacli(root, "ConfigQuery")) for root in roots]
    assert configs[0]["host.name"] in {"as0", "as1", "as2", "as3"}
    assert all(config == configs[0] for config in configs)
    assert sorted(json.loads(sacli(roots[3], "UserPropGet"))) == ["__DEFAULT__", "openvpn"]
    logs = [Path(root, "log", "openvpnas.log").read_text() for root in roots]
    assert len([log for log in logs if "joined the cluster databases" in log]) == 3


# failover standby --------------------------------------------------------------------------

STANDBY_COMMANDS = {
    "ConfigQuery": ["ConfigQuery"],
    "ConfigPut": ["-k", "standby.key", "-v", "x", "ConfigPut"],
    "ConfigDel": ["-k", "host.name", "ConfigDel"],
    "UserPropGet": ["UserPropGet"],
    "UserPropPut": ["-u", "dave", "-k", "prop_deny", "-v", "true", "UserPropPut"],
    "SetLocalPassword": ["-u", "dave", "--new_pass", "pw", "SetLocalPassword"],
    "start": ["start"],
    "stop": ["stop"],
    "status": ["status"],
    "Version": ["Version"],
    "VPNSummary": ["vpnsummary"],
    "ConfigPut without key": ["ConfigPut"],
}


def standby_error(server):
    return "sacli: could not connect to the Access Server agent at %s: [Errno %d] %s\n" % (
        server.root.sock, errno.ENOENT, os.strerror(errno.ENOENT))


@pytest.mark.parametrize("name, args", STANDBY_COMMANDS.items(), ids=STANDBY_COMMANDS.keys())
def test_every_sacli_command_fails_on_a_standby(make_server, name, args):
    server = make_server("--standby")
    server.root.update_settings(standby=False)
    config, props = server.config(), server.userprops()
    server.root.update_settings(standby=True)
    server.reset_calls()

    proc = server.sacli(*args, check=False)

    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", standby_error(server))
    assert [(c["command"], c["rc"]) for c in server.calls()] == [(name.split()[0], 1)]
    assert not os.path.exists(server.root.sock)
    server.root.update_settings(standby=False)
    assert (server.config(), server.userprops()) == (config, props)
    assert set(json.loads(server.sacli("status").stdout)["service_status"].values()) == {"on"}


def test_a_bad_command_line_is_still_reported_as_such_on_a_standby(make_server):
    server = make_server("--standby")

    proc = server.sacli("NoSuchCommand", check=False)

    assert proc.returncode != 0
    assert "unknown command" in proc.stderr and "agent" not in proc.stderr


def test_turning_standby_off_needs_no_start(make_server):
    server = make_server("--standby", "--vpn-clients", "2")
    assert server.sacli("status", check=False).returncode == 1

    server.settings(standby=False)

    assert os.path.exists(server.root.sock)
    assert set(json.loads(server.sacli("status").stdout)["service_status"].values()) == {"on"}
    assert json.loads(server.sacli("VPNSummary").stdout) == {"n_clients": 2}
    assert restarted(server) == []
    assert [c["command"] for c in server.calls() if c["rc"] != 0] == ["status"]


def test_the_standby_setting_removes_and_restores_the_socket(server, make_server):
    server.settings(standby=True)
    assert not os.path.exists(server.root.sock)
    server.settings(standby=False)
    assert os.path.exists(server.root.sock)

    stopped = make_server("--stopped")
    stopped.settings(standby=True)
    stopped.settings(standby=False)
    assert not os.path.exists(stopped.root.sock)
    assert set(json.loads(stopped.sacli("status").stdout)["service_status"].values()) == {"off"}
    stopped.sacli("start")
    assert os.path.exists(stopped.root.sock)


def test_a_hand_edited_standby_setting_takes_the_socket_away_at_the_next_call(server):
    with open(server.root.settings_file) as handle:
        settings = json.load(handle)
    settings["standby"] = True
    with open(server.root.settings_file, "w") as handle:
        json.dump(settings, handle)
    assert os.path.exists(server.root.sock)

    assert server.sacli("ConfigQuery", check=False).returncode == 1
    assert not os.path.exists(server.root.sock)


def test_faults_stay_armed_while_on_standby(server):
    server.set_fault("ConfigQuery", action="exit", rc=3, stderr="database is locked\n", times=1)
    server.settings(standby=True)

    assert server.sacli("ConfigQuery", check=False).stderr == standby_error(server)
    server.settings(standby=False)
    proc = server.sacli("ConfigQuery", check=False)

    assert (proc.returncode, proc.stderr) == (3, "database is locked\n")
    assert server.sacli("ConfigQuery").returncode == 0


def test_a_standby_that_takes_over_serves_what_the_primary_wrote(cluster):
    primary, standby = cluster(2)
    standby.settings(standby=True)

    primary.sacli("-k", "vpn.client.routing.reroute_dns", "-v", "false", "ConfigPut")
    assert restarted(primary)
    assert standby.sacli("ConfigQuery", check=False).returncode == 1

    primary.settings(standby=True)
    standby.settings(standby=False)

    assert standby.config()["vpn.client.routing.reroute_dns"] == "false"
    assert restarted(standby)  # the new primary applies what changed since its own last start
    assert primary.sacli("status", check=False).returncode == 1
