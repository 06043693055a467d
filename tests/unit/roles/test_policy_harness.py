"""The post_auth role's policy harness, run as the role runs it: a subprocess on small hand-written scripts."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HARNESS = os.path.join(REPO, "roles", "post_auth", "files", "policy_harness.py")
PYTHON36 = sorted(glob.glob("/root/.pyenv/versions/3.6*/bin/python3"))

# How the harness is started (the command before its own path). The harness uses Access Server's `pyovpn`
# where one is importable and a stand-in where none is: "current" is the interpreter of the tests, whose
# environment holds the emulator's pyovpn (requirements-dev.txt installs it), and "stand-in" the same
# interpreter without site-packages (-S), where only the standard library is, as on a server without it.
INTERPRETERS = [pytest.param([sys.executable], id="current"), pytest.param([sys.executable, "-S"], id="stand-in")]
if PYTHON36:
    INTERPRETERS.append(pytest.param(PYTHON36[-1:], id="py36"))


@pytest.fixture(params=INTERPRETERS)
def python(request):
    """The command that starts an interpreter, as a list: [path] or [path, option]."""
    return request.param


class Run:
    """One harness run: exit code, the parsed JSON report (stdout) and stderr."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = json.loads(proc.stdout)

    def case(self, name):
        found = [case for case in self.report["cases"] if case["name"] == name]
        assert len(found) == 1, self.report
        return found[0]


@pytest.fixture
def harness(tmp_path, python):
    """harness(script, cases, env=None) -> Run; the script is dedented, cases are written as JSON."""
    counter = iter(range(1000))

    def run(script, cases, env=None):
        number = next(counter)
        script_path = tmp_path / ("post_auth_%d.py" % number)
        cases_path = tmp_path / ("cases_%d.json" % number)
        script_path.write_text(textwrap.dedent(script), encoding="utf-8")
        cases_path.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
        proc = subprocess.run(
            [*python, HARNESS, str(script_path), str(cases_path)],
            capture_output=True, text=True, encoding="utf-8", timeout=60, env=env, check=False,
        )
        try:
            return Run(proc)
        except ValueError:
            raise AssertionError("stdout is not JSON (rc %s): %r\nstderr: %s" % (proc.returncode, proc.stdout,
                                                                                 proc.stderr)) from None

    return run


# A script that lets everyone in except mallory and records a few decisions.
GATE = """
    from pyovpn.plugin import *

    def post_auth(authcred, attributes, authret, info):
        if authret["user"] == "mallory":
            authret["status"] = FAIL
            authret["reason"] = "mallory is not welcome"
            authret["client_reason"] = "Go away."
            return authret
        authret["proplist"]["conn_group"] = "staff"
        authret["proplist"]["prop_autologin"] = "true"
        authret["proplist"]["prop_expire"] = "3600"
        authret["reason"] = "policy ok"
        authret["client_reason"] = "welcome aboard"
        return authret, {"conn_group": "staff", "prop_autologin": "true"}
"""

# A script that reports what it was given, as JSON in conn_group (the report shows conn_group as "group").
ECHO = """
    import json
    import threading

    SYNCHRONOUS = True

    def post_auth(authcred, attributes, authret, info):
        seen = {
            "authcred": authcred,
            "attributes": attributes,
            "proplist": dict(authret["proplist"]),
            "info": dict((k, v) for k, v in info.items() if k != "ldap_context"),
            "radius_keys": sorted(type(k).__name__ for k in (info.get("radius_reply") or {})),
            "thread": threading.current_thread().name,
            "names": [name for name in ("SUCCEED", "FAIL") if name in globals()],
        }
        authret["proplist"]["conn_group"] = json.dumps(seen, sort_keys=True)
        return authret
"""


def seen(run, name):
    return json.loads(run.case(name)["group"])


# --- the script does not load ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("script", "summary"),
    [
        pytest.param("def post_auth(authcred, attributes, authret, info:\n    return authret\n",
                     "the script does not load: SyntaxError", id="does-not-compile"),
        pytest.param("def pre_auth(authcred):\n    return None\n",
                     "the script does not load: ValueError: the script defines neither post_auth nor post_auth_cr",
                     id="no-entry-point"),
        pytest.param("post_auth = 'not a function'\n",
                     "the script does not load: ValueError: the script defines neither", id="entry-not-callable"),
        pytest.param("import no_such_module_here\n\ndef post_auth(authcred, attributes, authret, info):\n"
                     "    return authret\n", "the script does not load: ModuleNotFoundError", id="import-error"),
        pytest.param("raise RuntimeError('boom at load')\n",
                     "the script does not load: RuntimeError: boom at load", id="raises-at-load"),
    ],
)
def test_script_that_does_not_load(harness, script, summary):
    run = harness(script, [{"name": "anyone", "user": "alice", "expect": {"status": "SUCCEED"}}])
    assert run.rc == 2
    assert len(run.report["summary"]) == 1
    assert run.report["summary"][0].startswith(summary), run.report
    assert run.report["cases"] == []
    assert run.report["passed"] == run.report["failed"] == 0
    assert "Traceback" in run.report["error"]


def test_load_error_names_the_script_as_string(harness):
    run = harness("x = 1\ny = (\n", [])
    assert run.rc == 2
    assert 'File "<string>"' in run.report["error"]


def test_usage_without_arguments(python):
    proc = subprocess.run([*python, HARNESS], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "policy_harness.py SCRIPT CASES.json" in proc.stderr
    assert proc.stdout == ""


# --- passing and failing cases ---------------------------------------------------------------------------------------

def test_all_cases_pass(harness):
    run = harness(GATE, [
        {"name": "alice gets in", "user": "alice", "expect": {"status": "SUCCEED", "group": "staff"}},
        {"name": "mallory is refused", "user": "mallory", "expect": {"status": "FAIL"}},
    ])
    assert run.rc == 0, run.report
    assert (run.report["passed"], run.report["failed"], run.report["summary"]) == (2, 0, [])
    assert run.case("alice gets in")["status"] == "SUCCEED"
    assert run.case("mallory is refused")["status"] == "FAIL"
    assert run.case("mallory is refused")["client_reason"] == "Go away."


def test_failing_case_named_in_summary(harness):
    run = harness(GATE, [
        {"name": "alice gets in", "user": "alice", "expect": {"status": "SUCCEED"}},
        {"name": "mallory gets in", "user": "mallory", "expect": {"status": "SUCCEED"}},
    ])
    assert run.rc == 1
    assert (run.report["passed"], run.report["failed"]) == (1, 1)
    assert run.report["summary"] == [
        "mallory gets in: status FAIL, expected SUCCEED (reason: mallory is not welcome)"]
    assert run.case("alice gets in")["problems"] == []


def test_unnamed_cases_are_numbered(harness):
    run = harness(GATE, [{"user": "alice"}, {"user": "mallory", "expect": {"status": "SUCCEED"}}])
    assert run.rc == 1
    assert [case["name"] for case in run.report["cases"]] == ["case 1", "case 2"]
    assert run.report["summary"][0].startswith("case 2: status FAIL")


def test_no_cases_pass(harness):
    run = harness(GATE, [])
    assert (run.rc, run.report["cases"], run.report["summary"]) == (0, [], [])


@pytest.mark.parametrize(
    ("expect", "problem"),
    [
        pytest.param({"status": "FAIL"}, "status SUCCEED, expected FAIL (reason: policy ok)", id="status"),
        pytest.param({"group": "admins"}, "group 'staff', expected 'admins'", id="group"),
        pytest.param({"group": None}, "group 'staff', expected None", id="group-none"),
        pytest.param({"properties": {"prop_autologin": "false"}},
                     "property prop_autologin is 'true', expected 'false'", id="property-value"),
        pytest.param({"properties": {"prop_autologin": False}},
                     "property prop_autologin is 'true', expected False", id="property-bool"),
        pytest.param({"properties": {"prop_superuser": "true"}},
                     "property prop_superuser is None, expected 'true'", id="property-missing"),
        pytest.param({"properties": {"prop_autologin": None}},
                     "property prop_autologin is 'true', expected None", id="property-should-be-absent"),
        pytest.param({"properties": {"prop_expire": 60}}, "property prop_expire is '3600', expected 60",
                     id="property-number"),
        pytest.param({"saved": {"conn_group": "admins"}}, "saved conn_group is 'staff', expected 'admins'",
                     id="saved-value"),
        pytest.param({"saved": {"prop_superuser": True}}, "saved prop_superuser is None, expected True",
                     id="saved-missing"),
        pytest.param({"saved": {"prop_autologin": None}}, "saved prop_autologin is 'true', expected None",
                     id="saved-should-be-absent"),
        pytest.param({"reason": "denied"}, "reason 'policy ok' does not contain 'denied'", id="reason"),
        pytest.param({"client_reason": "goodbye"}, "client_reason 'welcome aboard' does not contain 'goodbye'",
                     id="client-reason"),
        pytest.param({"challenge": True}, "challenge None, expected one", id="challenge"),
    ],
)
def test_each_expectation_can_fail(harness, expect, problem):
    run = harness(GATE, [{"name": "alice", "user": "alice", "expect": expect}])
    assert run.rc == 1, run.report
    assert run.case("alice")["problems"] == [problem]
    assert run.report["summary"] == ["alice: " + problem]


def test_every_expectation_can_pass(harness):
    expect = {
        "status": "SUCCEED", "group": "staff", "reason": "policy", "client_reason": "welcome", "challenge": False,
        # booleans and numbers compare as Access Server stores them: "true", "3600"
        "properties": {"prop_autologin": True, "prop_expire": 3600, "prop_superuser": None, "type": "user_connect"},
        "saved": {"conn_group": "staff", "prop_autologin": True, "prop_expire": None},
    }
    run = harness(GATE, [{"name": "alice", "user": "alice", "expect": expect}])
    assert run.rc == 0, run.report
    assert run.case("alice")["problems"] == []


def test_several_problems_in_one_case(harness):
    run = harness(GATE, [{"name": "m", "user": "mallory",
                          "expect": {"status": "SUCCEED", "group": "staff", "client_reason": "welcome"}}])
    assert run.rc == 1
    assert len(run.case("m")["problems"]) == 3
    assert run.report["summary"][0].count(";") == 2


# --- what the harness passes to the script ---------------------------------------------------------------------------

def test_arguments_of_a_vpn_login(harness):
    run = harness(ECHO, [{
        "name": "vpn", "user": "alice", "username": "Alice", "auth_method": "radius",
        "properties": {"prop_superuser": True, "prop_expire": 60, "conn_group": "old"},
        "client": {"ip": "198.51.100.7", "hw_addr": "00:11:22:33:44:55", "platform": "win", "version": "3.4.2",
                   "info": {"UV_APPVER_CHROME": "115.0.1", "UV_SOME_NUMBER": 5}, "reauth": True,
                   "static_response": "123456"},
    }])
    assert run.rc == 0, run.report
    found = seen(run, "vpn")
    assert found["authcred"] == {"username": "Alice", "client_ip_addr": "198.51.100.7",
                                 "client_hw_addr": "00:11:22:33:44:55", "static_response": "123456"}
    assert found["attributes"] == {
        "client_info": {"UV_APPVER_CHROME": "115.0.1", "UV_SOME_NUMBER": "5", "IV_HWADDR": "00:11:22:33:44:55",
                        "IV_PLAT": "win", "UV_ASCLI_VER": "3.4.2"},
        "vpn_auth": True, "reauth": True,
    }
    # booleans as Access Server stores them, every value a string
    assert found["proplist"] == {"type": "user_connect", "prop_superuser": "true", "prop_expire": "60",
                                 "conn_group": "old"}
    assert found["info"] == {"auth_method": "radius"}
    assert found["names"] == ["SUCCEED", "FAIL"]


def test_arguments_of_a_web_login(harness):
    run = harness(ECHO, [{"name": "web", "user": "bob", "client": {"web": True}}])
    found = seen(run, "web")
    assert found["authcred"] == {"username": "bob", "client_ip_addr": "203.0.113.10"}
    assert found["attributes"] == {"client_info": {}, "vpn_auth": False, "log_service_name": "WEB_CLIENT"}
    assert found["info"] == {"auth_method": "local"}


def test_radius_reply_by_name_arrives_by_number(harness):
    run = harness(ECHO, [{"name": "radius", "user": "alice", "auth_method": "radius",
                          "radius_reply": {"Class": ["staff"], "8": "10.8.0.5", "Framed-Pool": ["p1", "p2"],
                                           "Filter-Id": "vpn", "Callback-Number": "superuser", "26": [1]}}])
    assert run.rc == 0, run.report
    found = seen(run, "radius")
    # JSON keys are text again here: what matters is that the script saw int keys
    assert found["info"]["radius_reply"] == {"8": ["10.8.0.5"], "11": ["vpn"], "19": ["superuser"],
                                             "25": ["staff"], "26": ["1"], "88": ["p1", "p2"]}
    assert set(found["radius_keys"]) == {"int"}


def test_radius_reply_keyed_by_number_in_the_script(harness):
    script = """
        def post_auth(authcred, attributes, authret, info):
            if info["radius_reply"].get(25) == ["staff"] and "Class" not in info["radius_reply"]:
                authret["proplist"]["conn_group"] = "staff"
            return authret
    """
    run = harness(script, [{"name": "class", "user": "u", "radius_reply": {"Class": "staff"},
                            "expect": {"group": "staff"}}])
    assert run.rc == 0, run.report


def test_saml_attributes_pass_through(harness):
    run = harness(ECHO, [{"name": "saml", "user": "u", "auth_method": "saml", "saml_attr": {"groups": ["a", "b"]}}])
    assert seen(run, "saml")["info"] == {"auth_method": "saml", "saml_attr": {"groups": ["a", "b"]}}


# --- fake LDAP contexts ----------------------------------------------------------------------------------------------

LDAP3 = """
    SYNCHRONOUS = True

    def post_auth(authcred, attributes, authret, info):
        with info["ldap_context"] as l:
            if hasattr(l, "search_s"):
                raise RuntimeError("an ldap3 context has no search_s")
            l.search(info["user_dn"], "(objectClass=*)", search_scope="BASE", attributes=["memberOf"])
            groups = [g for entry in l.response for g in entry["attributes"]["memberOf"]]
            l.search("ou=groups,dc=example,dc=com", "(member=x)", search_scope="SUBTREE", attributes=["cn"])
            names = [n for entry in l.response for n in entry["attributes"]["cn"]]
            l.search("uid=somebody-else,dc=example,dc=com", "(objectClass=*)", search_scope="BASE",
                     attributes=["memberOf"])
            others = list(l.response)
        authret["proplist"]["conn_group"] = "|".join(groups)
        authret["proplist"]["group_names"] = "|".join(names)
        authret["proplist"]["others"] = str(len(others))
        return authret
"""

PYTHON_LDAP = """
    SYNCHRONOUS = True

    def post_auth(authcred, attributes, authret, info):
        with info["ldap_context"] as l:
            found = l.search_s(info["user_dn"], 0, "(objectClass=*)", ["memberOf"])
            groups = [v for dn, attrs in found for v in attrs["memberOf"]]
            if not all(isinstance(v, bytes) for v in groups):
                raise TypeError("python-ldap values are bytes")
            names = [v.decode("utf-8") for dn, attrs in l.search_s("dc=example,dc=com", 2, "(member=x)", ["cn"])
                     for v in attrs["cn"]]
        authret["proplist"]["conn_group"] = "|".join(v.decode("utf-8") for v in groups)
        authret["proplist"]["group_names"] = "|".join(names)
        return authret
"""

GROUPS = ["cn=VPN Admins,ou=groups,dc=example,dc=com", "cn=staff,ou=groups,dc=example,dc=com"]


@pytest.mark.parametrize(
    ("script", "api"),
    [pytest.param(LDAP3, "ldap3", id="ldap3"), pytest.param(PYTHON_LDAP, "python-ldap", id="python-ldap")],
)
def test_ldap_context_sees_the_case_groups(harness, script, api):
    ldap = {"groups": GROUPS}
    if api != "ldap3":
        ldap["api"] = api
    run = harness(script, [{
        "name": "alice", "user": "alice", "auth_method": "ldap", "ldap": ldap,
        "expect": {"status": "SUCCEED", "group": "|".join(GROUPS),
                   "properties": {"group_names": "VPN Admins|staff"}},
    }, {
        "name": "nobody", "user": "nobody", "auth_method": "ldap", "ldap": dict(ldap, groups=[]),
        "expect": {"status": "SUCCEED", "group": "", "properties": {"group_names": ""}},
    }])
    assert run.rc == 0, run.report
    assert run.case("alice")["problems"] == []
    assert run.case("nobody")["group"] == ""


def test_ldap3_base_search_of_another_dn_finds_nothing(harness):
    run = harness(LDAP3, [{"name": "a", "user": "alice", "auth_method": "ldap", "ldap": {"groups": GROUPS},
                           "expect": {"properties": {"others": "0"}}}])
    assert run.rc == 0, run.report


def test_ldap_user_dn_from_the_case_matches_without_regard_to_case(harness):
    script = """
        def post_auth(authcred, attributes, authret, info):
            with info["ldap_context"] as l:
                l.search("cn=alice smith,ou=staff,dc=example,dc=com", "(objectClass=*)", search_scope="BASE",
                         attributes=["memberOf"])
                authret["proplist"]["conn_group"] = "|".join(
                    g for entry in l.response for g in entry["attributes"]["memberOf"])
            return authret
    """
    run = harness(script, [{
        "name": "dn", "user": "alice", "auth_method": "ldap",
        "ldap": {"user_dn": "CN=Alice Smith,OU=Staff,DC=Example,DC=com", "groups": GROUPS[:1]},
        "expect": {"group": GROUPS[0]},
    }])
    assert run.rc == 0, run.report


def test_ldap_default_user_dn(harness):
    run = harness(ECHO, [{"name": "dn", "user": "alice", "auth_method": "ldap", "ldap": {"groups": []}}])
    assert seen(run, "dn")["info"] == {"auth_method": "ldap", "user_dn": "uid=alice,ou=people,dc=example,dc=com"}


# --- challenge/response, threads, exceptions, output -----------------------------------------------------------------

CHALLENGE = """
    from pyovpn.plugin import SUCCEED, FAIL

    def post_auth_cr(authcred, attributes, authret, info, crstate):
        crstate["seen"] = True
        if "seen" not in crstate or crstate.get("seen") is not True:
            raise RuntimeError("crstate is not dict-like")
        answer = crstate.response()
        if not answer:
            return crstate.challenge_post_auth(authret, "Enter your code", echo=True)
        if answer != "123456":
            authret["status"] = FAIL
            authret["reason"] = "wrong code %s" % answer
            return authret
        authret["proplist"]["conn_group"] = "mfa:" + answer
        return authret
"""


def test_post_auth_cr_gets_crstate_with_the_client_response(harness):
    run = harness(CHALLENGE, [
        {"name": "right", "user": "u", "client": {"response": "123456"},
         "expect": {"status": "SUCCEED", "group": "mfa:123456", "challenge": False}},
        {"name": "wrong", "user": "u", "client": {"response": "000000"},
         "expect": {"status": "FAIL", "reason": "wrong code 000000"}},
        {"name": "first round", "user": "u", "expect": {"status": "FAIL", "challenge": True}},
    ])
    assert run.rc == 0, run.report
    assert run.report["passed"] == 3


def test_challenge_expectation_can_fail(harness):
    run = harness(CHALLENGE, [{"name": "first round", "user": "u", "expect": {"challenge": False}}])
    assert run.rc == 1
    assert run.case("first round")["problems"] == [
        "challenge {'text': 'Enter your code', 'echo': True}, expected none"]


THREAD = """
    import threading
    {flag}
    def post_auth(authcred, attributes, authret, info):
        print("running in", threading.current_thread().name)
        authret["proplist"]["conn_group"] = threading.current_thread().name
        return authret
"""


@pytest.mark.parametrize(
    ("flag", "main_thread"),
    [
        pytest.param("SYNCHRONOUS = False", False, id="asynchronous"),
        pytest.param("", False, id="undefined-is-asynchronous"),
        pytest.param("SYNCHRONOUS = True", True, id="synchronous"),
    ],
)
def test_synchronous_flag_picks_the_thread(harness, flag, main_thread):
    run = harness(THREAD.replace("{flag}", flag), [{"name": "t", "user": "u"}])
    assert run.rc == 0, run.report
    thread = run.case("t")["group"]
    assert thread
    assert (thread == "MainThread") is main_thread, thread
    assert "running in %s" % thread in run.stderr


RAISES = """
    {flag}
    def post_auth(authcred, attributes, authret, info):
        if authret["user"] == "bad":
            raise KeyError("no such thing")
        return authret
"""


@pytest.mark.parametrize("flag", ["SYNCHRONOUS = True", "SYNCHRONOUS = False"])
def test_exception_in_the_script_fails_the_case(harness, flag):
    run = harness(RAISES.replace("{flag}", flag), [
        {"name": "raises", "user": "bad", "expect": {"status": "FAIL", "reason": "post_auth raised KeyError"}},
        {"name": "raises but expected in", "user": "bad", "expect": {"status": "SUCCEED"}},
        {"name": "after", "user": "good", "expect": {"status": "SUCCEED"}},
    ])
    assert run.rc == 1, run.report
    assert run.case("raises")["status"] == "FAIL"
    assert run.case("raises")["reason"] == "post_auth raised KeyError: 'no such thing'"
    assert run.case("raises")["problems"] == []
    assert run.report["summary"] == [
        "raises but expected in: status FAIL, expected SUCCEED (reason: post_auth raised KeyError: 'no such thing')"]
    assert run.case("after")["status"] == "SUCCEED"


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        pytest.param({"name": "broken"}, "the case could not run: Traceback", id="missing-user"),
        pytest.param({"name": "broken", "user": "u", "radius_reply": {"Reply-Message": "hi"}},
                     "the case could not run: Traceback", id="unknown-radius-name"),
    ],
)
def test_broken_case_fails_without_stopping_the_others(harness, case, problem):
    run = harness(GATE, [case, {"name": "fine", "user": "alice", "expect": {"status": "SUCCEED"}}])
    assert run.rc == 1
    assert run.case("broken")["problems"][0].startswith(problem)
    assert run.case("fine")["problems"] == []


def test_script_returning_nothing_fails_the_case(harness):
    run = harness("def post_auth(authcred, attributes, authret, info):\n    pass\n",
                  [{"name": "none", "user": "u", "expect": {"status": "SUCCEED"}}])
    assert run.rc == 1
    assert run.report["failed"] == 1


def test_script_output_does_not_corrupt_the_report(harness):
    script = """
        import sys
        SYNCHRONOUS = {sync}
        print("{ not json")
        sys.stdout.write('{"cases": [], "passed": 99}\\n')

        def post_auth(authcred, attributes, authret, info):
            print("during the case", authret["user"])
            sys.stdout.write("]]]\\n")
            return authret
    """
    for sync in ("True", "False"):
        run = harness(script.replace("{sync}", sync), [{"name": "noisy", "user": "u", "expect": {"status": "SUCCEED"}}])
        assert run.rc == 0, run.stdout
        assert run.report["passed"] == 1
        assert run.stdout.lstrip().startswith("{")
        assert "{ not json" in run.stderr
        assert "during the case u" in run.stderr
        assert "]]]" not in run.stdout


def test_report_names_the_python(harness, python):
    run = harness(GATE, [])
    version = subprocess.run([*python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    assert run.report["python"] == version


# A script that names the pyovpn.plugin it imported: the file of a real package, or "stand-in".
PLUGIN = """
    import sys

    from pyovpn.plugin import *

    def post_auth(authcred, attributes, authret, info):
        plugin = sys.modules["pyovpn.plugin"]
        authret["proplist"]["conn_group"] = getattr(plugin, "__file__", None) or "stand-in"
        authret["status"] = SUCCEED
        return authret
"""


def test_pyovpn_is_the_importable_package_or_the_stand_in(harness, python):
    """The script gets the pyovpn the interpreter can import (the emulator's here), the stand-in without one."""
    probe = "import importlib.util; spec = importlib.util.find_spec('pyovpn'); print(spec.origin if spec else '')"
    found = subprocess.run([*python, "-c", probe], capture_output=True, text=True, timeout=60,
                           check=True).stdout.strip()
    if "-S" in python:
        assert found == ""
    elif python == [sys.executable]:
        # the environment of the tests holds the emulator, so both ways of the harness are run
        assert found.endswith(os.path.join("pyovpn", "__init__.py")), "no pyovpn in the tests' environment"
    expected = os.path.join(os.path.dirname(found), "plugin.py") if found else "stand-in"
    run = harness(PLUGIN, [{"name": "u", "user": "alice", "expect": {"status": "SUCCEED", "group": expected}}])
    assert run.rc == 0, run.report
    assert run.case("u")["group"] == expected


def test_non_ascii_cases_and_script_in_the_c_locale(harness):
    """The server may run the harness without a UTF-8 locale; script and cases are UTF-8 all the same."""
    script = """
        # -*- coding: utf-8 -*-
        def post_auth(authcred, attributes, authret, info):
            authret["client_reason"] = "Grüße, %s" % authret["user"]
            return authret
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", LANG="C")
    run = harness(script, [{"name": "Jürgen", "user": "jürgen", "expect": {"client_reason": "Grüße, jürgen"}}],
                  env=env)
    assert run.rc == 0, (run.report, run.stderr)
    assert run.case("Jürgen")["client_reason"] == "Grüße, jürgen"


TWO_LEGS = """
    RETAIN_PASSWORD = True
    def post_auth_cr(authcred, attributes, authret, info, crstate):
        if not crstate.response():
            crstate["asked"] = "yes:%s:%s" % (authcred.get("password"), authcred.get("static_response"))
            return crstate.challenge_post_auth(authret, "code?")
        authret["proplist"]["conn_group"] = "%s|%s|%s" % (
            crstate.get("asked"), crstate.response(), authcred.get("static_response"))
        return authret
"""


def test_answering_login_keeps_the_state_of_the_first(harness):
    """Like a client that reconnects with the answer: the first login's state comes along."""
    run = harness(TWO_LEGS, [
        {"name": "round trip", "user": "u",
         "client": {"password": "pw", "static_response": "st", "response": "42"},
         "expect": {"status": "SUCCEED", "group": "yes:pw:st|42|None"}},
    ])
    assert run.rc == 0, run.report


NETWORK = """
    class Unavailable(Exception):
        pass

    def post_json(url, body, headers, ca_file="", timeout=5, proxy=""):
        import urllib.request
        urllib.request.urlopen(url, data=body, timeout=timeout)  # the real thing: must never run in a case
        return 200, {}

    def post_auth(authcred, attributes, authret, info):
        try:
            status, reply = post_json("https://api.example.com/auth/v2/preauth", b"{}", {})
            authret["proplist"]["conn_group"] = "%s:%s" % (status, reply)
        except Unavailable as exc:
            authret["proplist"]["conn_group"] = "unavailable: %s" % exc
        return authret
"""


@pytest.mark.parametrize(
    "replies, group",
    [
        (None, "unavailable: no reply for /auth/v2/preauth in this policy case"),
        ({"/auth/v2/preauth": {"stat": "OK"}}, "200:{'stat': 'OK'}"),
        ({"/auth/v2/preauth": {"status": 401, "json": {"stat": "FAIL"}}}, "401:{'stat': 'FAIL'}"),
        ({"/auth/v2/preauth": {"status": 503}}, "unavailable: HTTP 503"),
        ({"/auth/v2/preauth": "unavailable"}, "unavailable: no reply for /auth/v2/preauth in this policy case"),
    ],
    ids=["unscripted", "json", "status-and-json", "5xx", "unavailable"],
)
def test_https_calls_get_scripted_replies_never_the_network(harness, replies, group):
    case = {"name": "c", "user": "u", "expect": {"group": group}}
    if replies is not None:
        case["http_replies"] = replies
    run = harness(NETWORK, [case])
    assert run.rc == 0, run.report


# An own script (not composed by the collection) calls its API the ways scripts do. The case's replies answer it
# on the loopback: the script's host name, port 443 and its own CA file are as on a server, nothing leaves.
OWN_HTTPS = """
    import http.client
    import json
    import socket
    import ssl
    import urllib.error
    import urllib.request

    CA_FILE = %(ca)r
    HOST = "api-1234.duosecurity.com"

    def context():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(CA_FILE)
        return ctx

    def with_http_client(host):
        connection = http.client.HTTPSConnection(host, 443, timeout=5, context=context())
        connection.request("POST", "/auth/v2/preauth", body="user=alice",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read().decode())

    def with_urllib(host):
        request = urllib.request.Request("https://%%s/auth/v2/preauth" %% host, data=b"user=alice")
        try:
            with urllib.request.urlopen(request, timeout=5, context=context()) as reply:
                return reply.status, json.loads(reply.read().decode())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode())

    def with_raw_socket(host):
        sock = socket.create_connection((host, 443), 5)
        tls = context().wrap_socket(sock, server_hostname=host)
        names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
        assert names == [host], names
        tls.sendall(("POST /auth/v2/preauth HTTP/1.1\\r\\nHost: %%s\\r\\nContent-Length: 10\\r\\n"
                     "Connection: close\\r\\n\\r\\nuser=alice" %% host).encode())
        data = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        tls.close()
        head, _, body = data.partition(b"\\r\\n\\r\\n")
        return int(head.split()[1]), json.loads(body.decode())

    def post_auth(authcred, attributes, authret, info):
        way = {"http.client": with_http_client, "urllib": with_urllib, "raw": with_raw_socket}[authcred["username"]]
        host = attributes["client_info"].get("UV_HOST", HOST)
        try:
            status, reply = way(host)
        except Exception as exc:
            authret["status"] = FAIL
            authret["reason"] = "%%s: %%s" %% (type(exc).__name__, exc)
            return authret
        authret["proplist"]["conn_group"] = "%%s:%%s" %% (status, reply.get("response", {}).get("result"))
        if reply.get("response", {}).get("result") != "allow":
            authret["status"] = FAIL
        return authret
"""
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.skipif(not os.path.exists(CA_BUNDLE), reason="needs a CA bundle to stand for the script's own")
@pytest.mark.parametrize("way", ["http.client", "urllib", "raw"])
def test_an_own_script_gets_https_replies_whatever_library_it_uses(harness, tmp_path, way):
    ca = tmp_path / "duo_ca.pem"
    with open(CA_BUNDLE, "rb") as bundle:
        ca.write_bytes(bundle.read())
    allow = {"stat": "OK", "response": {"result": "allow"}}
    cases = [
        {"name": "by host and path", "user": "u", "username": way,
         "http_replies": {"https://api-1234.duosecurity.com/auth/v2/preauth": allow},
         "expect": {"status": "SUCCEED", "group": "200:allow"}},
        {"name": "by path", "user": "u", "username": way,
         "http_replies": {"/auth/v2/preauth": {"status": 403, "json": {"response": {"result": "deny"}}}},
         "expect": {"status": "FAIL", "group": "403:deny"}},
        {"name": "another host scripted", "user": "u", "username": way,
         "client": {"info": {"UV_HOST": "evil.example.net"}},
         "http_replies": {"api-1234.duosecurity.com/auth/v2/preauth": allow},
         "expect": {"status": "FAIL"}},
        {"name": "a server that does not answer", "user": "u", "username": way,
         "http_replies": {"/auth/v2/preauth": "unavailable"}, "expect": {"status": "FAIL"}},
    ]
    run = harness(OWN_HTTPS % {"ca": str(ca)}, cases)
    assert run.case("by host and path")["problems"] == [], run.report
    assert run.case("by path")["problems"] == [], run.report
    assert run.case("a server that does not answer")["problems"] == [], run.report
    # the case fails, and says which host the script reached for
    assert run.case("another host scripted")["problems"] == [
        "reached for evil.example.net:443, for which the case scripts no reply"], run.report
    assert run.rc == 1


PINNING = """
    from pyovpn.plugin import *

    def post_auth(authcred, attributes, authret, info):
        hw = attributes["client_info"].get("IV_HWADDR")
        known = authret["proplist"].get("pvt_hw_addr")
        if known is None:
            authret["proplist"]["conn_group"] = "registered"
            return authret, {"pvt_hw_addr": hw}
        if known != hw:
            authret["status"] = FAIL
            authret["client_reason"] = "unknown device"
        return authret
"""


def test_what_an_own_script_saves_is_read_back_by_the_next_case_of_that_user(harness):
    run = harness(PINNING, [
        {"name": "first login", "user": "alice", "client": {"hw_addr": "00:aa:00:aa:00:aa"},
         "expect": {"status": "SUCCEED", "group": "registered", "saved": {"pvt_hw_addr": "00:aa:00:aa:00:aa"}}},
        {"name": "same device", "user": "alice", "client": {"hw_addr": "00:aa:00:aa:00:aa"},
         "expect": {"status": "SUCCEED", "properties": {"pvt_hw_addr": "00:aa:00:aa:00:aa"}}},
        {"name": "another device", "user": "alice", "client": {"hw_addr": "00:bb:00:bb:00:bb"},
         "expect": {"status": "FAIL", "client_reason": "unknown device"}},
        {"name": "another user", "user": "bob", "client": {"hw_addr": "00:bb:00:bb:00:bb"},
         "expect": {"status": "SUCCEED", "group": "registered"}},
        {"name": "a case's properties win", "user": "alice", "client": {"hw_addr": "00:bb:00:bb:00:bb"},
         "properties": {"pvt_hw_addr": "00:bb:00:bb:00:bb"}, "expect": {"status": "SUCCEED"}},
    ])
    assert run.rc == 0, run.report
