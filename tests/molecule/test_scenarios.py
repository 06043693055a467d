"""The Molecule scenarios of molecule/, each a whole `molecule test`, and a converge that must fail.

tests/bin/molecule builds the host images and fetches containers.podman once (cached under
.build/molecule), then runs Molecule; it removes what a failed `test` leaves behind.
"""

import os
import subprocess

import pytest
from conftest import run_to_the_end

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "tests", "bin", "molecule")
SCENARIOS = sorted(d for d in os.listdir(os.path.join(REPO, "molecule"))
                   if os.path.isfile(os.path.join(REPO, "molecule", d, "molecule.yml")))


def molecule(*args, timeout=1200, **env):
    """Run tests/bin/molecule (stopped as by Ctrl-C on a timeout, so that it cleans up)."""
    return run_to_the_end([RUNNER, *args], timeout, dict(PY_COLORS="0", **env))


def containers(prefix):
    conf = os.path.join(REPO, "molecule", "images", "containers.conf")
    # rootful Podman, as tests/bin/molecule runs it
    sudo = [] if os.geteuid() == 0 else ["sudo", "--preserve-env=CONTAINERS_CONF"]
    out = subprocess.run([*sudo, "podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, CONTAINERS_CONF=conf))
    return [name for name in out.stdout.split() if name.startswith(prefix)]


def test_every_scenario_is_here():
    assert SCENARIOS == ["post_auth", "removal", "rollout", "ssh"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario):
    rc, out = molecule("test", "--scenario-name", scenario)
    assert rc == 0, out
    assert "idempotence: Executed: Successful" in " ".join(out.split())
    # the roles and playbooks run as one would expect: no change is taken for one never applied
    assert "was never applied" not in out


def test_an_invalid_variable_fails_the_scenario_clearly_and_leaves_nothing():
    # Molecule's own destroy must remove the containers: the runner's clean-up is kept out of it
    rc, out = molecule("test", "--scenario-name", "post_auth", "--",
                       "--extra-vars=post_auth_device_pinning_mode=sometimes", OVPNAS_MOLECULE_KEEP="1")
    left = containers("ovpnas-pa-")
    if left:
        molecule("destroy", "--scenario-name", "post_auth")
    text = " ".join(out.split())
    assert rc != 0
    # the first step that runs the roles (check, before converge) stops at the validator, naming the variable
    assert "check: Executed: Failed" in text and "converge: Executed" not in text, out
    assert "post_auth_device_pinning_mode must be one of: auto, manual, got: sometimes" in text, out
    assert left == []
