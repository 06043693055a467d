"""Administrators' own scripts (tests/integration/scripts), loaded by the post_auth role with post_auth_source and
driven through authcli against the real slapd, a local HTTPS stand-in and the emulator's crstate and userprop.db.

The role runs each script's policy cases on the server before it loads it; the logins here check that the loaded
script does what those cases said, with real backends instead of the harness's stand-ins.
"""

import http.server
import json
import os
import re
import shutil
import threading

import peers
import pytest
from policy import REPO, scenarios, user_props, vpn
from policy_mfa import answer, challenge_of

SCRIPTS = os.path.join(REPO, "tests", "integration", "scripts")
SKEY = "stand-in-secret-key-0123456789abcdef"


def source(name):
    with open(os.path.join(SCRIPTS, name)) as handle:
        return handle.read()


class ApiStandIn(http.server.ThreadingHTTPServer):
    """The Duo-style API over HTTPS with the test CA's certificate: alice is allowed, bob denied."""

    daemon_threads = True

    def __init__(self, context):
        standin = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])).decode())
                standin.requests.append((self.path, body))
                result = {"alice": "allow", "bob": "deny"}.get(body.get("username"))
                reply = {"stat": "OK", "response": {"result": result, "status_msg": "Denied by policy"}}
                data = json.dumps(reply if result else {"stat": "FAIL"}).encode()
                self.send_response(200 if result else 500)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__((peers.LOOPBACK, 0), Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def api(test_ca):
    server = ApiStandIn(test_ca.server_context())
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, slapd, api, test_ca):
    folder = tmp_path_factory.mktemp("own-scripts")
    for name in os.listdir(SCRIPTS):
        shutil.copy(os.path.join(SCRIPTS, name), str(folder / name))
    # the Duo-style script as a template: the stand-in's host, port and CA file, the key from a (vault) variable
    template = source("duo_style.py")
    for line, value in (('API_HOST = "api-4f2a.duo.example.com"', "duo_api_host"), ("API_PORT = 443", "duo_api_port"),
                        ('CA_FILE = "/etc/ssl/certs/ca-certificates.crt"', "duo_ca_file"),
                        ('SKEY = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"', "vault_duo_skey")):
        assert line in template
        name = line.split(" = ", maxsplit=1)[0]
        template = template.replace(line, "%s = {{ %s | ovpnas.fleet.pyliteral }}" % (name, value))
    (folder / "duo_style.py.j2").write_text(template)

    def own(name, cases, **more):
        return dict({"post_auth_source": str(folder / name), "post_auth_policy_tests": cases}, **more)

    duo_cases = [{"name": "allowed", "user": "alice",
                  "http_replies": {"/auth/v2/auth": {"stat": "OK", "response": {"result": "allow"}}},
                  "expect": {"status": "SUCCEED"}},
                 {"name": "the API down", "user": "alice", "http_replies": {"/auth/v2/auth": {"status": 503}},
                  "expect": {"status": "FAIL", "reason": "second factor unavailable"}}]

    def ldap_users(server):
        slapd.configure(server)

    return scenarios(tmp_path_factory, {
        "own-ldap": (own("group_mapper.py", [
            {"name": "a VPN user", "user": "bob", "auth_method": "ldap",
             "ldap": {"groups": ["cn=vpn-users,ou=groups,dc=example,dc=com"]}, "expect": {"group": "users"}},
        ]), ldap_users),
        "own-challenge": (own("dynamic_challenge.py", [
            {"name": "asked", "user": "alice", "expect": {"status": "FAIL", "challenge": True}},
        ]), lambda server: server.set_password("alice", "alice-pw")),
        "own-pas": (own("pas_only.py", [
            {"name": "a partner", "user": "erin", "auth_method": "pas_only", "client": {"password": "erin-pw"},
             "expect": {"status": "SUCCEED", "group": "partners"}},
        ]), None),
        "own-registration": (own("hw_registration.py", [
            {"name": "registers", "user": "alice", "client": {"hw_addr": "00:16:3e:00:00:01"},
             "expect": {"status": "SUCCEED", "saved": {"pvt_hw_addr": "00:16:3e:00:00:01"}}},
        ]), lambda server: server.set_password("alice", "alice-pw")),
        "own-duo": (own("duo_style.py.j2", duo_cases, duo_api_host="localhost", duo_api_port=api.server_address[1],
                        duo_ca_file=test_ca.ca_file, vault_duo_skey=SKEY),
                    lambda server: [server.set_password(user, "pw") for user in ("alice", "bob", "carol")]),
    })


@pytest.mark.parametrize("api_flavour", ["ldap3", "python-ldap"])
def test_ldap_groups_through_the_directory(built, api_flavour):
    sc = built["own-ldap"]
    sc.server.settings(ldap_api=api_flavour)
    alice = sc.login("alice", "alice-pw")
    assert (alice["status"], alice.group) == ("SUCCEED", "admins"), alice
    bob = sc.login("bob", "bob-pw")
    assert (bob["status"], bob.group) == ("SUCCEED", "users"), bob
    carol = sc.login("carol", "carol-pw")
    assert carol["status"] == "FAIL" and carol["client_reason"] == "You are in no group that may use the VPN."


def test_a_dynamic_challenge_is_asked_and_its_answer_checked(built):
    sc = built["own-challenge"]
    question = challenge_of(sc.login("alice", "alice-pw"))
    first, second = (int(n) for n in re.match(r"What is (\d) \+ (\d)\?", question["text"]).groups())
    right = answer(sc.server, "alice", question["state_id"], str(first + second))
    assert right["status"] == "SUCCEED", right
    question = challenge_of(sc.login("alice", "alice-pw"))
    wrong = answer(sc.server, "alice", question["state_id"], "1")
    assert wrong["status"] == "FAIL" and wrong["client_reason"] == "Wrong answer."


def test_a_pas_only_script_is_the_authentication(built):
    sc = built["own-pas"]
    erin = sc.login("erin", "erin-pw")
    assert (erin["status"], erin.group) == ("SUCCEED", "partners"), erin
    for user, password in (("erin", "wrong"), ("mallory", "erin-pw")):
        refused = sc.login(user, password)
        assert refused["status"] == "FAIL" and refused["client_reason"] == "Unknown user or wrong password."


def test_a_registration_is_saved_and_read_back(built):
    sc = built["own-registration"]
    first = sc.login("alice", "alice-pw", *vpn(IV_HWADDR="00:16:3E:00:00:01"))
    assert first["status"] == "SUCCEED", first
    assert user_props(sc.server, "alice")["pvt_hw_addr"] == "00:16:3e:00:00:01"
    again = sc.login("alice", "alice-pw", *vpn(IV_HWADDR="00:16:3e:00:00:01"))
    assert again["status"] == "SUCCEED", again
    other = sc.login("alice", "alice-pw", *vpn(IV_HWADDR="00:16:3e:00:00:02"))
    assert other["status"] == "FAIL" and other["client_reason"] == "This device is not the one registered for you."


def test_a_duo_style_script_calls_its_api_with_its_own_ca_file(built, api):
    sc = built["own-duo"]
    # the role's policy cases were answered from http_replies, never the stand-in
    assert api.requests == []
    alice = sc.login("alice", "pw")
    assert alice["status"] == "SUCCEED", alice
    bob = sc.login("bob", "pw")
    assert bob["status"] == "FAIL" and bob["client_reason"] == "Denied by policy"
    carol = sc.login("carol", "pw")
    assert carol["status"] == "FAIL" and "second factor unavailable" in carol["reason"]
    assert [path for path, _body in api.requests] == ["/auth/v2/auth"] * 3
    # the key came from a variable whose name looks secret: in the script, and nowhere in the role's output
    assert "SKEY = %r" % SKEY in sc.script
    assert SKEY not in sc.first_run.stdout + sc.first_run.stderr
