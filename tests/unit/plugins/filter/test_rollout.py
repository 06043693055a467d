"""rollout filters: Ansible's serial batches, the nodes a host starts, the live hashes, the batch summary."""

from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleFilterError
from ansible.executor.playbook_executor import PlaybookExecutor

from ansible_collections.ovpnas.fleet.plugins.filter import rollout
from ansible_collections.ovpnas.fleet.plugins.filter.rollout import (
    DEFAULT_SACLI,
    FilterModule,
    batches,
    cluster_nodes,
    live_sha256,
    node_sacli_path,
    rollout_plan,
    rollout_queue,
    rollout_record,
)

SCRIPT_KEY = "auth.module.post_auth_script"
QUERY_KEY = "vpn.client.app_verify"
SERIAL = [1, "25%", "100%"]
COLUMNS = ("host", "cluster", "change", "script", "restarted", "clients", "gate")


def names(count):
    return ["as%02d" % i for i in range(1, count + 1)]


# What the rollout role registers and notes on a host (its converge, the start and gate of each node, the failure,
# the restore), noted as the role notes it, with the rollout_record filter, at the end of the batch.
RAW = ("rollout_converge", "rollout_nodes_done", "rollout_failure", "rollout_restored", "rollout_restore_failure")


def recorded(hostvars):
    noted = {}
    for host, data in hostvars.items():
        data = dict(data)
        raw = [data.pop(name, None) for name in RAW]
        if any(value is not None for value in raw):
            data["rollout_record"] = rollout_record(raw[0], raw[1] or [], *raw[2:])
        noted[host] = data
    return noted


def rollout_summary(current, hosts, hostvars, *args):
    return rollout.rollout_summary(current, hosts, recorded(hostvars), *args)


class Inventory:
    def __init__(self, hosts):
        self.hosts = hosts

    def get_hosts(self, pattern, order=None):
        return list(self.hosts)


def ansible_batches(hosts, serial):
    """The batches of Ansible itself: PlaybookExecutor._get_serialized_batches on a play with ``serial``.

    The play's ``serial`` is a list field: Ansible makes a scalar a one-item list when it validates the play.
    """
    executor = PlaybookExecutor.__new__(PlaybookExecutor)
    executor._inventory = Inventory(hosts)
    play = SimpleNamespace(hosts="all", order=None, serial=list(serial) if isinstance(serial, list) else [serial])
    return PlaybookExecutor._get_serialized_batches(executor, play)


# --- rollout_batches ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "serial", "sizes"),
    [
        (1, SERIAL, [1]),
        (3, SERIAL, [1, 1, 1]),
        (5, SERIAL, [1, 1, 3]),
        (10, SERIAL, [1, 2, 7]),
        (200, SERIAL, [1, 50, 149]),
        (7, 3, [3, 3, 1]),
        (7, "3", [3, 3, 1]),
        (10, "30%", [3, 3, 3, 1]),
        (2, "30%", [1, 1]),
        (5, 0, [5]),
        (5, [], [5]),
        (5, [1, 0], [1, 4]),
        (5, -1, [5]),
        (5, [2, 1], [2, 1, 1, 1]),
        (4, 10, [4]),
        (0, SERIAL, []),
        (0, 0, []),
    ],
    ids=str,
)
def test_known_batches(count, serial, sizes):
    hosts = names(count)
    got = batches(hosts, serial)
    assert [len(batch) for batch in got] == sizes
    assert [host for batch in got for host in batch] == hosts, "every host once, in play order"
    assert got == ansible_batches(hosts, serial)


SERIALS = [SERIAL, 1, 2, 3, "30%", "100%", "1%", 0, [], [1, 0], [2, "50%"], [1, "33%", "66%"], ["10%"], [1, 3],
           -1, "0%"]


@pytest.mark.parametrize("serial", SERIALS, ids=str)
def test_the_batches_of_ansible(serial):
    mismatches = []
    for count in (0, 1, 2, 3, 4, 5, 7, 10, 16, 25, 64, 99, 200):
        hosts = names(count)
        if batches(hosts, serial) != ansible_batches(hosts, serial):
            mismatches.append(count)
    assert mismatches == []


def test_every_percentage_rounds_like_ansible():
    """Ansible takes int((pct / 100.0) * hosts); the same product in another order can round differently."""
    mismatches = []
    for percent in range(1, 101):
        serial = "%d%%" % percent
        for count in range(1, 201):
            hosts = names(count)
            ours, theirs = batches(hosts, serial), ansible_batches(hosts, serial)
            if ours != theirs:
                mismatches.append((serial, count, len(ours[0]), len(theirs[0])))
    assert mismatches == [], "(serial, hosts, our first batch, Ansible's): %s" % mismatches


@pytest.mark.parametrize("serial", ["x", "25.5%", ["1", "many"], "%", None], ids=str)
def test_a_serial_that_is_no_number_fails(serial):
    with pytest.raises(AnsibleFilterError, match="is neither a number nor a percentage"):
        batches(names(5), serial)


# --- cluster_nodes and live_sha256 ------------------------------------------------------


CLUSTER_HOSTVARS = {
    "as01": {},
    "as02": {"ovpnas_cluster": "east"},
    "as03": {"ovpnas_cluster": "east"},
    "as04": {"ovpnas_cluster": "west"},
    "as05": {"ovpnas_cluster": "east"},
}


@pytest.mark.parametrize(
    ("host", "order"),
    [("as01", ["as01"]), ("as02", ["as03", "as05", "as02"]), ("as05", ["as02", "as03", "as05"]),
     ("as04", ["as04"])],
)
def test_cluster_nodes(host, order):
    assert cluster_nodes(host, names(5), CLUSTER_HOSTVARS) == order


def test_cluster_nodes_takes_any_sequence_of_hosts():
    assert cluster_nodes("as03", (h for h in ["as03", "as02"]), CLUSTER_HOSTVARS) == ["as02", "as03"]


@pytest.mark.parametrize(
    ("converged", "live"),
    [
        (dict(post_auth=dict(sha256_after="s1"), app_verify=dict(sha256_after="q1")),
         {SCRIPT_KEY: "s1", QUERY_KEY: "q1"}),
        (dict(post_auth=dict(sha256_after="s1")), {SCRIPT_KEY: "s1"}),
        (dict(app_verify=dict(sha256_after="q1")), {QUERY_KEY: "q1"}),
        # removed: nothing live to record
        (dict(post_auth=dict(sha256_after=None), app_verify=dict(sha256_after="q1")), {QUERY_KEY: "q1"}),
        (dict(post_auth="s1"), {}),
        (dict(skipped=True, cluster_writer="as02"), {}),
        ({}, {}),
        (None, {}),
    ],
    ids=["both", "script", "query-file", "script-removed", "not-a-dict", "cluster-node", "empty", "none"],
)
def test_live_sha256(converged, live):
    assert live_sha256(converged) == live


def test_the_filters_are_registered():
    assert FilterModule().filters() == dict(cluster_nodes=cluster_nodes, live_sha256=live_sha256,
                                            node_sacli_path=node_sacli_path, rollout_batches=batches,
                                            rollout_summary=rollout.rollout_summary, rollout_plan=rollout_plan,
                                            rollout_queue=rollout_queue, rollout_record=rollout_record,
                                            rollout_login_errors=rollout.rollout_login_errors,
                                            rollout_database_errors=rollout.rollout_database_errors,
                                            rollout_writer=rollout.rollout_writer,
                                            rollout_promotion=rollout.rollout_promotion,
                                            rollout_stage_error=rollout.rollout_stage_error)


def probes(**hosts):
    """hostvars of servers given as name=(cluster, database, standby)."""
    return {name: dict({"rollout_probe": {"database": database, "standby": standby}},
                       **({"ovpnas_cluster": cluster} if cluster else {}))
            for name, (cluster, database, standby) in hosts.items()}


def test_servers_of_one_database_must_be_one_cluster():
    hostvars = probes(as01=(None, "db-1", False), as02=(None, "db-1", False), as03=(None, "db-3", False),
                      as04=("c1", "db-4", False), as05=("c1", "db-4", False), as06=(None, None, False),
                      as07=(None, None, False))
    assert rollout.rollout_database_errors(sorted(hostvars), hostvars) == [
        "as01, as02 use one configuration database (db-1): one server under several inventory names, or nodes of "
        "one cluster; declare them one ovpnas_cluster, or keep one name"]
    # a cluster node and a lone server on one database; two clusters on one
    hostvars = probes(as01=("c1", "db-1", False), as02=(None, "db-1", False), as03=("c2", "db-1", True))
    assert len(rollout.rollout_database_errors(sorted(hostvars), hostvars)) == 1


def test_a_cluster_of_servers_of_different_databases_is_refused():
    hostvars = probes(as01=("c1", "db-1", False), as02=("c1", "db-2", False), as03=("c1", "db-2", True),
                      as04=("c1", None, False))
    assert rollout.rollout_database_errors(sorted(hostvars), hostvars) == [
        "cluster c1: its nodes use different configuration databases (as01: db-1; as02, as03: db-2), so they are "
        "not one cluster; give each its own ovpnas_cluster, or none"]


@pytest.mark.parametrize(("standby", "writer"), [((), "as02"), (("as02",), "as03"), (("as02", "as03"), "as01"),
                                                 (("as01", "as02", "as03"), "as02")])
def test_a_standby_writer_hands_the_write_to_the_next_live_node(standby, writer):
    hostvars = probes(**{name: ("c1", "db", name in standby) for name in ("as01", "as02", "as03")})
    hostvars["as03"]["ovpnas_cluster_writer"] = "as02"
    assert rollout.rollout_writer("c1", ["as01", "as02", "as03"], hostvars) == writer


def test_the_queue_takes_the_live_nodes_of_a_cluster_that_differs():
    hostvars = probes(as01=("c1", "db", True), as02=("c1", "db", False), as03=("c1", "db", False),
                      as04=(None, "db-4", False))
    hostvars["as03"]["rollout_probe"]["differs"] = True
    assert rollout_queue(sorted(hostvars), hostvars) == ["as02", "as03"]


def staged(differ, standby=(), clusters=None):
    """hostvars of as01..as08: the servers of ``differ`` differ, those of ``standby`` are standby nodes."""
    clusters = clusters or {}
    hostvars = probes(**{name: (clusters.get(name), "db-" + (clusters.get(name) or name), name in standby)
                         for name in names(8)})
    for name in differ:
        hostvars[name]["rollout_probe"]["differs"] = True
    return hostvars


@pytest.mark.parametrize(("differ", "clusters", "canary"), [
    (["as01", "as02", "as03"], {}, ["as01"]),
    (["as03", "as05", "as06", "as07"], {}, ["as03"]),
    # a canary that is a node of a cluster brings the other nodes its writer applies for
    (["as02", "as03", "as06"], {"as02": "c1", "as03": "c1"}, ["as02", "as03"]),
    (["as04"], {}, ["as04"]),
    ([], {}, []),
], ids=["first", "any-order", "cluster", "one", "none"])
def test_the_canary_stage_queues_the_first_batch_only(differ, clusters, canary):
    hostvars = staged(differ, clusters=clusters)
    hosts = names(8)
    assert rollout_queue(hosts, hostvars, "canary", SERIAL) == canary
    assert rollout_queue(hosts, hostvars, "promote", SERIAL) == rollout_queue(hosts, hostvars) == \
        rollout_queue(hosts, hostvars, "all", SERIAL) == [h for h in hosts if h in differ or h in clusters]
    plan = rollout_plan(hosts, hostvars, SERIAL, "canary")
    if len(canary) < len(rollout_queue(hosts, hostvars)):
        waiting = [h for h in rollout_queue(hosts, hostvars) if h not in canary]
        assert plan[-1] == ("The canary stage: %d more wait for the promotion (-e ovpnas_stage=promote): %s"
                            % (len(waiting), ", ".join(waiting)))
        assert plan[0].startswith("Rolling out to %d of 8 servers" % len(canary))
    else:
        assert "promotion" not in " ".join(plan)


def test_a_promotion_needs_a_server_that_holds_the_change():
    hosts = names(8)
    # the canary stage passed on as01: the others differ
    assert rollout.rollout_stage_error(hosts, staged(hosts[1:]), "promote") == ""
    # nothing differs: nothing to do, no error
    assert rollout.rollout_stage_error(hosts, staged([]), "promote") == ""
    # every server that runs services differs (the canary failed and was restored, or never ran): refused
    message = rollout.rollout_stage_error(hosts, staged(hosts[:6], standby=hosts[6:]), "promote")
    assert message == ("nothing to promote: none of the 6 servers holds this change yet, so no canary batch has "
                       "passed with it; roll it out with -e ovpnas_stage=canary first")
    # the other stages never refuse
    assert rollout.rollout_stage_error(hosts, staged(hosts), "all") == ""
    assert rollout.rollout_stage_error(hosts, staged(hosts), "canary") == ""
    with pytest.raises(AnsibleFilterError, match="the stage 'later' is none of all, canary, promote"):
        rollout.rollout_stage_error(hosts, staged(hosts), "later")
    with pytest.raises(AnsibleFilterError, match="the stage 'Canary'"):
        rollout_queue(hosts, staged(hosts), "Canary", SERIAL)


def test_the_end_of_a_canary_stage_names_the_servers_that_wait():
    hostvars = staged(["as01", "as02", "as03"])
    assert rollout.rollout_promotion(["as01"], hostvars) == [
        "The canary batch passed: as01 holds the change",
        "2 servers wait for the promotion: as02, as03",
        "Promote to continue: run the same rollout again with -e ovpnas_stage=promote"]
    assert rollout.rollout_promotion(["as01", "as02"], staged(["as01", "as02"])) == [
        "The canary batch passed: as01, as02 hold the change", "No other server differs: there is nothing to promote"]
    assert rollout.rollout_promotion(["as01"], staged(["as01", "as04"]))[1] == \
        "1 server waits for the promotion: as04"


SECRET = "s3cret-pw"
GOOD = [{"name": "laptop", "user": "canary", "password": SECRET, "client_info": {"IV_PLAT": "win", "N": 1},
         "web": "yes", "expect": {"status": "SUCCEED", "group": "staff"}}]
BAD_LOGINS = [
    ([{"user": ["canary"], "password": SECRET}], "rollout_canary_logins[0].user: must be a string, not a list"),
    ([{"user": "canary", "expect": {"status": "MAYBE"}}],
     "rollout_canary_logins[0].expect: value of status must be one of: SUCCEED, FAIL, got: MAYBE"),
    ([{"password": SECRET}], "rollout_canary_logins[0]: missing required arguments: user"),
    ([{"user": "canary", "pasword": SECRET}], "rollout_canary_logins[0]: 'pasword' is not a field (fields: "),
    ([{"user": "--user=root", "password": SECRET}], "login 1 ('--user=root'): user starts with '-'"),
    ([{"user": "canary", "password": SECRET + "\n"}],
     "login 1 ('canary'): password must not contain control characters"),
    ([{"user": "u" * 1048576}], "user is longer than 4096 characters"),
    ([{"user": "canary", "web": "maybe"}], "rollout_canary_logins[0].web: must be true or false"),
    ("canary", "rollout_canary_logins: must be a list, not a string"),
    ([{"user": "canary", "password": [SECRET]}], "rollout_canary_logins[0].password: must be a string, not a list"),
    ([{"user": "canary", "expect": {"status": 1}}],
     "rollout_canary_logins[0].expect.status: must be a string, not a whole number"),
    ([{"user": "canary", "expect": {"status": "FAIL", "group": "staff"}}], "expect.group needs expect.status SUCCEED"),
]


@pytest.mark.parametrize("logins, message", BAD_LOGINS, ids=[
    "list-user", "status-maybe", "no-user", "misspelt-field", "option-user", "newline", "megabyte-user",
    "odd-boolean", "not-a-list", "list-password", "number-status", "group-of-a-failure"])
def test_every_server_s_own_logins_are_checked(logins, message):
    hostvars = {"as1": {}, "as2": {"rollout_canary_logins": GOOD}, "as3": {"rollout_canary_logins": logins},
                "as4": {}, "as5": {"rollout_canary_logins": logins}}

    errors = rollout.rollout_login_errors(list(hostvars), hostvars, GOOD)

    assert len(errors) == 1, errors
    assert message in errors[0]
    # the servers it hits, and only those
    assert errors[0].endswith(" (as3, as5)")
    assert SECRET not in errors[0] and len(errors[0]) < 400


def test_servers_without_their_own_logins_have_the_play_s():
    hostvars = {"as%d" % i: {} for i in range(1, 16)}
    hostvars["as2"] = {"rollout_canary_logins": GOOD}

    assert rollout.rollout_login_errors(list(hostvars), hostvars, GOOD) == []
    errors = rollout.rollout_login_errors(list(hostvars), hostvars, [{"user": "-x"}], limit=3)
    assert errors == ["rollout_canary_logins: login 1 ('-x'): user starts with '-', which a command would read as "
                      "an option (as1, as3, as4 and 11 more)"]


def test_a_node_without_its_own_sacli_path_has_the_default_one():
    hostvars = {"as01": {"ovpnas_sacli_path": "/opt/as/scripts/sacli"}, "as02": {}}
    assert node_sacli_path("as01", hostvars) == "/opt/as/scripts/sacli"
    assert node_sacli_path("as02", hostvars) == DEFAULT_SACLI == "/usr/local/openvpn_as/scripts/sacli"


def test_a_record_holds_what_the_summary_reads_and_nothing_else():
    converged = dict(changed=True, changed_keys=[SCRIPT_KEY], commands=["sacli ConfigPut"], reads=["x"],
                     post_auth=dict(changed=True, sha256_after="abc"), diff=[{"before": "secret"}])
    nodes = [dict(node="as01", phase="rollout", standby=False, will_restart=["web", "auth"], restarted=["auth"],
                  vpn_clients=3, logins=2, failed=True)]
    record = rollout_record(converged, nodes, "as01: the gate failed: x", {"skipped": True, "changed": False})
    assert record == dict(
        converge=dict(changed=True, failed=False, msg=None, skipped=False, standby=False, cluster_writer=None,
                      script="abc"),
        nodes=[dict(node="as01", phase="rollout", standby=False, restarted=["web", "auth"], vpn_clients=3, logins=2,
                    failed=True, soak=None)],
        failure="as01: the gate failed: x", restored=None, restore_failure=None)
    assert rollout_record(None)["converge"] is None


# --- rollout_summary --------------------------------------------------------------------

SHA_NEW = "0123456789abcdef" * 4
SHA_OLD = "fedcba9876543210" * 4


def done(node, phase="rollout", will_restart=("auth", "web"), restarted=("auth",), clients=4, failed=False,
         standby=False):
    return dict(node=node, phase=phase, standby=standby,
                will_restart=None if will_restart is None else list(will_restart), restarted=list(restarted),
                vpn_clients=clients, logins=1, failed=failed)


def changed_host(*entries, sha=SHA_NEW):
    post_auth = dict(changed=True, sha256_after=sha)
    return dict(rollout_converge=dict(changed=True, changed_keys=[SCRIPT_KEY], post_auth=post_auth),
                rollout_nodes_done=list(entries))


def unchanged_host():
    post_auth = dict(changed=False, sha256_after=SHA_NEW)
    return dict(rollout_converge=dict(changed=False, changed_keys=[], post_auth=post_auth))


def standby_host():
    msg = "the Access Server agent socket ... does not exist; skipped"
    return dict(rollout_converge=dict(changed=False, skipped=True, standby=True, msg=msg))


def cluster_node(writer, cluster="east"):
    msg = "node of cluster %s: its configuration is written from %s" % (cluster, writer)
    converge = dict(changed=False, skipped=True, cluster=cluster, cluster_writer=writer, msg=msg)
    return dict(ovpnas_cluster=cluster, rollout_converge=converge)


def converge_failed(msg="a policy case failed: mallory gets in; nothing was changed"):
    return dict(rollout_converge=dict(failed=True, changed=False, msg=msg))


def restored_host(failure, restore_failure=None, restored_changed=True):
    data = changed_host(done("as00", failed=True), done("as00", phase="restore"))
    data.update(rollout_failure=failure, rollout_started=["as00"],
                rollout_restored=dict(changed=restored_changed, restored_keys=[SCRIPT_KEY],
                                      post_auth=dict(sha256_before=SHA_NEW, sha256_after=SHA_OLD)))
    if restore_failure:
        data["rollout_restore_failure"] = restore_failure
    return data


def fix_nodes(hostvars, count=None):
    """Every host of the inventory has hostvars (empty for those not reached yet); entries of node "as00" belong
    to their own host."""
    hostvars = dict({host: {} for host in names(count or len(hostvars))}, **hostvars)
    for host, data in hostvars.items():
        for entry in data.get("rollout_nodes_done", []):
            if entry["node"] == "as00":
                entry["node"] = host
    return hostvars


def table(lines):
    """The rows of the summary's table: {host: {column: text}}, cut where the header's columns start."""
    header = lines[1]
    starts = [header.index(column.upper()) for column in COLUMNS]
    assert starts == sorted(starts), header
    rows = {}
    for line in lines[2:]:
        if line.startswith("Total after batch") or not line[:starts[1]].strip().startswith("as"):
            break
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None])]
        rows[cells[0]] = dict(zip(COLUMNS, cells))
    return rows


def test_summary_of_a_passed_batch():
    hosts = names(10)
    hostvars = fix_nodes({
        "as01": changed_host(done("as00", will_restart=["auth", "web"], clients=4)),
        "as02": unchanged_host(),
        "as03": standby_host(),
        "as04": dict(changed_host(done("as05", clients=2), done("as00", clients=3)), ovpnas_cluster="east"),
        "as05": cluster_node("as04"),
        "as06": changed_host(done("as00", will_restart=None, restarted=["api", "web"], clients=None)),
        "as07": changed_host(done("as00", will_restart=[], restarted=[], clients=0)),
        "as08": unchanged_host(),
        "as09": unchanged_host(),
        "as10": unchanged_host(),
    })
    lines = rollout_summary("as04", hosts, hostvars, SERIAL)
    assert lines[0] == "Batch 3 of 3 (as04, as05, as06, as07, as08, as09, as10)"
    rows = table(lines)
    assert list(rows) == ["as04", "as05", "as06", "as07", "as08", "as09", "as10"], "only the current batch"
    assert rows["as04"] == dict(host="as04", cluster="east", change="changed", script=SHA_NEW[:12],
                                restarted="auth, web", clients="3", gate="passed")
    assert rows["as05"] == dict(host="as05", cluster="east", change="via as04", script="", restarted="auth, web",
                                clients="2", gate="passed")
    # no WILL_RESTART line: what start reported as restarted
    assert rows["as06"]["restarted"] == "api, web" and rows["as06"]["clients"] == ""
    assert rows["as07"]["restarted"] == "nothing" and rows["as07"]["clients"] == "0"
    assert rows["as08"] == dict(host="as08", cluster="-", change="unchanged", script=SHA_NEW[:12], restarted="-",
                                clients="", gate="-")
    assert lines[-1] == ("Total after batch 3 of 3: 10 of 10 hosts reached (4 changed, 4 unchanged, 1 cluster node, "
                         "1 skipped)")
    assert len(lines) == 2 + 7 + 1, "no failure lines"

    canary = rollout_summary("as01", hosts, hostvars, SERIAL)
    assert canary[0] == "Batch 1 of 3 (as01)"
    assert table(canary)["as01"] == dict(host="as01", cluster="-", change="changed", script=SHA_NEW[:12],
                                         restarted="auth, web", clients="4", gate="passed")
    assert canary[-1] == "Total after batch 1 of 3: 1 of 10 hosts reached (1 changed)"

    second = rollout_summary("as03", hosts, hostvars, SERIAL)
    assert table(second)["as03"] == dict(host="as03", cluster="-", change="skipped", script="", restarted="",
                                         clients="", gate="standby: no services run here")
    assert second[-1] == "Total after batch 2 of 3: 3 of 10 hosts reached (1 changed, 1 unchanged, 1 skipped)"


def soaked(verdict, before, after, msg=None, failed=False):
    """A node entry of a soak: ``before`` and ``after`` are (logins, failures, failure rate in percent)."""
    entry = done("as00", failed=failed)
    window = [dict(logins=n, failures=f, failure_rate=r, challenges=0, platforms={}) for n, f, r in (before, after)]
    entry["soak"] = dict(verdict=verdict, before=window[0], after=window[1], msg=msg, rises=[], duration=30,
                         changed=False, polls=4)
    return entry


def test_the_summary_shows_each_soak_with_its_logins_and_rates():
    hosts = names(3)
    hostvars = fix_nodes({
        "as01": changed_host(soaked("pass", (120, 4, 3.33), (118, 5, 4.24), msg="passed: no rise")),
        "as02": changed_host(done("as00")),
        "as03": unchanged_host(),
    })
    lines = rollout_summary("as01", hosts, hostvars, SERIAL)
    assert lines[-2] == ("as01: soak of 30 s passed; before the change 120 logins, 3.3% failed; after it 118 logins, "
                         "4.2% failed")
    # an inconclusive soak that passes says why
    hostvars["as01"] = changed_host(soaked("inconclusive", (3, 0, 0.0), (2, 0, 0.0), msg="too few logins: 3 and 2"))
    fix_nodes(hostvars)
    assert rollout_summary("as01", hosts, hostvars, SERIAL)[-2] == (
        "as01: soak of 30 s inconclusive; before the change 3 logins, 0.0% failed; after it 2 logins, 0.0% failed "
        "(too few logins: 3 and 2)")
    # batches without a soak have no such line
    assert not any("soak" in line for line in rollout_summary("as02", hosts, hostvars, SERIAL))
    # a record of a soak that did not run (skipped) has none
    assert rollout_record({"changed": True}, [dict(done("as00"), soak={"skipped": True, "duration": 30})])[
        "nodes"][0]["soak"] is None


def test_a_failed_soak_is_named_once_with_the_failure():
    failure = "as01: the soak failed: android: failures rose from 2% to 100% (+98 points; 24 of 24 logins failed)"
    host = restored_host(failure)
    host["rollout_nodes_done"] = [soaked("fail", (100, 2, 2.0), (90, 26, 28.89), msg=failure[24:], failed=True),
                                  done("as00", phase="restore")]
    hostvars = fix_nodes({"as01": host, "as02": changed_host(done("as00"))})
    lines = rollout_summary("as01", names(2), hostvars, SERIAL)
    assert table(lines)["as01"]["gate"] == "FAILED"
    assert failure in lines
    assert ("as01: soak of 30 s FAILED; before the change 100 logins, 2.0% failed; after it 90 logins, 28.9% failed"
            in lines)
    # a soak that found no answer (logdba failed) is no pass
    host["rollout_nodes_done"][0]["soak"] = dict(failed=True, msg="logdba failed with exit code 2", duration=30)
    fix_nodes(hostvars)
    assert "as01: soak of 30 s FAILED; before the change ?; after it ?" in rollout_summary(
        "as01", names(2), hostvars, SERIAL)


def test_summary_of_a_batch_whose_gate_failed():
    hosts = names(10)
    gate = "as02: the gate failed: login alice: expected SUCCEED, got FAIL"
    start = "as03: sacli start failed: sacli start reported errors: auth"
    hostvars = fix_nodes({
        "as01": changed_host(done("as00")),
        "as02": restored_host(gate),
        "as03": restored_host(start, restore_failure="as03: the gate failed: services not on after 120 seconds"),
    }, 10)
    lines = rollout_summary("as02", hosts, hostvars, SERIAL)
    assert lines[0] == "Batch 2 of 3 (as02, as03)"
    rows = table(lines)
    # the restored script is the previous one
    assert rows["as02"] == dict(host="as02", cluster="-", change="restored", script=SHA_OLD[:12],
                                restarted="auth, web", clients="4", gate="FAILED")
    assert rows["as03"]["change"] == "FAILED" and rows["as03"]["gate"] == "FAILED"
    # the failures name their node already
    assert lines[-3] == gate
    # as03's restore wrote; its start and gate again failed
    assert lines[-2] == start + ("; the previous configuration was restored, but starting and gating it again "
                                 "failed: as03: the gate failed: services not on after 120 seconds")
    assert lines[-1] == ("Total after batch 2 of 3: 3 of 10 hosts reached (1 changed, 2 failed); the rollout stops "
                         "here, 7 hosts not reached")


def test_a_restore_that_changed_nothing_is_no_restore():
    hostvars = fix_nodes({"as01": restored_host("as01: the gate failed: x", restored_changed=False)}, 3)
    rows = table(rollout_summary("as01", names(3), hostvars, SERIAL))
    assert rows["as01"]["change"] == "FAILED" and rows["as01"]["gate"] == "FAILED"


def test_summary_of_a_failed_converge():
    hostvars = fix_nodes({"as01": converge_failed()}, 10)
    lines = rollout_summary("as01", names(10), hostvars, SERIAL)
    assert table(lines)["as01"] == dict(host="as01", cluster="-", change="failed", script="", restarted="",
                                        clients="", gate="not run")
    assert lines[-2] == "as01: a policy case failed: mallory gets in; nothing was changed"
    assert lines[-1] == ("Total after batch 1 of 3: 1 of 10 hosts reached (1 failed); the rollout stops here, "
                         "9 hosts not reached")


def test_a_long_failure_is_shortened_to_one_line():
    hostvars = {"as01": converge_failed("first line\n  second line " + "x" * 600)}
    lines = rollout_summary("as01", names(1), hostvars, 1)
    failure = lines[-2]
    assert failure.startswith("as01: first line second line x") and failure.endswith("...")
    assert len(failure) == 400 and "\n" not in failure


def test_a_failure_in_the_last_batch_does_not_stop_anything():
    hostvars = {"as01": changed_host(done("as01")), "as02": converge_failed(), "as03": unchanged_host()}
    lines = rollout_summary("as03", names(3), hostvars, SERIAL)
    assert lines[-1] == "Total after batch 3 of 3: 3 of 3 hosts reached (1 changed, 1 unchanged, 1 failed)"


def test_hosts_of_the_batch_not_reached():
    """any_errors_fatal: the first failure ends the batch before other hosts have a result."""
    hostvars = fix_nodes({"as01": changed_host(done("as01")), "as02": converge_failed()}, 5)
    lines = rollout_summary("as02", names(5), hostvars, [1, 2, 2])
    rows = table(lines)
    assert rows["as03"] == dict(host="as03", cluster="-", change="not reached", script="", restarted="", clients="",
                                gate="")
    assert lines[-1] == ("Total after batch 2 of 3: 3 of 5 hosts reached (1 changed, 1 failed, 1 not reached); "
                         "the rollout stops here, 2 hosts not reached")


def test_a_changed_host_whose_handler_did_not_run():
    hostvars = {"as01": changed_host()}
    assert table(rollout_summary("as01", names(1), hostvars, 1))["as01"]["gate"] == "not run"


def test_cluster_nodes_are_counted_in_the_plural():
    hostvars = fix_nodes({
        "as01": dict(changed_host(done("as02"), done("as03"), done("as00")), ovpnas_cluster="east"),
        "as02": cluster_node("as01"),
        "as03": cluster_node("as01"),
    })
    lines = rollout_summary("as01", names(3), hostvars, 0)
    assert lines[0] == "Batch 1 of 1 (as01, as02, as03)"
    assert lines[-1] == "Total after batch 1 of 1: 3 of 3 hosts reached (1 changed, 2 cluster nodes)"


def test_a_cluster_node_its_writer_has_not_started_yet():
    """ovpnas_cluster_writer names a node of a later batch: an earlier node waits for it."""
    hostvars = fix_nodes({"as01": cluster_node("as03"), "as03": dict(changed_host(), ovpnas_cluster="east")}, 3)
    rows = table(rollout_summary("as01", names(3), hostvars, SERIAL))
    assert rows["as01"] == dict(host="as01", cluster="east", change="via as03", script="", restarted="", clients="",
                                gate="-")


def test_a_cluster_node_whose_gate_failed_is_not_shown_as_passed():
    failure = "as02: the gate failed: login alice: expected SUCCEED, got FAIL"
    writer = changed_host(done("as02", failed=True), done("as02", phase="restore"), done("as01", phase="restore"))
    writer.update(ovpnas_cluster="east", rollout_failure=failure, rollout_started=["as02"],
                  rollout_restored=dict(changed=True, post_auth=dict(sha256_after=SHA_OLD)))
    hostvars = {"as01": writer, "as02": cluster_node("as01")}
    rows = table(rollout_summary("as01", names(2), hostvars, 0))
    assert rows["as01"]["change"] == "restored" and rows["as01"]["gate"] == "FAILED"
    assert rows["as02"]["change"] == "via as01"
    assert rows["as02"]["gate"] == "FAILED", "the node's own gate failed"


def test_a_cluster_node_on_standby_is_not_shown_as_gated():
    """The writer's start found the node a standby: it was skipped and not gated."""
    writer = changed_host(done("as02", standby=True, will_restart=None, restarted=(), clients=None), done("as01"))
    writer["ovpnas_cluster"] = "east"
    hostvars = {"as01": writer, "as02": cluster_node("as01")}
    rows = table(rollout_summary("as01", names(2), hostvars, 0))
    assert rows["as02"]["change"] == "via as01"
    assert rows["as02"]["gate"] == "standby: no services run here"


def test_no_hosts():
    assert rollout_summary("as01", [], {}, SERIAL) == [
        "Batch 0 of 0 (no hosts)", "HOST  CLUSTER  CHANGE  SCRIPT  RESTARTED  CLIENTS  GATE",
        "Total after batch 0 of 0: 0 of 0 hosts reached (none)"]


# --- the plan: which servers the rollout goes to -------------------------------------------------

PROBED = {
    "as01": {"rollout_probe": {"changed": False, "differs": True}},
    "as02": {"rollout_probe": {"changed": False, "differs": False}},
    "as03": {"rollout_probe": {"changed": False, "skipped": True, "standby": True}},
    # a cluster whose writer differs: its other node goes with it
    "as04": {"ovpnas_cluster": "c1", "rollout_probe": {"changed": False, "differs": True}},
    "as05": {"ovpnas_cluster": "c1", "rollout_probe": {"changed": False, "skipped": True, "cluster_writer": "as04"}},
    # a cluster whose writer is in sync: its other node stays
    "as06": {"ovpnas_cluster": "c2", "rollout_probe": {"changed": False, "differs": False}},
    "as07": {"ovpnas_cluster": "c2", "rollout_probe": {"changed": False, "skipped": True, "cluster_writer": "as06"}},
}


def test_the_queue_is_what_differs_with_its_cluster_nodes_in_play_order():
    hosts = sorted(PROBED)
    assert rollout_queue(hosts, PROBED) == ["as01", "as04", "as05"]
    assert rollout_queue(list(reversed(hosts)), PROBED) == ["as05", "as04", "as01"]


def test_the_plan_names_the_batches_and_what_is_left_alone():
    plan = rollout_plan(sorted(PROBED), PROBED, SERIAL)
    assert plan == [
        "Rolling out to 3 of 7 servers, in 3 batches: as01; as04; as05",
        "Already as the inventory says, left alone: as02, as06, as07",
        "Standby (no services run there), skipped: as03",
    ]


def test_a_plan_with_nothing_to_do():
    hostvars = {name: {"rollout_probe": {"changed": False, "differs": False}} for name in names(3)}
    assert rollout_plan(names(3), hostvars, SERIAL) == [
        "Nothing to roll out: 3 of 3 servers are as the inventory says (one read each)"]


def test_a_long_list_of_servers_left_alone_is_cut():
    hostvars = {name: {"rollout_probe": {"differs": name == "as01"}} for name in names(30)}
    plan = rollout_plan(names(30), hostvars, SERIAL)
    assert plan[1] == "Already as the inventory says, left alone: %s and 9 more" % ", ".join(names(21)[1:])


def test_the_summary_counts_the_servers_the_plan_left_alone():
    hostvars = dict(PROBED, as01=dict(PROBED["as01"], rollout_converge={"changed": False}))
    total = rollout_summary("as01", rollout_queue(sorted(PROBED), PROBED), hostvars, SERIAL)[-1]
    # as02, as06 and as07 are in sync; as03 is a standby
    assert total.endswith("; 3 more already as the inventory says")
