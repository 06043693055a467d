"""The host-checker policy, composed by the post_auth role and driven through the emulator's authcli.

Two scenarios, one role run each: `strict` (the defaults: errors, missing reports refused; allowed
platforms and a minimum client version; a user-facing message full of quotes, backslashes, newlines
and Python code) and `lenient` (error codes and missing reports allowed, unreporting platforms
refused). The clients report what OpenVPN Connect reports: IV_PLAT, UV_ASCLI_VER, UV_APPVER_<NAME>.
"""

import os

import pytest
from policy import MESSAGES, Log, scenarios, vpn

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"host_checker_apps": [{"name": "FIREFOX", "regex": "^mozilla firefox", "min_version": "115.0"}]},
    {"host_checker_apps": [{"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True}]},
    {"host_checker_apps": [{"name": "FIREFOX", "regex": "^mozilla firefox", "min_version": "115.0.2", "required": True},
                           {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True},
                           {"name": "XPROTECT", "regex": "^xprotect", "platform": "mac", "min_version": "2180"}],
     "post_auth_host_checker_platforms": ["win", "mac"], "post_auth_host_checker_min_client_version": "3.4.2",
     "post_auth_host_checker_on_error": {"ERR_NO_VERSION": "allow"}, "post_auth_host_checker_missing_report": "allow",
     "post_auth_host_checker_unreporting_platforms": "deny"},
    {"host_checker_apps": [{"name": "DEFENDER", "regex": "^microsoft defender", "required": True}],
     "post_auth_host_checker_on_error": {"ERR_NO_VERSION": "allow", "ERR_MANY_FOUND": "allow", "ERR_REGEX": "allow"}},
    {"host_checker_apps": [], "post_auth_host_checker_platforms": ["win"]},
]

APPS = [
    {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.10", "required": True},
    {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True},
    {"name": "CHROME", "regex": "^google chrome", "platform": "all", "min_version": "120.0", "required": False},
    # neither required nor with a minimum version: never checked
    {"name": "NOTES", "regex": "^notes", "platform": "all"},
]

# what a current Windows client reports
GOOD = {"IV_PLAT": "win", "UV_ASCLI_VER": "3.5.0", "UV_APPVER_FIREFOX": "115.10",
        "UV_APPVER_DEFENDER": "4.18.24090.11", "UV_APPVER_CHROME": "121.0.6167.85"}

# quotes, a backslash, a newline and Python code: data, never code
EVIL = "It's \"{app}\" \\ {min_version}\n'''; import os; os.system('touch %s') #"

USER, PASSWORD = "hc", "hc-pw"

LENIENT = {
    "post_auth_host_checker": True,
    "host_checker_apps": APPS,
    "post_auth_host_checker_on_error": {"ERR_NO_VERSION": "allow", "ERR_MANY_FOUND": "allow", "ERR_REGEX": "allow"},
    "post_auth_host_checker_missing_report": "allow",
    "post_auth_host_checker_unreporting_platforms": "deny",
}


def client(**changes):
    """authcli options of a client reporting GOOD with ``changes`` (None removes an entry)."""
    info = dict(GOOD)
    for name, value in changes.items():
        if value is None:
            info.pop(name, None)
        else:
            info[name] = value
    return vpn(**info)


def login(sc, *options):
    return sc.login(USER, PASSWORD, *options)


def refused(outcome, message, **values):
    text = MESSAGES.get(message, message)
    for name, value in values.items():
        text = text.replace("{%s}" % name, value)
    assert outcome["status"] == "FAIL", outcome
    assert outcome["client_reason"] == text, outcome
    return outcome


# strict: the defaults ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    """The file the code in the message would create if it ever ran."""
    return str(tmp_path_factory.mktemp("pwned") / "pwned")


def strict_variables(marker):
    return {
        # the list shared with the host_checker role (post_auth_host_checker_apps defaults to it)
        "host_checker_apps": APPS,
        "post_auth_host_checker": True,
        "post_auth_host_checker_platforms": ["Win", "mac", "linux"],
        "post_auth_host_checker_min_client_version": "3.4",
        "post_auth_messages": dict(MESSAGES, app_outdated=EVIL % marker),
        "post_auth_policy_tests": [{
            "name": "the message is data",
            "user": USER,
            "client": {"platform": "win", "version": "3.5.0",
                       "info": {"UV_APPVER_FIREFOX": "115.9", "UV_APPVER_DEFENDER": "4.18",
                                "UV_APPVER_CHROME": "121.0"}},
            "expect": {"status": "FAIL", "client_reason": "import os; os.system('touch %s') #" % marker},
        }],
    }


def prepare(server):
    server.set_password(USER, PASSWORD)


@pytest.fixture(scope="module")
def built(tmp_path_factory, marker):
    """Both scenarios, their role runs side by side."""
    return scenarios(tmp_path_factory, {
        "host-checker-strict": (strict_variables(marker), prepare),
        "host-checker-lenient": (LENIENT, prepare),
    })


@pytest.fixture(scope="module")
def strict(built, marker):
    sc = built["host-checker-strict"]
    sc.evil = EVIL % marker
    return sc


def test_strict_role_run(strict, marker):
    assert "# ovpnas.fleet.features: host_checker\n" in strict.script
    commands = strict.server.commands()
    # the query file (host_checker role), then the script; one start for both
    assert commands.count("ConfigPut") == 2 and commands.count("start") == 1, commands
    # the policy case ran the script against the message: nothing was executed
    assert not os.path.exists(marker)


@pytest.mark.parametrize("version", ["115.10", "115.11", "116.0", "128.0.1", "v115.10.0"])
def test_new_enough_version_passes(strict, version):
    outcome = login(strict, *client(UV_APPVER_FIREFOX=version))
    assert outcome["status"] == "SUCCEED", outcome


def test_versions_compare_as_numbers(strict, marker):
    log = Log(strict.server)
    for version in ("115.9", "115.9.9", "115", "99.0"):
        outcome = refused(login(strict, *client(UV_APPVER_FIREFOX=version)), strict.evil,
                          app="FIREFOX", min_version="115.10")
        assert outcome["reason"] == "host_checker: FIREFOX %s is older than 115.10" % version
    assert "refused hc: host_checker: FIREFOX 115.9 is older than 115.10" in log.new()
    # an optional application with a minimum version is checked when it is there
    refused(login(strict, *client(UV_APPVER_CHROME="119.9")), strict.evil, app="CHROME", min_version="120.0")


def test_message_with_quotes_newlines_and_code_is_shown_verbatim(strict, marker):
    outcome = login(strict, *client(UV_APPVER_FIREFOX="115.9"))
    expected = "It's \"FIREFOX\" \\ 115.10\n'''; import os; os.system('touch %s') #" % marker
    assert outcome["client_reason"] == expected
    assert not os.path.exists(marker)


def test_not_found_refuses_a_required_app_only(strict):
    refused(login(strict, *client(UV_APPVER_DEFENDER="ERR_NOT_FOUND")), "app_missing", app="DEFENDER")
    outcome = refused(login(strict, *client(UV_APPVER_FIREFOX="ERR_NOT_FOUND")), "app_missing", app="FIREFOX")
    assert outcome["reason"] == "host_checker: FIREFOX is not installed"
    assert login(strict, *client(UV_APPVER_CHROME="ERR_NOT_FOUND"))["status"] == "SUCCEED"


@pytest.mark.parametrize("code", ["ERR_NO_VERSION", "ERR_MANY_FOUND", "ERR_REGEX", "ERR_SOMETHING_NEW"])
def test_error_codes_refuse_by_default(strict, code):
    outcome = refused(login(strict, *client(UV_APPVER_FIREFOX=code)), "app_unverifiable", app="FIREFOX")
    assert "FIREFOX could not be checked" in outcome["reason"] and code in outcome["reason"]


def test_missing_report_refused_by_default(strict):
    outcome = refused(login(strict, *client(UV_APPVER_FIREFOX=None)), "app_unverifiable", app="FIREFOX")
    assert outcome["reason"] == "host_checker: the client reported nothing for FIREFOX"
    # an optional application that is checked (it has a minimum version) must be reported too
    refused(login(strict, *client(UV_APPVER_CHROME=None)), "app_unverifiable", app="CHROME")


def test_platform_specific_apps(strict):
    # DEFENDER is a Windows application: a Mac does not report it and does not need to
    mac = login(strict, *client(IV_PLAT="mac", UV_APPVER_DEFENDER=None))
    assert mac["status"] == "SUCCEED", mac
    refused(login(strict, *client(UV_APPVER_DEFENDER=None)), "app_unverifiable", app="DEFENDER")


@pytest.mark.parametrize("platform", ["ios", "android", "chromeos", None])
def test_platforms_not_allowed(strict, platform):
    outcome = refused(login(strict, *client(IV_PLAT=platform)), "platform_not_allowed")
    assert outcome["reason"].startswith("host_checker: platform ")


def test_versions_of_too_many_digits_are_refused_with_the_reason(strict):
    # Python reads at most 4300 digits as a number: the script says why, and fails closed
    for digits in (65, 4301, 20000):
        outcome = refused(login(strict, *client(UV_APPVER_FIREFOX="1" * digits + ".0")), "app_unverifiable",
                          app="FIREFOX")
        assert outcome["reason"] == "host_checker: FIREFOX version has a number of more than 64 digits", outcome
        outcome = refused(login(strict, *client(UV_ASCLI_VER="3." + "9" * digits)), "client_too_old", min_version="3.4")
        assert outcome["reason"] == "host_checker: client version has a number of more than 64 digits", outcome
    # 64 digits are a version still
    assert login(strict, *client(UV_APPVER_FIREFOX="9" * 64))["status"] == "SUCCEED"


def test_minimum_client_version(strict):
    for version in ("3.4", "3.10.1", "3.4.0.5"):
        assert login(strict, *client(UV_ASCLI_VER=version))["status"] == "SUCCEED", version
    for version in ("3.3.9", "2.7", "unknown", None):
        outcome = refused(login(strict, *client(UV_ASCLI_VER=version)), "client_too_old", min_version="3.4")
        assert outcome["reason"].startswith("host_checker: client version ")


def test_unreporting_platform_allowed_by_default(strict):
    linux = login(strict, *vpn(IV_PLAT="linux", UV_ASCLI_VER="3.5.0"))
    assert linux["status"] == "SUCCEED", linux


def test_web_logins_are_not_checked(strict):
    web = login(strict, "--web")
    assert web["status"] == "SUCCEED", web
    assert login(strict, "--web", *client(UV_APPVER_FIREFOX="1.0", IV_PLAT="ios"))["status"] == "SUCCEED"
    # the same client without --web is refused
    assert login(strict)["status"] == "FAIL"


# lenient: error codes and missing reports allowed, unreporting platforms refused ------------------

@pytest.fixture(scope="module")
def lenient(built):
    return built["host-checker-lenient"]


@pytest.mark.parametrize("code", ["ERR_NO_VERSION", "ERR_MANY_FOUND", "ERR_REGEX"])
def test_error_codes_allowed_when_configured(lenient, code):
    outcome = login(lenient, *client(UV_APPVER_FIREFOX=code, UV_APPVER_DEFENDER=code))
    assert outcome["status"] == "SUCCEED", outcome


def test_what_stays_refused_when_errors_are_allowed(lenient):
    refused(login(lenient, *client(UV_APPVER_FIREFOX="ERR_SOMETHING_NEW")), "app_unverifiable", app="FIREFOX")
    refused(login(lenient, *client(UV_APPVER_DEFENDER="ERR_NOT_FOUND")), "app_missing", app="DEFENDER")
    refused(login(lenient, *client(UV_APPVER_FIREFOX="115.9")), "app_outdated", app="FIREFOX", min_version="115.10")


def test_missing_report_allowed_when_configured(lenient):
    outcome = login(lenient, *client(UV_APPVER_FIREFOX=None, UV_APPVER_CHROME=None))
    assert outcome["status"] == "SUCCEED", outcome


@pytest.mark.parametrize("platform", ["linux", "ios", "android"])
def test_unreporting_platforms_refused_with_the_switch(lenient, platform):
    outcome = refused(login(lenient, *vpn(IV_PLAT=platform, UV_ASCLI_VER="3.5.0")), "platform_cannot_report")
    assert outcome["reason"] == "host_checker: platform '%s' cannot report applications" % platform


def test_lenient_has_no_platform_or_version_limits(lenient):
    outcome = login(lenient, *client(IV_PLAT="mac", UV_ASCLI_VER="1.0", UV_APPVER_DEFENDER=None))
    assert outcome["status"] == "SUCCEED", outcome
    assert login(lenient, "--web", *vpn(IV_PLAT="linux"))["status"] == "SUCCEED"
