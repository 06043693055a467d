"""testinfra hosts of a Molecule scenario, reached with testinfra's Podman backend.

testinfra does not know the Podman connection plugin and would otherwise run Ansible for every
command; ``podman://NAME`` runs ``podman exec`` directly. Names come from the scenario's
instance list (MOLECULE_INSTANCE_CONFIG), groups from its molecule.yml.
"""

import os

import yaml


def _platforms():
    with open(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "molecule.yml")) as handle:
        return yaml.safe_load(handle)["platforms"]


def names(group):
    """The instance names of the scenario's platforms in ``group``."""
    return [p["name"] for p in _platforms() if group in p.get("groups", [])]


def podman_hosts(group, user=None):
    """testinfra host specs of ``group``: as root, or as ``user`` inside the containers."""
    return ["podman://%s%s" % ("%s@" % user if user else "", name) for name in names(group)]
