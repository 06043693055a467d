"""The script's identity and seal: what makes a live script known to be the wanted one without rendering it."""

import os
import shutil

import pytest
import yaml

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import seal, sealed_identity
from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PREFIX = "post_auth_"


def params(**changes):
    with open(os.path.join(REPO, "roles", "post_auth", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    values = {name[len(PREFIX):]: value for name, value in defaults.items() if name.startswith(PREFIX)}
    values.update(host_checker_apps=[], device_pinning=True, policy_tests=[{"name": "a", "user": "alice"}])
    values.update(changes)
    return values


def identity(template=compose.TEMPLATE, version="0.1.0", **changes):
    return compose.PostAuth(params(**changes), version, template=template).identity


def test_identity_follows_settings_cases_version_and_templates(tmp_path):
    base = identity()
    assert base == identity(), "the identity is not deterministic"
    assert identity(device_pinning_max_devices=2) != base
    assert identity(policy_tests=[]) != base
    assert identity(version="0.2.0") != base
    # the python that runs the cases and the validating interpreters do not change the script's text
    assert identity(python="/usr/bin/python3.6", validate_interpreters=["python3.8"]) == base

    copied = tmp_path / "templates" / "post_auth"
    shutil.copytree(os.path.dirname(compose.TEMPLATE), str(copied))
    template = str(copied / "frame.py.j2")
    assert identity(template=template) == base, "the digest must not depend on where the templates are"
    block = copied / "blocks" / "device_pinning.py.j2"
    block.write_text(block.read_text() + "\n")
    assert identity(template=template) != base


def test_absent_has_no_identity():
    post_auth = compose.PostAuth(params(state="absent"), "0.1.0")
    assert post_auth.settings is None and post_auth.desired["post_auth"] == {"state": "absent"}


@pytest.mark.parametrize("text", ["", "x = 1\n", "# ovpnas.fleet.identity: abc\nx = 1\n"])
def test_only_a_sealed_script_declares_an_identity(text):
    assert sealed_identity(text) is None
    assert sealed_identity(seal(text)) == ("abc" if "identity" in text else None)


def test_seal_covers_every_byte():
    sealed = seal("# ovpnas.fleet.identity: abc\nx = 1\n")
    assert sealed_identity(sealed) == "abc"
    assert sealed_identity(sealed + "\n") == "abc", "a trailing newline sacli may add is not an edit"
    assert sealed_identity(sealed.replace("x = 1", "x = 2")) is None
    assert sealed_identity(sealed.replace("abc", "abd")) is None
    assert sealed_identity(seal("x = 1")) is None and seal("x = 1").startswith("x = 1\n# ovpnas.fleet.sha256: ")
