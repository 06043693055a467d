"""cluster: which node of an Access Server cluster writes its configuration, and the order its nodes start in."""

import pytest

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.cluster import apply_order, cluster_members, cluster_writer

HOSTS = ["as01", "as02", "as03", "as04", "as05", "as06"]


def hostvars(**writers):
    """Two clusters interleaved in play order (east: as02, as04, as05; west: as03, as06) and a lone server."""
    data = {
        "as01": {},
        "as02": {"ovpnas_cluster": "east"},
        "as03": {"ovpnas_cluster": "west"},
        "as04": {"ovpnas_cluster": "east"},
        "as05": {"ovpnas_cluster": "east"},
        "as06": {"ovpnas_cluster": "west"},
    }
    for host, writer in writers.items():
        data[host]["ovpnas_cluster_writer"] = writer
    return data


def test_members_are_in_play_order():
    assert cluster_members("east", HOSTS, hostvars()) == ["as02", "as04", "as05"]
    assert cluster_members("west", HOSTS, hostvars()) == ["as03", "as06"]
    assert cluster_members("north", HOSTS, hostvars()) == []
    # only the play's hosts count
    assert cluster_members("east", ["as05", "as04"], hostvars()) == ["as05", "as04"]


@pytest.mark.parametrize(
    ("writers", "hosts", "cluster", "writer"),
    [
        ({}, HOSTS, "east", "as02"),
        ({}, HOSTS, "west", "as03"),
        ({}, ["as01", "as04", "as05", "as06"], "east", "as04"),
        ({}, HOSTS, "north", None),
        ({"as02": "as05"}, HOSTS, "east", "as05"),
        # any node may name it, not only the first
        ({"as05": "as04"}, HOSTS, "east", "as04"),
        # a cluster's choice does not leak into another cluster
        ({"as02": "as05"}, HOSTS, "west", "as03"),
        ({"as02": "as06"}, HOSTS, "east", None),
        ({"as02": "nosuchhost"}, HOSTS, "east", None),
        # a member that is not among the play's hosts is no writer for this play
        ({"as02": "as05"}, ["as02", "as04"], "east", None),
        ({"as02": ""}, HOSTS, "east", "as02"),
    ],
    ids=["first", "first-west", "first-of-the-play", "no-member", "named", "named-by-another-node",
         "other-cluster", "non-member", "unknown-host", "not-in-play", "empty-name"],
)
def test_writer(writers, hosts, cluster, writer):
    assert cluster_writer(cluster, hosts, hostvars(**writers)) == writer


@pytest.mark.parametrize(
    ("host", "hosts", "order"),
    [
        ("as01", HOSTS, ["as01"]),
        ("as02", HOSTS, ["as04", "as05", "as02"]),
        ("as04", HOSTS, ["as02", "as05", "as04"]),
        ("as05", HOSTS, ["as02", "as04", "as05"]),
        ("as06", HOSTS, ["as03", "as06"]),
        ("as02", ["as01", "as02"], ["as02"]),
        ("as04", ["as05", "as04", "as02"], ["as05", "as02", "as04"]),
    ],
    ids=["no-cluster", "first", "middle", "last", "west", "alone-in-the-play", "play-order"],
)
def test_apply_order_starts_the_others_first_and_itself_last(host, hosts, order):
    assert apply_order(host, hosts, hostvars()) == order
