"""Source networks, composed by the post_auth role and driven through the emulator's authcli."""

import pytest
from policy import Log, scenarios, vpn

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_source_networks_allowed": ["10.0.0.0/8", "2001:db8::/32"]},
]

OFFICE = {
    "post_auth_source_networks": True,
    "post_auth_source_networks_allowed": ["10.0.0.0/8", " 192.0.2.7 "],
    "post_auth_messages": {"network_not_allowed": "Connect from the office."},
}


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    return scenarios(tmp_path_factory, {"source-networks": (OFFICE, None)})["source-networks"]


def login_from(sc, user, *options):
    sc.server.set_password(user, user + "-secret")
    return sc.login(user, user + "-secret", *options)


@pytest.mark.parametrize("address", ["10.1.2.3", "192.0.2.7"])
def test_a_login_from_an_allowed_network_succeeds(office, address):
    assert login_from(office, "alice", *vpn(ip=address))["status"] == "SUCCEED"


@pytest.mark.parametrize("address", ["198.51.100.7", "192.0.2.8"])
def test_a_login_from_elsewhere_is_refused_with_the_message(office, address):
    mark = Log(office.server)
    outcome = login_from(office, "bob", *vpn(ip=address))
    assert (outcome["status"], outcome["client_reason"]) == ("FAIL", "Connect from the office.")
    assert "source_networks: %s is in no allowed network" % address in mark.new()


def test_a_login_from_the_server_itself_is_refused(office):
    # authcli's client address is 127.0.0.1 unless told otherwise
    assert login_from(office, "carol")["status"] == "FAIL"


def test_the_script_names_the_capability_in_its_chain(office):
    assert "#   source networks\n" in office.script
    assert "SOURCE_NETWORKS = tuple(ipaddress.ip_network(net) for net in ['10.0.0.0/8', '192.0.2.7/32'])" \
        in office.script
