"""The script's identity: what it does, so that a server already running it is neither written nor restarted.

The scripts are rendered for real (the template lookup, as the deploy renders them), in a process of
their own: Ansible's collection loader is set up once per process (see test_script_combinations).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

# (the collection is imported inside the tests: this file also runs as the rendering process, before
# Ansible's collection loader is set up)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PREFIX = "post_auth_"
# name -> (changes of the variables, version, which template)
VARIANTS = {
    "base": ({}, "0.1.0", "original"),
    "again": ({}, "0.1.0", "original"),
    "other version": ({}, "0.2.0", "original"),
    "other cases": ({"policy_tests": []}, "0.1.0", "original"),
    "other interpreters": ({"python": "/usr/bin/python3.6", "validate_interpreters": ["python3.8"]}, "0.1.0",
                           "original"),
    "other setting": ({"device_pinning_max_devices": 2}, "0.1.0", "original"),
    "copied templates": ({}, "0.1.0", "copy"),
    "a comment in the templates": ({}, "0.1.0", "commented"),
    "a new line in a block": ({}, "0.1.0", "edited"),
}


def params(**changes):
    with open(os.path.join(REPO, "roles", "post_auth", "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    values = {name[len(PREFIX):]: value for name, value in defaults.items() if name.startswith(PREFIX)}
    values.update(host_checker_apps=[], device_pinning=True, policy_tests=[{"name": "a", "user": "alice"}])
    values.update(changes)
    return values


def render_all(folder, cache):
    """{variant: {key, identity, content}}, each rendered with the template lookup."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader, lookup_loader
    from ansible.template import Templar

    init_plugin_loader([os.path.join(REPO, ".collections")])
    from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose

    templates = {"original": compose.TEMPLATE}
    for name in ("copy", "commented", "edited"):
        copied = os.path.join(folder, name, "post_auth")
        shutil.copytree(os.path.dirname(compose.TEMPLATE), copied)
        templates[name] = os.path.join(copied, "frame.py.j2")
    with open(templates["commented"], "a") as handle:
        handle.write("{# a comment of the template's own #}\n")
    with open(os.path.join(folder, "edited", "post_auth", "blocks", "device_pinning.py.j2"), "a") as handle:
        handle.write("\n")
    loader = DataLoader()
    lookup = lookup_loader.get("ansible.builtin.template", loader=loader, templar=Templar(loader=loader, variables={}))
    renders = []

    def render(path, template_vars):
        renders.append(path)
        return lookup.run([path], {}, template_vars=template_vars)[0]

    found = {}
    for name, (changes, version, template) in VARIANTS.items():
        post_auth = compose.PostAuth(params(**changes), version, render, templates[template], cache=cache)
        before = len(renders)
        identity = post_auth.identity()
        found[name] = dict(key=post_auth.key, identity=identity, rendered=len(renders) - before,
                           content=post_auth.content())
    found["absent"] = compose.PostAuth(params(state="absent"), "0.1.0", render).desired
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder, cache = tmp_path_factory.mktemp("templates"), tmp_path_factory.mktemp("cache")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(folder), str(cache)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), str(cache)


def test_the_identity_is_what_the_script_does(rendered):
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import script_identity, sealed

    found, _cache = rendered
    base = found["base"]
    assert base["identity"] == script_identity(base["content"])
    assert "\n# ovpnas.fleet.identity: %s\n" % base["identity"] in base["content"]
    assert sealed(base["content"])
    # the collection version, the policy cases and the interpreters appear in header fields only
    for name in ("again", "other version", "other cases", "other interpreters", "copied templates",
                 "a comment in the templates"):
        assert found[name]["identity"] == base["identity"], name
    assert found["other version"]["content"] != base["content"]
    assert "# ovpnas.fleet.version: 0.2.0\n" in found["other version"]["content"]
    # what the script does changes it
    assert found["other setting"]["identity"] != base["identity"]
    assert found["a new line in a block"]["identity"] != base["identity"]


def test_the_identity_is_kept_by_what_renders_the_script(rendered):
    found, cache = rendered
    base = found["base"]
    # rendered once for a key: the same settings with the same code are not rendered again
    assert base["rendered"] == 1 and found["again"]["rendered"] == 0
    assert found["again"]["key"] == base["key"]
    # the version and the cases are not in the key (they do not change the text that counts)
    assert found["other version"]["key"] == found["other cases"]["key"] == base["key"]
    # where the templates are is not, what they hold is
    assert found["copied templates"]["key"] == base["key"]
    assert found["a comment in the templates"]["key"] != base["key"]
    assert found["a comment in the templates"]["rendered"] == 1
    assert sorted(os.listdir(cache)) == sorted({entry["key"] for name, entry in found.items() if name != "absent"})
    with open(os.path.join(cache, base["key"])) as handle:
        assert handle.read() == base["identity"] + "\n"
    assert oct(os.stat(os.path.join(cache, base["key"])).st_mode & 0o777) == "0o600"


def test_absent_has_no_identity(rendered):
    assert rendered[0]["absent"]["post_auth"] == {"state": "absent"}


def test_the_header_fields_and_the_seal_do_not_count():
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import script_identity, seal

    body = "# Generated\n# ovpnas.fleet.version: 0.1.0\n# ovpnas.fleet.identity: abc\nx = 1\n"
    same = body.replace("0.1.0", "9.9.9").replace("abc", "def")
    assert script_identity(body) == script_identity(same) == script_identity(seal(body))
    assert script_identity(body) == script_identity(body + "\n"), "a trailing newline sacli may add is not an edit"
    assert script_identity(body.replace("x = 1", "x = 2")) != script_identity(body)
    assert script_identity(body.replace("# Generated", "# Generated by")) != script_identity(body)
    assert script_identity(None) is None


@pytest.mark.parametrize("text", ["", "x = 1\n", "# ovpnas.fleet.identity: abc\nx = 1\n"])
def test_only_an_intact_seal_holds(text):
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import seal, sealed

    assert not sealed(text)
    assert sealed(seal(text)) is True
    assert sealed(seal(text) + "\n"), "a trailing newline sacli may add is not an edit"
    assert not sealed(seal(text).replace("\n# ovpnas.fleet.sha256: ", "\nx = 3\n# ovpnas.fleet.sha256: "))


def test_the_cache_keeps_one_answer_per_key_and_survives_a_folder_it_cannot_use(tmp_path):
    from ansible_collections.ovpnas.fleet.plugins.plugin_utils import identity_cache

    calls = []

    def compute():
        calls.append(1)
        return "a" * 64

    key = "b" * 64
    assert identity_cache.identity(key, compute, str(tmp_path / "cache")) == "a" * 64
    assert identity_cache.identity(key, compute, str(tmp_path / "cache")) == "a" * 64
    assert len(calls) == 1
    # a damaged entry is computed again
    (tmp_path / "cache" / key).write_text("not a digest")
    assert identity_cache.identity(key, compute, str(tmp_path / "cache")) == "a" * 64 and len(calls) == 2
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert identity_cache.identity(key, compute, str(blocked / "cache")) == "a" * 64 and len(calls) == 3
    with pytest.raises(ValueError, match="sha256"):
        identity_cache.identity("../x", compute, str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="sha256"):
        identity_cache.identity("c" * 64, lambda: "oops", str(tmp_path / "cache"))
    assert not (tmp_path / "cache" / ("c" * 64)).read_text()


if __name__ == "__main__":
    print(json.dumps(render_all(sys.argv[1], sys.argv[2])))
