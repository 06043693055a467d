"""Adoption: scripts grouped by what they do, secrets taken out into templates that render back byte for byte."""

import ast

import pytest

from ansible_collections.ovpnas.fleet.plugins.filter.pyliteral import pyliteral
from ansible_collections.ovpnas.fleet.plugins.plugin_utils import adopt

SCRIPT = '''# a hand-written script {{ with braces }} and {% a tag %}
SKEY = "s3cr\\"et-ü"
api_token = 'tok\\'en'; IKEY = "public"
message = f"{{{IKEY}}}"


def post_auth(authcred, attributes, authret, info):
    return authret
'''


def read(text=None, query=None):
    return {"post_auth": {"present": text is not None, "content": text},
            "app_verify": {"present": query is not None, "content": query}}


@pytest.mark.parametrize("text", ["abc", "it's \"both\"", "back\\slash'\"", "nl\n\x01é\u2028", ""])
@pytest.mark.parametrize("quote", ["'", '"'])
def test_pyliteral_keeps_the_quotes_it_is_given(text, quote):
    literal = pyliteral(text, quote=quote)
    assert literal[0] == literal[-1] == quote and ast.literal_eval(literal) == text


def test_a_script_with_secrets_becomes_a_template_that_renders_it_back():
    script = adopt.Script(SCRIPT)
    assert script.problem is None and script.names == ["SKEY", "api_token"]
    assert script.secret_values == {"SKEY": 's3cr"et-ü', "api_token": "tok'en"}
    assert "s3cr" not in script.source and "tok\\'en" not in script.source
    assert script.file == "files/%s.py.j2" % script.group.replace("_", "-")
    values = {adopt.SECRETS_VARIABLE: {script.group: script.secret_values}}
    assert adopt.render(script.source, values) == SCRIPT
    assert "SKEY = ********" in script.shown() and "s3cr" not in script.shown()


@pytest.mark.parametrize("text, why", [
    ("SKEY = 's' 'plit'\n", "cannot write back the same"),
    ("SKEY = b'bytes'\n", "not a plain string"),
    ("SKEY = '''three'''\n", "cannot write back the same"),
    ("SKEY = 'a\\x41'\n", "cannot write back the same"),
    ("SKEY = ('x'\n        )\nx = 1\nSKEY = 'multi\\\n line'\n", "over several lines"),
    ("def broken(:\n    SKEY = 'x'\n", "does not compile"),
    ("X = 1  # ovpnas.fleet.secret\n", "deploy it from the inventory that composed it"),
])
def test_a_secret_adopt_cannot_write_back_the_same_refuses_the_script(text, why):
    assert why in adopt.Script(text).problem


def test_servers_are_grouped_by_what_their_scripts_do_and_drift_is_named():
    base = "def post_auth(a, b, authret, d):\n" + "".join("    x%d = %d\n" % (n, n) for n in range(12)) + \
        "    return authret\n"
    drifted = base.replace("x5 = 5", "x5 = 6")
    headed = "# ovpnas.fleet.version: 0.0.1\n" + base
    adopted = adopt.adoption({"as01": read(base), "as02": read(headed), "as03": read(drifted),
                              "as04": read(None, "all:FIREFOX=^firefox"), "as05": None,
                              "as06": {"failed": True, "msg": "sacli failed"}})
    groups = {group: script.hosts for group, script in adopted["scripts"].items()}
    # a header line says how a script came to be, not what it does: as01 and as02 run one script
    assert sorted(groups.values()) == [["as01", "as02"], ["as03"]]
    wide = next(g for g, hosts in groups.items() if len(hosts) == 2)
    narrow = next(g for g, hosts in groups.items() if len(hosts) == 1)
    assert adopted["drift"] == {narrow: (wide, ["-    x5 = 5", "+    x5 = 6"])}
    assert adopted["hosts"]["as04"] is None and adopted["unread"] == {"as05": "not read", "as06": "sacli failed"}
    files = adopt.folder(adopted)
    assert files["host_vars/as04.yml"].endswith("post_auth_state: absent\n")
    assert "post_auth_source: files/%s.py\n" % wide.replace("_", "-") in files["host_vars/as02.yml"]
    assert "drifted copy of `%s`" % wide in files["REPORT.md"] and "as05: not read" in files["REPORT.md"]
    assert "    %s:\n      hosts:\n        as03: {}\n" % narrow in files["hosts.yml"]
    assert files[next(f for f in files if "appver" in f)] == "all:FIREFOX=^firefox\n"


def test_the_keys_the_inventory_manages_are_kept_as_the_server_holds_them():
    import yaml

    config = {"vpn.client.routing.reroute_gw": "false", "auth.ldap.0.bind_pw": "live{{pw}}",
              "host.name": "vpn.example.com"}
    live = dict(read("x = 1\n"), config=config)
    wanted = {"vpn.client.routing.reroute_gw": True, "auth.ldap.0.bind_pw": "new-pw", "host.name": "vpn.example.com",
              "vpn.server.port_share.enable": False}
    adopted = adopt.adoption({"as01": live, "as02": dict(live)}, {"as01": (wanted, ()), "as02": ({}, ())})
    assert list(adopted["settings"]) == ["as01"]
    assert [key for key, *_rest in adopted["settings"]["as01"]["differs"]] == [
        "auth.ldap.0.bind_pw", "vpn.client.routing.reroute_gw", "vpn.server.port_share.enable"]
    host_vars = yaml.safe_load(adopt.folder(adopted)["host_vars/as01.yml"].replace("!unsafe ", ""))
    # a key the server does not hold is left out, so that a deploy does not write it either; the secret is in the vault
    assert host_vars["ovpnas_config_settings"] == {
        "vpn.client.routing.reroute_gw": "false", "host.name": "vpn.example.com",
        "auth.ldap.0.bind_pw": "{{ ovpnas_adopt_secrets['settings_as01']['auth.ldap.0.bind_pw'] }}"}
    assert adopt.secrets(adopted) == {"settings_as01": {"auth.ldap.0.bind_pw": "live{{pw}}"}}
    report = adopt.folder(adopted)["REPORT.md"]
    assert "| as01 | `auth.ldap.0.bind_pw` | ******** | ******** |" in report and "live" not in report
    assert "| as01 | `vpn.server.port_share.enable` | `false` | (none) |" in report
    assert "ovpnas_config_settings" not in adopt.folder(adopted)["host_vars/as02.yml"]


def test_the_vault_file_reads_back_every_value():
    import yaml

    found = {"script_a": {"SKEY": "quote\" back\\slash 'single' ü \u2028 \x01"}}
    text = adopt.secrets_yaml(found)
    # (Ansible reads "!unsafe" strings as they are, never as templates)
    assert text.count("!unsafe ") == 1
    assert yaml.safe_load(text.replace("!unsafe ", "")) == {adopt.SECRETS_VARIABLE: found}
