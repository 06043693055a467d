"""The emulator as a distribution: what pyproject.toml packages, the installed metadata, asemu-install."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import asemu

HERE = Path(__file__).resolve().parents[1]
PYPROJECT = HERE / "pyproject.toml"
NAME = "ovpnas-fleet-emulator"


@pytest.fixture(scope="module")
def project():
    tomllib = pytest.importorskip("tomllib")
    with PYPROJECT.open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def distribution():
    metadata = pytest.importorskip("importlib.metadata")
    try:
        return metadata.distribution(NAME)
    except metadata.PackageNotFoundError:
        pytest.skip("%s is not installed (pip install -e %s)" % (NAME, HERE))


def test_every_package_and_data_file_is_packaged(project):
    packages = sorted(path.parent.name for path in HERE.glob("*/__init__.py"))
    setuptools = project["tool"]["setuptools"]
    assert sorted(setuptools["packages"]) == packages == ["asemu", "pyovpn"]
    for package in packages:
        data = sorted(path.name for path in (HERE / package).iterdir()
                      if path.is_file() and path.suffix not in (".py", ".pyc"))
        assert sorted(setuptools.get("package-data", {}).get(package, [])) == data, package


def test_the_code_is_this_folder(distribution):
    """The tests run the code of this folder (an editable install), not a copy installed earlier."""
    assert Path(asemu.__file__).resolve() == HERE / "asemu" / "__init__.py", (
        "asemu comes from %s: pip install -e %s" % (asemu.__file__, HERE))
    assert distribution.version == asemu.EMULATOR_VERSION


def test_installed_metadata(distribution):
    assert distribution.metadata["Requires-Python"] == ">=3.6"
    assert sorted(distribution.metadata.get_all("Provides-Extra")) == ["ldap", "radius"]
    requires = distribution.requires or []
    # the emulator itself needs only the standard library; the extras name what LDAP and RADIUS logins need
    assert all("extra ==" in requirement for requirement in requires), requires
    names = sorted(requirement.split(">")[0].split(";")[0].strip() for requirement in requires)
    assert names == ["ldap3", "pyrad", "python-ldap"]
    scripts = {ep.name: ep.value for ep in distribution.entry_points if ep.group == "console_scripts"}
    assert scripts == {"asemu-install": "asemu.install:main", "asemu-traffic": "asemu.traffic:main"}


def test_asemu_install_console_script(tmp_path, distribution):
    script = Path(sys.executable).parent / "asemu-install"
    if not script.exists():
        pytest.skip("no asemu-install next to %s" % sys.executable)
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert help_text.startswith("usage: asemu-install ")

    root = tmp_path / "as"
    proc = subprocess.run([str(script), str(root), "--version", "2.13.1"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run([str(root / "scripts" / "sacli"), "Version"], capture_output=True, text=True,
                             timeout=60, check=True)
    assert version.stdout.strip() == "2.13.1"
    assert (root / "lib" / "python" / "asemu" / "radius.dictionary").is_file()
    assert (root / "lib" / "python" / "pyovpn" / "plugin.py").is_file()

    # ROOT must not exist or be empty, as with the install script
    again = subprocess.run([str(script), str(root)], capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr


def test_installed_root_runs_without_the_distribution(tmp_path):
    """An installed root uses only its own copy under lib/python, not the distribution it was installed from."""
    root = tmp_path / "as"
    subprocess.run([sys.executable, "-m", "asemu.install", str(root)], capture_output=True, text=True, timeout=60,
                   check=True)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # a Python without site-packages: the distribution is out of reach, the copy in ROOT is not
    proc = subprocess.run([sys.executable, "-S", str(root / "scripts" / "sacli"), "Version"], capture_output=True,
                          text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
