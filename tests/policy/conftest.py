"""Session fixtures: a private OpenLDAP slapd and a private FreeRADIUS on loopback.

Both are started once per test session, from the Debian packages (installed through
tests/bin/system-packages when missing), with their own configuration in a temporary folder; they
are stopped (terminate, wait) when the session ends.  Each fixture returns the running server:
connection details and ``configure(server, ...)``, which points an emulated Access Server at it.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers
import servers


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """A running slapd with the directory of fixtures/directory.ldif: a servers.Slapd."""
    servers.ensure_packages("slapd", "ldap-utils")
    server = servers.Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def freeradius(tmp_path_factory):
    """A running FreeRADIUS with the users of fixtures/radius-users: a servers.FreeRadius."""
    servers.ensure_packages("freeradius")
    server = servers.FreeRadius(tmp_path_factory.mktemp("freeradius"))
    server.start()
    yield server
    server.stop()


# Loopback peers of the Duo, custom authentication and challenge tests (peers.py) -------------------
#
# The servers start once per session; the function-scoped fixtures tests use (duo, http_peer,
# bad_tls_peers) reset() them before and after every test: scripts, users, tokens, behaviour switches
# and recorded requests never leak from one test into the next.


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """The throwaway PKI, made once with the openssl command line: a peers.Certs of file paths
    (ca_file, server_cert/server_key, other_ca_file, other_cert/other_key, wrong_name_cert/wrong_name_key)."""
    servers.ensure_packages("openssl")
    return peers.make_certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def duo_session(test_ca):
    """The session's Duo Auth API stand-in (tests use ``duo``)."""
    standin = peers.DuoStandIn(test_ca).start()
    yield standin
    standin.stop()


@pytest.fixture
def duo(duo_session):
    """A running peers.DuoStandIn, reset: no scripts (unscripted users get preauth "enroll"), no requests."""
    duo_session.reset()
    yield duo_session
    duo_session.reset()


@pytest.fixture(scope="session")
def http_peer_session(test_ca):
    """The session's authentication and verification endpoint (tests use ``http_peer``)."""
    peer = peers.HttpPeer(test_ca.server_cert, test_ca.server_key).start()
    yield peer
    peer.stop()


@pytest.fixture
def http_peer(http_peer_session):
    """A running peers.HttpPeer over HTTPS with the test CA's certificate, reset: the default users and
    challenges (peers.PEER_USERS, peers.PEER_CHALLENGES), no token, normal behaviour, no requests."""
    http_peer_session.reset()
    yield http_peer_session
    http_peer_session.reset()


@pytest.fixture(scope="session")
def bad_tls_session(test_ca):
    """The session's HTTPS peers whose certificates a client trusting only the test CA must reject."""
    other_ca = peers.HttpPeer(test_ca.other_cert, test_ca.other_key).start()
    try:
        wrong_name = peers.HttpPeer(test_ca.wrong_name_cert, test_ca.wrong_name_key).start()
    except BaseException:
        other_ca.stop()
        raise
    bad = peers.BadTlsPeers(other_ca=other_ca, wrong_name=wrong_name)
    yield bad
    bad.stop()


@pytest.fixture
def bad_tls_peers(bad_tls_session):
    """A peers.BadTlsPeers, reset: ``.other_ca``, a peers.HttpPeer whose certificate (127.0.0.1, localhost)
    an unrelated CA signed; ``.wrong_name``, one whose certificate the test CA signed for DNS:wrong.example."""
    bad_tls_session.reset()
    yield bad_tls_session
    bad_tls_session.reset()


@pytest.fixture
def down_url():
    """An https:// URL of a free port of 127.0.0.1 where nothing listens (peers.down_url())."""
    return peers.down_url()
