"""The collection in an execution environment, as AWX and Automation Platform run it.

tests/bin/ee makes the build context of tests/ee/execution-environment.yml with ansible-builder 3
(`--create-only`: what these tests check on every run); with OVPNAS_EE=1 it also builds the image
with Podman and rolls the post-auth script out to two emulated servers with ansible-navigator in it.
"""

import json
import os
import re
import tarfile

import pytest
import yaml
from conftest import REPO, Server, recap, run_to_the_end

RUNNER = os.path.join(REPO, "tests", "bin", "ee")
BUILD = os.path.join(REPO, ".build", "ee")
CONTEXT = os.path.join(BUILD, "context")
SCRIPT_KEY = "auth.module.post_auth_script"
IMAGE_COPY = "/usr/share/ansible/collections/ansible_collections"


def version():
    with open(os.path.join(REPO, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


def pinned(package):
    with open(os.path.join(REPO, "requirements-dev.txt")) as handle:
        return next(line.strip() for line in handle if line.startswith(package + "=="))


def ee(*args, timeout, env=None):
    """Run tests/bin/ee (stopped as by Ctrl-C on a timeout, so that it removes its containers)."""
    rc, out = run_to_the_end([RUNNER, *args], timeout, env)
    assert rc == 0, out
    return out


def read(*parts):
    with open(os.path.join(*parts)) as handle:
        return handle.read()


def test_the_collection_declares_what_an_execution_environment_needs():
    # ansible-builder reads meta/execution-environment.yml of an installed collection; each file it
    # names must exist, relative to the collection (a missing one fails the build)
    meta = yaml.safe_load(read(REPO, "meta", "execution-environment.yml"))
    assert meta["dependencies"] == {"system": "bindep.txt"}
    assert not os.path.exists(os.path.join(REPO, "requirements.txt"))
    entries = [line.split("#")[0].split() for line in read(REPO, "bindep.txt").splitlines()]
    assert [e for e in entries if e] == [["openssh-client", "[platform:dpkg]"], ["openssh-clients", "[platform:rpm]"]]


def path_with(tmp_path, clients):
    """A PATH with every command of this one but the container clients, and stand-ins for `clients`.

    A stand-in answers `--version` as a client without an engine would, and fails for anything else.
    """
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = os.path.join(directory, name)
            link = folder / name
            if name in ("docker", "podman") or link.exists() or not os.access(target, os.X_OK):
                continue
            link.symlink_to(target)
    for client in clients:
        stand_in = folder / client
        stand_in.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "%s version 0 (stand-in)" && exit 0\n'
                            'echo "%s stand-in: no engine runs here" >&2\nexit 1\n' % (client, client))
        stand_in.chmod(0o755)
    return str(folder)


@pytest.mark.parametrize("clients", [(), ("docker",), ("podman",), ("docker", "podman")],
                         ids=["no client", "docker only", "podman only", "both"])
def test_the_build_context_is_the_same_whatever_container_clients_are_found(tmp_path, clients):
    # ansible-builder names the build file after the runtime it finds on the PATH (Dockerfile where
    # there is no podman); the image is built with Podman, from a Containerfile, on every machine
    ee("--create-only", timeout=900, env={"PATH": path_with(tmp_path, clients)})
    assert sorted(name for name in os.listdir(CONTEXT) if name.endswith("file")) == ["Containerfile"]
    assert "ARG EE_BASE_IMAGE=" in read(CONTEXT, "Containerfile")


def test_ansible_builder_creates_the_build_context():
    out = ee("--create-only", timeout=900)
    assert "created the build context" in out
    containerfile = read(CONTEXT, "Containerfile")
    args = dict(re.findall(r'^ARG (\w+)="(.*)"$', containerfile, re.M))
    # the base made with debootstrap, apt-get, pip from Debian, the pinned ansible-core and runner
    assert args["EE_BASE_IMAGE"] == "localhost/ovpnas-fleet-base:bookworm"
    assert args["PKGMGR"] == "/usr/bin/apt-get"
    assert args["PYPKG"] == "python3-pip python3-venv"
    assert args["ANSIBLE_INSTALL_REFS"].split() == [pinned("ansible-core"), "ansible-runner==2.4.3"]
    # the one Python requirement: the cryptography of requirements-dev.txt, which does not warn on every run
    assert read(CONTEXT, "_build", "requirements.txt").split() == [pinned("cryptography")]
    # the collection from its tarball, without a Galaxy server, checked whole in the final image
    assert args["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"] == "--offline"
    assert ("ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml "
            '--collections-path "/usr/share/ansible/collections"') in containerfile
    assert "\nRUN ansible-galaxy collection verify --offline ovpnas.fleet\n" in containerfile
    requirements = yaml.safe_load(read(CONTEXT, "_build", "requirements.yml"))
    assert requirements == {"collections": [{"name": "collection/ovpnas-fleet.tar.gz", "type": "file"}]}
    with tarfile.open(os.path.join(CONTEXT, "_build", "collection", "ovpnas-fleet.tar.gz")) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
        members = set(archive.getnames())
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("ovpnas", "fleet", version())
    assert {"bindep.txt", "meta/execution-environment.yml"} <= members
    # the build introspects the installed collection and installs its bindep entries in the final image
    assert "RUN $PYCMD /output/scripts/introspect.py introspect " in containerfile
    assert "RUN /output/scripts/install-from-bindep" in containerfile.split("# Final build stage")[1]
    assert read(BUILD, "introspect", "bindep.txt").splitlines() == [
        "openssh-client [platform:dpkg]  # from collection ovpnas.fleet",
        "openssh-clients [platform:rpm]  # from collection ovpnas.fleet",
    ]


@pytest.mark.skipif(os.environ.get("OVPNAS_EE") != "1", reason="builds an image with Podman: OVPNAS_EE=1 (make ee)")
def test_the_image_rolls_the_script_out_with_ansible_navigator():
    out = ee(timeout=1800)
    # only the image's copy of the collection is seen in the execution environment
    found = json.loads(read(BUILD, "run", "collections.json"))
    assert [path for path, names in found.items() if "ovpnas.fleet" in names] == [IMAGE_COPY]
    assert "the second run changed nothing" in out
    first, again = (read(BUILD, "run", "run%d.log" % n) for n in (1, 2))
    assert "included: %s/ovpnas/fleet/roles/rollout/tasks/" % IMAGE_COPY in first
    for log, changed in ((first, lambda n: n > 0), (again, lambda n: n == 0)):
        hosts = recap(log)
        assert sorted(hosts) == ["as1", "as2"], log
        for result in hosts.values():
            assert changed(result["changed"]) and result["failed"] == 0 and result["unreachable"] == 0, log
    for host in ("as1", "as2"):
        live = Server(os.path.join(BUILD, "fleet", host)).config()[SCRIPT_KEY]
        assert live.startswith("# Generated by ovpnas.fleet") and "\n# ovpnas.fleet.version: %s\n" % version() in live
