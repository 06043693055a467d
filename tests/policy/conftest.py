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
