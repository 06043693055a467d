"""Which configuration database an Access Server uses, from its etc/as.conf."""

import os

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import agent_socket, database_identity


def access_server(top, as_conf):
    """An Access Server folder with scripts/sacli and etc/as.conf; the sacli path."""
    os.makedirs(os.path.join(top, "scripts"))
    os.makedirs(os.path.join(top, "etc", "db"))
    sacli = os.path.join(top, "scripts", "sacli")
    with open(sacli, "w") as handle:
        handle.write("#!/bin/sh\n")
    if as_conf is not None:
        with open(os.path.join(top, "etc", "as.conf"), "w") as handle:
            handle.write(as_conf)
    with open(os.path.join(top, "etc", "db", "config.db"), "w") as handle:
        handle.write("")
    return sacli


def test_a_local_database_is_named_by_its_real_file(tmp_path):
    one = access_server(str(tmp_path / "one"), "config_db=sqlite:///~/db/config.db\n")
    same = str(tmp_path / "link-to-one")
    os.symlink(str(tmp_path / "one"), same)
    other = access_server(str(tmp_path / "other"), "config_db=sqlite:///~/db/config.db\n")
    identity = database_identity(one)
    assert identity.startswith("sqlite on ") and str(tmp_path / "one" / "etc" / "db" / "config.db") in identity
    assert database_identity(os.path.join(same, "scripts", "sacli")) == identity
    assert database_identity(other) != identity


def test_an_absolute_database_path_is_shared(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "config.db").write_text("")
    conf = "config_db=sqlite:////%s\n" % str(shared / "config.db").lstrip("/")
    assert database_identity(access_server(str(tmp_path / "a"), conf)) == \
        database_identity(access_server(str(tmp_path / "b"), conf))


@pytest.mark.parametrize(("value", "identity"), [
    ("mysql://as:S3cret@DB.example.com:3306/as_config", "mysql://db.example.com:3306/as_config"),
    ("mysql://db.example.com/as_config?charset=utf8", "mysql://db.example.com/as_config"),
    ("MySQL://u@db/as", "mysql://db/as"),
])
def test_a_database_server_is_named_without_credentials(tmp_path, value, identity):
    sacli = access_server(str(tmp_path / "as"), "sa.sock=~/sock/sagent\nconfig_db=%s\n" % value)
    assert database_identity(sacli) == identity
    assert "S3cret" not in (database_identity(sacli) or "")


@pytest.mark.parametrize("as_conf", [None, "", "config_db=\n", "config_db=nonsense\n",
                                     "config_db=sqlite:///~/db/missing.db\n"])
def test_a_database_that_cannot_be_told_is_none(tmp_path, as_conf):
    assert database_identity(access_server(str(tmp_path / "as"), as_conf)) is None


def test_the_last_line_of_a_name_counts(tmp_path):
    sacli = access_server(str(tmp_path / "as"), "sa.sock=~/sock/first\nsa.sock=/run/as/sagent\n")
    assert agent_socket(sacli) == "/run/as/sagent"
    missing = access_server(str(tmp_path / "none"), None)
    assert agent_socket(missing) == str(tmp_path / "none" / "etc" / "sock" / "sagent")
