"""Every combination of the post-auth script's capabilities, rendered in-process and reviewed.

Each capability is off or on, in one of its variants (each variant is taken, and rendered); every script
is rendered with the role's own path (role_variables, PostAuth, the template lookup: Jinja, no playbook),
then compiled by every Python 3 of the machine, as Access Server compiles it (from its text, as
``<string>``), and checked by ruff's pycodestyle and pyflakes rules (E, W and F, lines of 120 at most):
a script reads like the rest of the collection's Python and holds no name it does not use. The
normalizers a script shares with the controller (hardware addresses, LDAP DNs) give the same results.
"""

import ast
import glob
import itertools
import json
import os
import shutil
import subprocess
import sys

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, lookup_loader
from ansible.template import Templar

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
POLICY = os.path.join(REPO, "tests", "policy")


def read_variants(name):
    """The ``VARIANTS`` literal of the capability's policy test file: what turns it on, per variant."""
    path = os.path.join(POLICY, "test_policy_%s.py" % name)
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["VARIANTS"]:
            return ast.literal_eval(node.value)
    raise AssertionError("%s has no VARIANTS: the capability %s is not in the combinations" % (path, name))


def capabilities():
    """Every capability of the registry, in the chain's order, with its variants."""
    from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import CHAIN

    return {name: read_variants(name) for name in CHAIN}


def combinations():
    """Every set of capabilities that are on (63 for six); each on in one of its variants, taken in turn."""
    found = capabilities()
    names = list(found)
    for number, switches in enumerate(itertools.product([False, True], repeat=len(names))):
        enabled = [name for name, on in zip(names, switches) if on]
        if not enabled:
            continue
        inventory = {"host_checker_apps": []}
        labels = []
        for name in enabled:
            variants = found[name]
            variant = number % len(variants)
            inventory["post_auth_%s" % name] = True
            inventory.update(variants[variant])
            labels.append("%s%s" % (name, variant + 1 if len(variants) > 1 else ""))
        yield "+".join(labels), inventory


def every_variant():
    return {"%s%s" % (name, n + 1 if len(variants) > 1 else "")
            for name, variants in capabilities().items() for n in range(len(variants))}


def test_every_variant_is_taken():
    taken = {label for name, _inventory in combinations() for label in name.split("+")}
    assert taken == every_variant()


def render_all(folder):
    """Render every combination into ``folder``: {name: [path, features]} and {name: why it was refused}.

    Runs in a process of its own (see ``scripts``): Ansible's collection loader is set up once per
    process, and other tests of the same run set it up their way.
    """
    init_plugin_loader([os.path.join(REPO, ".collections")])
    from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose

    loader = DataLoader()
    templar = Templar(loader=loader, variables={})
    template = lookup_loader.get("ansible.builtin.template", loader=loader, templar=templar)
    rendered, refused = {}, {}
    for name, inventory in combinations():
        try:
            values = compose.role_variables(loader, templar, inventory, ["post_auth"])
            post_auth = compose.PostAuth(compose.unprefixed(values, "post_auth"), "0.1.0",
                                         lambda path, tv: template.run([path], {}, template_vars=tv)[0])
        except compose.ComposeError as exc:
            refused[name] = str(exc)
            continue
        text = post_auth.content()
        path = os.path.join(folder, name.replace("+", "__") + ".py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        rendered[name] = [path, post_auth.settings["settings"]["features"]]
    return rendered, refused


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """name -> (path, features) of every script that renders; the refused combinations with their reason."""
    folder = tmp_path_factory.mktemp("scripts")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(folder)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rendered, refused = json.loads(proc.stdout)
    return {name: tuple(value) for name, value in rendered.items()}, refused


def pythons():
    found = {}
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3"))
                       + glob.glob("/root/.pyenv/versions/3.*/bin/python3") + [sys.executable]):
        version = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=False).stdout.strip()
        if version:
            found.setdefault(version, path)
    return found


def test_every_combination_renders_or_is_refused_by_name(scripts):
    rendered, refused = scripts
    assert len(rendered) + len(refused) == len(list(combinations()))
    # only Duo and the custom challenge together are refused (one MFA per script), each naming both
    for name, message in refused.items():
        assert "duo" in name and "challenge" in name, (name, message)
        assert "post_auth_duo" in message and "post_auth_challenge" in message, message
    # every non-empty set of the capabilities, less those with both second factors
    count = len(capabilities())
    both = 2 ** (count - 2)
    assert len(rendered) == 2 ** count - 1 - both and len(refused) == both, sorted(refused)
    for name, (_path, features) in rendered.items():
        assert sorted(features) == sorted(part.rstrip("0123456789") for part in name.split("+")), name
    # each variant renders in a script at least once, not only in combinations that are refused (a capability
    # with an even number of variants may be taken by Duo and the challenge together only)
    assert {label for name in rendered for label in name.split("+")} == every_variant()


def test_every_script_compiles_on_every_python(scripts):
    rendered = scripts[0]
    paths = [path for path, _features in rendered.values()]
    found = pythons()
    assert found
    check = ("import sys\nfor path in sys.argv[1:]:\n"
             "    compile(open(path, 'rb').read().decode('utf-8'), '<string>', 'exec')\n")
    for version, python in sorted(found.items()):
        proc = subprocess.run([python, "-W", "error", "-c", check] + paths, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, "Python %s: %s" % (version, proc.stderr[-2000:])


# ruff's pycodestyle (E, W) and pyflakes (F) rules; those of pycodestyle about indentation, whitespace and
# blank lines are ruff's preview rules, so both sets are checked
RUFF = ["check", "--isolated", "--no-cache", "--select", "E,W,F", "--line-length", "120", "--output-format", "json"]


@pytest.mark.parametrize("preview", [False, True], ids=["rules", "preview-rules"])
def test_every_script_is_clean_python(scripts, preview):
    rendered = scripts[0]
    ruff = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    folder = os.path.dirname(next(iter(rendered.values()))[0])
    proc = subprocess.run([ruff, *RUFF, *(["--preview"] if preview else []), folder], capture_output=True,
                          text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    problems = json.loads(proc.stdout or "[]")
    assert problems == [], ["%s:%s %s %s" % (os.path.basename(p["filename"]), p["location"]["row"], p["code"],
                                             p["message"]) for p in problems][:20]


# (input, what both normalizers make of it): separators, case, surrounding space and line ends, odd input
HW_ADDRESSES = [
    ("00:11:22:33:44:55", "00:11:22:33:44:55"),
    ("00-11-22-33-44-55", "00:11:22:33:44:55"),
    ("001122334455", "00:11:22:33:44:55"),
    ("00-1A-2b-3c-4D-5e", "00:1a:2b:3c:4d:5e"),
    ("AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"),
    ("AABBCCDDEEFF", "aa:bb:cc:dd:ee:ff"),
    ("00:11:22:33:44:55\n", "00:11:22:33:44:55"),
    ("00:11:22:33:44:55\r\n", "00:11:22:33:44:55"),
    (" \t00-11-22-33-44-55 \n", "00:11:22:33:44:55"),
    ("\u200300:11:22:33:44:55\u3000", "00:11:22:33:44:55"),
    ("00:11:22:33:44:55\nx", None),
    ("00:11:22:33:44:55\n\u200b", None),
    ("00:11:22\n:33:44:55", None),
    ("00:11:22:33:44:55\x00", None),
    ("00:11-22:33:44:55", None),
    ("00:1122:33:44:55", None),
    ("0011.2233.4455", None),
    ("00.11.22.33.44.55", None),
    ("00 11 22 33 44 55", None),
    ("00:11:22:33:44", None),
    ("00:11:22:33:44:55:66", None),
    ("0:11:22:33:44:55", None),
    ("001122334455a", None),
    ("gg:11:22:33:44:55", None),
    ("\uff10\uff10:11:22:33:44:55", None),
    ("\u0660\u0660:11:22:33:44:55", None),
    # the device UUID an iOS or Android client sends instead of a MAC address
    ("9B2C5E1A-3F4D-4C7E-8A1B-2C3D4E5F6A7B", "9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7b"),
    (" 9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7b\n", "9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7b"),
    ("{9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7b}", None),
    ("9b2c5e1a3f4d4c7e8a1b2c3d4e5f6a7b", None),
    ("9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7", None),
    ("9b2c5e1a-3f4d-4c7e-8a1b-2c3d4e5f6a7g", None),
    ("9b2c5e1a:3f4d:4c7e:8a1b:2c3d4e5f6a7b", None),
    ("", None),
    ("   ", None),
    (None, None),
]
DNS = [
    ("CN=VPN Admins,OU=Groups,DC=example,DC=com", "cn=vpn admins,ou=groups,dc=example,dc=com"),
    ("cn=vpn admins, ou=groups, dc=example, dc=com", "cn=vpn admins,ou=groups,dc=example,dc=com"),
    (" CN = VPN Admins , OU = Groups ,DC=example ", "cn=vpn admins,ou=groups,dc=example"),
    ("CN=Admins,OU=Groups,DC=example,DC=com\n", "cn=admins,ou=groups,dc=example,dc=com"),
    ("cn=admins,\n dc=example", "cn=admins,dc=example"),
    ("cn=a\\,b,dc=example", "cn=a\\,b,dc=example"),
    ("cn=a=b,dc=example", "cn=a=b,dc=example"),
    ("CN=A,,DC=example", "cn=a,,dc=example"),
    ("CN=\u00c4rzte,DC=example", "cn=\u00e4rzte,dc=example"),
    ("vpn-admins", "vpn-admins"),
    (" VPN Admins\n", "vpn admins"),
    ("", ""),
    (",", ","),
    ("=", "="),
]


def script_namespace(path):
    """What a rendered script defines, loaded as Access Server loads it."""
    namespace = {"__name__": "post_auth_script"}
    with open(path, encoding="utf-8") as handle:
        exec(compile(handle.read(), "<string>", "exec"), namespace)
    return namespace


def test_the_script_normalizes_as_the_controller_does(scripts):
    from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities import device_pinning, group_mapping

    rendered = scripts[0]
    paths = [path for path, features in rendered.values() if "device_pinning" in features]
    assert paths
    for path in paths:
        script = script_namespace(path)
        for value, expected in HW_ADDRESSES:
            assert device_pinning.hw_address(value) == expected, value
            assert script["hw_address"](value) == expected, (value, path)
    # the controller registers addresses from inventory, which must be text: a YAML number is refused
    for value in (112233445566, b"00:11:22:33:44:55", ["00:11:22:33:44:55"]):
        assert device_pinning.hw_address(value) is None
    # the DNs of LDAP groups: a script holds its copy when it maps LDAP logins
    scripts_with_ldap = [script_namespace(path) for path, _features in rendered.values()]
    scripts_with_ldap = [script for script in scripts_with_ldap if "normalize_dn" in script]
    assert scripts_with_ldap
    for value, expected in DNS:
        assert group_mapping.normalize_dn(value) == expected, value
        for script in scripts_with_ldap:
            assert script["normalize_dn"](value) == expected, value


if __name__ == "__main__":
    print(json.dumps(render_all(sys.argv[1])))
