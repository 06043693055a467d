"""An own script (post_auth_source): found, pinned, refused before anything changes, loaded as it is."""

import hashlib
import re

import pytest
from test_settings import post_auth_variables

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import (
    mask_secret_lines,
    script_identity,
    sealed,
    secret_lines,
)
from ansible_collections.ovpnas.fleet.plugins.plugin_utils import compose, own_script
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SettingsError

SCRIPT = '''from pyovpn.plugin import SUCCEED, FAIL

SKEY = 'duo-secret-key'
API_HOST = "api-1234.duosecurity.com"


def post_auth(authcred, attributes, authret, info):
    return authret
'''


def write(tmp_path, text=SCRIPT, name="mine.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def post_auth(tmp_path, **changes):
    values = dict(python="python3", policy_tests=[{"name": "alice", "user": "alice"}])
    values.update(changes)
    return compose.PostAuth(post_auth_variables(values), "9.9.9", dirs=[str(tmp_path)])


def test_a_plain_file_is_loaded_as_it_is_under_a_header_and_a_seal(tmp_path):
    write(tmp_path)
    script = post_auth(tmp_path, source="mine.py")
    content = script.content()
    # what it does is the file's text: a server that runs the file, loaded by hand, is already right
    assert script_identity(content) == script_identity(SCRIPT) == script.identity()
    assert content.startswith("# ovpnas.fleet.generator: ovpnas.fleet (own script)\n# ovpnas.fleet.source: mine.py\n")
    assert SCRIPT in content and sealed(content)
    wanted = script.desired["post_auth"]
    assert wanted["policy_cases"] == [{"name": "alice", "user": "alice"}] and wanted["required_apps"] == []
    assert "def main(argv)" in wanted["policy_harness"]
    # SKEY looks secret; API_HOST does not
    assert wanted["secret_assignments"] == ["SKEY"] and wanted["secrets"] == ["duo-secret-key"]
    assert script.desired["users"] == {} and script.desired["users_exclusive_prefixes"] == []


def test_a_relative_source_is_looked_up_in_each_folder_in_turn(tmp_path):
    (tmp_path / "second").mkdir()
    write(tmp_path / "second")
    found = compose.PostAuth(post_auth_variables(dict(source="mine.py")), "1",
                             dirs=[str(tmp_path), str(tmp_path / "second")])
    assert found.own.path == str(tmp_path / "second" / "mine.py")
    with pytest.raises(compose.ComposeError, match=r"post_auth_source: 'other.py' is no file \(looked in "):
        post_auth(tmp_path, source="other.py")


def test_an_own_script_and_a_composed_capability_are_refused_naming_both(tmp_path):
    write(tmp_path)
    with pytest.raises(compose.ComposeError) as caught:
        post_auth(tmp_path, source="mine.py", device_pinning=True, duo=True, duo_integration_key="DI0123456789ABCDEF01",
                  duo_secret_key="s" * 40, duo_api_host="api-1234.duosecurity.com")
    assert str(caught.value).startswith("post_auth_source and post_auth_device_pinning, post_auth_duo are both set")


def test_a_pinned_source_whose_digest_differs_is_refused_with_both(tmp_path):
    path = write(tmp_path)
    digest = hashlib.sha256(SCRIPT.encode()).hexdigest()
    assert post_auth(tmp_path, source=str(path), source_sha256=digest.upper()).own.sha256 == digest
    path.write_text(SCRIPT + "# an update\n")
    with pytest.raises(compose.ComposeError) as caught:
        post_auth(tmp_path, source=str(path), source_sha256=digest)
    message = str(caught.value)
    assert message.startswith("post_auth_source_sha256: ") and digest in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in message
    with pytest.raises(compose.ComposeError, match="must be a sha256"):
        post_auth(tmp_path, source=str(path), source_sha256="abc")


@pytest.mark.parametrize("text, wanted", [
    ("def post_auth(a, b, c, d)\n    return c\n", "mine.py does not compile: line 1: "),
    ("", "mine.py makes an empty script"),
    ("x = 1\0\n", "holds a NUL character"),
])
def test_a_source_that_cannot_be_a_script_is_refused(tmp_path, text, wanted):
    write(tmp_path, text)
    with pytest.raises(compose.ComposeError, match="post_auth_source: .*" + wanted):
        post_auth(tmp_path, source="mine.py").content()


def test_declared_secrets_must_be_assigned_and_are_masked(tmp_path):
    write(tmp_path, SCRIPT + "INTEGRATION = 'not-a-secret-by-name'\n")
    script = post_auth(tmp_path, source="mine.py", source_secrets=["INTEGRATION"])
    script.content()
    assert script.desired["post_auth"]["secret_assignments"] == ["INTEGRATION", "SKEY"]
    assert set(script.desired["post_auth"]["secrets"]) == {"not-a-secret-by-name", "duo-secret-key"}
    with pytest.raises(compose.ComposeError, match=r"post_auth_source_secrets: mine\.py assigns no IKEY"):
        post_auth(tmp_path, source="mine.py", source_secrets=["IKEY"]).content()
    with pytest.raises(compose.ComposeError, match=r"post_auth_source_secrets: 'not a name' is no Python name"):
        post_auth(tmp_path, source="mine.py", source_secrets=["not a name"])


def test_masking_an_own_script_hides_what_its_secret_names_are_assigned():
    masked = mask_secret_lines(SCRIPT, ["SKEY"])
    assert "duo-secret-key" not in masked and "SKEY = ********" in masked and 'API_HOST = "api-' in masked
    assert set(secret_lines(SCRIPT, ["SKEY"])) == {"'duo-secret-key'", "duo-secret-key"}
    # a comparison is no assignment
    assert mask_secret_lines("if SKEY == 'x':\n    pass\n", ["SKEY"]) == "if SKEY == 'x':\n    pass\n"
    # only a string is a secret: None, an empty string or code would mask what is no secret wherever it shows
    code = "SKEY = None\nSKEY = ''\nSKEY = open('/root/skey').read()\nSKEY = 'k3y'  # from Duo\n"
    assert secret_lines(code, ["SKEY"]) == ["'k3y'", "k3y"]


@pytest.mark.parametrize("template", [
    "SKEY = {{ duo_skey }}\n",
    "SKEY = '{{ duo_skey }}'\n",
    "SKEY = {{ duo_skey | upper }}\n",
    "{% if x %}HOST = {{ host | string }}{% endif %}\n",
])
def test_a_template_that_writes_a_value_other_than_as_a_literal_is_refused(template):
    with pytest.raises(SettingsError, match=r"mine.py.j2, line 1: values enter the script only through"):
        own_script.check_template(template, "mine.py.j2")


@pytest.mark.parametrize("template, why", [
    ("#jinja2: variable_start_string: '[%', variable_end_string: '%]'\nSKEY = [% duo_skey %]\n",
     "line 1: a template keeps Jinja's own delimiters"),
    ("x = 1\n{% include 'other.j2' %}\n", "line 2: a template is one file"),
    ("{% import 'macros.j2' as m %}\n", "line 1: a template is one file"),
    ("{% extends 'base.j2' %}\n", "line 1: a template is one file"),
    ("{% macro m() %}{{ v | ovpnas.fleet.pyliteral }}{% endmacro %}\nX = {{ m() }}\n", "line 2: values enter"),
    ("X = {{ v | ovpnas.fleet.pyliteral | replace('a', 'b') }}\n", "line 1: values enter"),
])
def test_a_template_that_could_hide_a_value_from_the_check_is_refused(template, why):
    with pytest.raises(SettingsError, match=r"mine\.py\.j2, " + re.escape(why)):
        own_script.check_template(template, "mine.py.j2")


def test_a_template_reads_its_values_through_pyliteral():
    tree = own_script.check_template("SKEY = {{ vault.duo_skey | ovpnas.fleet.pyliteral }}\n"
                                     "{% for h in hosts %}H = {{ h | ovpnas.fleet.pyliteral }}{% endfor %}\n", "t.j2")
    assert own_script.template_variables(tree) == ["hosts", "vault"]
    # what a template takes from a variable whose name or key looks secret is masked
    assert own_script.secret_values({"duo_skey": "s1", "host": "h", "nested": [{"api_token": "t1"}]}) == ["s1", "t1"]
    assert own_script.secret_values("p", secret=True) == ["p"] and own_script.secret_values("p") == []
