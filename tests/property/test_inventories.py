"""Generated inventories over every variable of the post_auth role, rendered through the real lookup path.

Each inventory either fails validation with a message that names a variable (and shows no long value
in full), or renders a script that compiles on every Python 3 of the machine, runs nothing when it is
loaded, and holds its values as data: its MESSAGES, SETTINGS, SECRETS and flags equal the validated
settings. Anything else (a crash, a script that does not compile, a value that became code) fails.

    FUZZ_EXAMPLES=10000 python -m pytest tests/property      # what `make fuzz` runs
"""

import glob
import hashlib
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, lookup_loader
from ansible.template import Templar
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPABILITIES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "plugin_utils", "capabilities"))
                      if name.endswith(".py") and not name.startswith("_"))

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
PYTHONS = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", "3.*", "bin", "python3"))) or [sys.executable]


def load_yaml(*parts):
    with open(os.path.join(REPO, *parts)) as handle:
        return yaml.safe_load(handle)


SPEC = load_yaml("roles", "post_auth", "meta", "argument_specs.yml")["argument_specs"]["compose"]["options"]
VARIABLE = re.compile(r"\b(post_auth|host_checker)_[a-z0-9_]+")
# a refusal shows at most this much of a value
LONG = 40

MARKER = "/tmp/ovpnas-fleet-property-marker"
HOSTILE = [
    "It's", 'say "hi"', "back\\slash\\", "new\nline", "'''", '"""', "\x00", "\u2028", "\r", "{{ 7 * 7 }}",
    "{% raw %}", "#", "ü€😀", " ", "", "x" * 100,
    "__import__('os').system('touch %s')" % MARKER,
    "'); __import__('os').system('touch %s') #" % MARKER,
    '"""; __import__(\'os\').system(\'touch %s\'); """' % MARKER,
    "https://auth.example.com/vpn", "http://127.0.0.1:8080/check", "https://u:p@auth.example.com/",
    "/etc/ssl/certs/ca.pem", "api-12345678.duosecurity.com", "(member={user_dn})", "ou=groups,dc=example,dc=com",
    "115.0", "3.4", "users", "pvt_totp_secret", "JBSWY3DPEHPK3PXPJBSWY3DP",
]
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
SCALAR = st.one_of(TEXT, st.booleans(), st.integers(-3, 100), st.none(), st.floats(allow_nan=False, width=16))
MACS = st.sampled_from(["00:11:22:33:44:55", "00-11-22-33-44-66", "001122334477", "zz:11", "00:11:22:33:44:55"])
APP = st.fixed_dictionaries({"name": st.one_of(st.sampled_from(["FIREFOX", "DEFENDER", "A_1"]), TEXT),
                             "regex": st.one_of(st.sampled_from(["^mozilla firefox", "(x", "^defender"]), TEXT)},
                            optional={"platform": st.one_of(st.sampled_from(["win", "mac", "all"]), TEXT),
                                      "min_version": st.one_of(st.sampled_from(["115.0", "4.18", 1.1, True]), TEXT),
                                      "required": st.one_of(st.booleans(), st.sampled_from(["yes", "no", "maybe"])),
                                      "description": TEXT})
RULE = st.fixed_dictionaries({}, optional={
    "name": TEXT, "ldap_groups": st.lists(TEXT, max_size=2), "saml_groups": st.lists(TEXT, max_size=2),
    "custom_auth_groups": st.lists(TEXT, max_size=2), "group": TEXT, "deny": st.one_of(st.booleans(), TEXT),
    "radius_attribute": st.sampled_from(["Class", "Filter-Id", "bogus"]), "radius_values": st.lists(TEXT, max_size=2),
    "radius_pattern": TEXT,
    "properties": st.dictionaries(st.sampled_from(["prop_autologin", "prop_deny_web", "prop_expire", "bogus"]),
                                  SCALAR, max_size=2)})
SPECIAL = {
    "post_auth_host_checker_apps": st.lists(APP, max_size=3),
    "post_auth_group_mapping_rules": st.lists(RULE, max_size=3),
    "post_auth_device_pinning_registry": st.dictionaries(TEXT, st.one_of(st.lists(MACS, max_size=3), MACS, SCALAR),
                                                         max_size=3),
    "post_auth_challenge_totp_secrets": st.dictionaries(TEXT, st.one_of(TEXT, SCALAR), max_size=3),
    "post_auth_custom_auth_hashes": st.dictionaries(TEXT, st.one_of(
        st.just("pbkdf2_sha256$100000$c2FsdA$" + "A" * 43 + "="), TEXT), max_size=2),
    "post_auth_messages": st.dictionaries(st.sampled_from(["internal_error", "group_unmatched", "app_outdated",
                                                           "device_not_registered", "bogus"]), SCALAR, max_size=3),
    "post_auth_policy_tests": st.just([]),
    "post_auth_python": st.one_of(st.just(sys.executable), TEXT, SCALAR),
    "post_auth_validate_interpreters": st.one_of(st.just([]), TEXT, st.lists(TEXT, max_size=2)),
    "post_auth_state": st.one_of(st.just("present"), TEXT),
}


def strategy(name, option):
    if name in SPECIAL:
        return SPECIAL[name]
    kind = option.get("type", "str")
    if kind == "bool":
        # mostly real booleans, so that the capabilities are on and their blocks rendered
        return st.one_of(st.booleans(), st.booleans(), st.booleans(), SCALAR)
    if kind == "int":
        return st.one_of(st.integers(-2, 200), SCALAR)
    if option.get("choices"):
        return st.one_of(st.sampled_from(option["choices"]), st.sampled_from(option["choices"]), SCALAR)
    if kind == "list":
        return st.one_of(st.lists(TEXT, max_size=3), SCALAR)
    if kind == "dict":
        return st.one_of(st.dictionaries(TEXT, SCALAR, max_size=2), SCALAR)
    return SCALAR


# anything, over every variable: most of these are refused, each with a message naming a variable
ANY = st.fixed_dictionaries({}, optional={name: strategy(name, option) for name, option in SPEC.items()})

# inventories that pass validation with hostile text where free text belongs (messages, names, groups,
# descriptions), so that the template renders it: it must stay data
NAME = st.one_of(st.sampled_from([h for h in HOSTILE if h and h == h.strip() and "\n" not in h and "\x00" not in h
                                  and "\r" not in h and "\u2028" not in h]),
                 st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20)
                 .map(str.strip).filter(bool))
MESSAGE = st.one_of(st.sampled_from([h for h in HOSTILE if h.strip()]), st.text(min_size=1, max_size=30)
                    .filter(str.strip))
GOOD_APP = st.builds(lambda name, regex, platform, version, required, description: {
    "name": name, "regex": regex, "platform": platform, "min_version": version, "required": required,
    "description": description},
    st.sampled_from(["FIREFOX", "DEFENDER", "A_1"]), st.sampled_from(["^mozilla firefox", "x{1,3}", "a|b"]),
    st.sampled_from(["win", "mac", "all"]), st.sampled_from(["115.0", "4.18.1", "v3"]), st.booleans(), MESSAGE)
GOOD_RULE = st.builds(lambda name, groups, group, props: {"name": name, "ldap_groups": groups, "saml_groups": groups,
                                                          "group": group, "properties": props},
                      MESSAGE, st.lists(NAME, min_size=1, max_size=2), NAME,
                      st.sampled_from([{}, {"prop_autologin": False}, {"prop_expire": 3600}]))
GOOD = st.fixed_dictionaries({
    "post_auth_custom_auth_url": st.just("https://auth.example.com/vpn?realm=corp"),
    "post_auth_duo_api_host": st.just("api-12345678.duosecurity.com"),
    "post_auth_duo_integration_key": st.just("DIXXXXXXXXXXXXXXXXXX"),
    "post_auth_duo_secret_key": MESSAGE,
    "post_auth_challenge_url": st.just("https://otp.example.com/check"),
}, optional={
    # every capability's switch (one module each in the registry)
    **{"post_auth_" + name: st.booleans() for name in CAPABILITIES},
    "post_auth_state": st.sampled_from(["present", "present", "absent"]),
    "post_auth_messages": st.dictionaries(st.sampled_from(["internal_error", "group_unmatched", "app_outdated",
                                                           "device_not_registered", "challenge_wrong",
                                                           "duo_denied", "custom_auth_failed"]), MESSAGE, max_size=4),
    "post_auth_group_mapping_rules": st.lists(GOOD_RULE, max_size=3),
    "post_auth_group_mapping_default_group": NAME,
    "post_auth_group_mapping_saml_claim": NAME,
    "post_auth_group_mapping_ldap_member_attribute": NAME,
    "post_auth_host_checker_apps": st.lists(GOOD_APP, max_size=2, unique_by=lambda app: app["name"]),
    "post_auth_device_pinning_mode": st.sampled_from(["auto", "manual"]),
    "post_auth_device_pinning_exempt_users": st.lists(NAME, max_size=2),
    "post_auth_device_pinning_registry": st.dictionaries(NAME, st.lists(MACS.filter(lambda m: "zz" not in m),
                                                                        min_size=1, max_size=1), max_size=2),
    "post_auth_challenge_text": NAME,
    "post_auth_challenge_exempt_groups": st.lists(NAME, max_size=2),
    "post_auth_custom_auth_token": MESSAGE,
    "post_auth_custom_auth_success_field": NAME,
    "post_auth_duo_exempt_groups": st.lists(NAME, max_size=2),
})
INVENTORIES = st.one_of(GOOD, ANY, ANY)


class Renderer:
    """The path the post_auth role and the deploy take: role_variables, PostAuth, the builtin template lookup."""

    def __init__(self):
        init_plugin_loader([os.path.join(REPO, ".collections")])
        from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose

        self.compose = compose
        self.loader = DataLoader()
        self.templar = Templar(loader=self.loader, variables={})
        self.template = lookup_loader.get("ansible.builtin.template", loader=self.loader, templar=self.templar)

    def __call__(self, inventory):
        compose = self.compose
        values = compose.role_variables(self.loader, self.templar, inventory, ["post_auth"])
        post_auth = compose.PostAuth(compose.unprefixed(values, "post_auth"), "0.1.0",
                                     lambda path, tv: self.template.run([path], {}, template_vars=tv)[0])
        if post_auth.settings is None:
            return post_auth, None
        return post_auth, post_auth.content()


def long_strings(value):
    if isinstance(value, str):
        if len(value) > LONG:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from long_strings(key)
            yield from long_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from long_strings(item)


def as_data(post_auth, script):
    """Load the script as Access Server does and compare what it holds with the validated settings."""
    namespace = {"__name__": "post_auth_script"}
    # loading the script must run nothing but its definitions
    exec(compile(script, "<string>", "exec"), namespace)
    assert not os.path.exists(MARKER), "loading the script ran injected code"
    settings = post_auth.settings
    assert namespace["MESSAGES"] == settings["settings"]["messages"]
    for flag, value in settings["flags"].items():
        assert namespace[flag] == value, flag
    assert namespace.get("SECRETS", {}) == settings["secrets"]
    # the capabilities that render no constants of their own keep their settings in SETTINGS
    assert namespace.get("SETTINGS", {}) == settings["shared"]
    for name, own in settings["shared"].items():
        assert own == settings["settings"][name]
    assert callable(namespace.get("post_auth") or namespace.get("post_auth_cr"))


# the strategy over 82 variables has a long description, which hypothesis warns about
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_generated_inventories_fail_named_or_render_safe_scripts(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    render = Renderer()
    outcomes = {"refused": 0, "rendered": 0, "absent": 0}
    scripts = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(INVENTORIES)
    def one(inventory):
        try:
            post_auth, script = render(inventory)
        except render.compose.ComposeError as exc:
            message = exc.message
            assert VARIABLE.search(message), "the refusal names no variable: %r" % message[:300]
            # the values (and keys inside them), not the variable names, which the message must name
            for value in long_strings(list(inventory.values())):
                assert value not in message, "the refusal echoes a long value in full"
            outcomes["refused"] += 1
            return
        if script is None:
            outcomes["absent"] += 1
            return
        as_data(post_auth, script)
        scripts[hashlib.sha256(script.encode("utf-8")).hexdigest()] = script
        outcomes["rendered"] += 1

    one()
    print("inventories: %d, %s; distinct scripts: %d" % (EXAMPLES, outcomes, len(scripts)))
    assert outcomes["rendered"] >= EXAMPLES // 20, "too few inventories rendered a script: %s" % outcomes

    # every distinct script, compiled as Access Server compiles it, by every Python 3 of the machine
    paths = []
    for digest, script in scripts.items():
        path = tmp_path / ("%s.py" % digest)
        path.write_text(script, encoding="utf-8")
        paths.append(str(path))
    check = ("import sys\nfor path in sys.argv[1:]:\n"
             "    compile(open(path, 'rb').read().decode('utf-8'), '<string>', 'exec')\n")
    for python in PYTHONS:
        proc = subprocess.run([python, "-c", check] + paths, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, "%s: %s" % (python, proc.stderr[-2000:])
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize("python", PYTHONS)
def test_the_pythons_are_real(python):
    """The compile check above proves something only if the interpreters run."""
    proc = subprocess.run([python, "-c", "import sys; print(sys.version_info[0])"], capture_output=True, text=True,
                          check=False)
    assert proc.stdout.strip() == "3"
