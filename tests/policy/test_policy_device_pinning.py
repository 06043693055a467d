"""Device pinning, composed by the post_auth role and driven through the emulator's authcli.

Two scenarios, one role run each: auto registration (two devices, office networks only, exempt
users and groups) and manual mode with the registry the role pushes (exclusive, missing
addresses allowed). Every test uses its own local users, so the tests of a scenario share its
root without depending on each other's logins.
"""

import pytest
from policy import MESSAGES, Log, hw_slots, recap, scenarios, user_props, vpn

# The capability on in each of its variants, for the unit test that renders every combination of
# capabilities (tests/unit/templates/test_script_combinations.py reads this literal).
VARIANTS = [
    {"post_auth_device_pinning_mode": "auto"},
    {"post_auth_device_pinning_mode": "auto", "post_auth_device_pinning_networks": ["10.0.0.0/8"]},
    {"post_auth_device_pinning_mode": "manual", "post_auth_device_pinning_registry": {"alice": ["00:11:22:33:44:55"]}},
    {"post_auth_device_pinning_mode": "manual", "post_auth_device_pinning_registry_exclusive": True,
     "post_auth_device_pinning_registry": {"alice": ["00-11-22-AA-BB-CC", "001122aabbcd"], "bob": "00:11:22:33:44:66"},
     "post_auth_device_pinning_exempt_users": ["svc-backup"], "post_auth_device_pinning_exempt_groups": ["admins"],
     "post_auth_device_pinning_allow_missing_address": True},
    {"post_auth_device_pinning_mode": "auto", "post_auth_device_pinning_max_devices": 3,
     "post_auth_device_pinning_networks": ["10.0.0.0/8", "2001:db8::/32"],
     "post_auth_device_pinning_exempt_groups": ["admins"]},
]

OFFICE = "10.1.2.3"
LAB = "192.0.2.44"
HOME = "198.51.100.7"

AUTO = {
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "auto",
    "post_auth_device_pinning_max_devices": 2,
    "post_auth_device_pinning_networks": ["10.0.0.0/8", "192.0.2.0/24"],
    "post_auth_device_pinning_exempt_users": ["BreakGlass"],
    "post_auth_device_pinning_exempt_groups": ["Admins"],
}

MANUAL = {
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_mode": "manual",
    "post_auth_device_pinning_registry": {
        "alice": ["00-11-22-33-44-55"],
        "bob": ["AA:BB:CC:DD:EE:01", "aa-bb-cc-dd-ee-02"],
    },
    "post_auth_device_pinning_registry_exclusive": True,
    "post_auth_device_pinning_allow_missing_address": True,
}


def password(user):
    return "%s-secret" % user


def local_user(sc, user, **props):
    sc.server.set_password(user, password(user))
    for name, value in props.items():
        sc.server.sacli("--user", user, "--key", name, "--value", value, "UserPropPut")
    return user


def vpn_login(sc, user, *options):
    return sc.login(user, password(user), *options)


# auto registration ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both scenarios, their role runs side by side."""
    return scenarios(tmp_path_factory, {"pinning-auto": (AUTO, None), "pinning-manual": (MANUAL, prepare_manual)})


@pytest.fixture(scope="module")
def auto(built):
    return built["pinning-auto"]


def test_auto_role_run_loads_the_script_and_registers_nothing(auto):
    commands = auto.server.commands()
    assert commands.count("ConfigPut") == 1 and commands.count("start") == 1, commands
    assert "UserPropPut" not in commands and "UserPropGet" not in commands, commands
    assert "# ovpnas.fleet.features: device_pinning\n" in auto.script
    assert recap(auto.first_run.stdout)["as01"]["failed"] == 0


def test_first_vpn_login_registers_the_device(auto):
    user = local_user(auto, "ada")
    log = Log(auto.server)
    first = vpn_login(auto, user, *vpn("00-1A-2B-3C-4D-5E", OFFICE))
    assert first["status"] == "SUCCEED", first
    assert first.props["pvt_hw_addr"] == "00:1a:2b:3c:4d:5e"
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": "00:1a:2b:3c:4d:5e"}
    assert "registered device 00:1a:2b:3c:4d:5e for ada in pvt_hw_addr" in log.new()

    # the registered device in any spelling, from anywhere (also reported only as IV_HWADDR)
    for options in (vpn("00:1A:2B:3C:4D:5E", HOME), vpn("001a2b3c4d5e"),
                    vpn(ip=HOME, IV_HWADDR="00-1a-2b-3c-4d-5e")):
        again = vpn_login(auto, user, *options)
        assert again["status"] == "SUCCEED", (options, again)
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": "00:1a:2b:3c:4d:5e"}


def test_second_device_is_registered_and_a_third_refused(auto):
    user = local_user(auto, "ben")
    assert vpn_login(auto, user, *vpn("02:00:00:00:00:01", OFFICE))["status"] == "SUCCEED"
    second = vpn_login(auto, user, *vpn("02-00-00-00-00-02", LAB))
    assert second["status"] == "SUCCEED", second
    assert second.props["pvt_hw_addr2"] == "02:00:00:00:00:02"
    registered = {"pvt_hw_addr": "02:00:00:00:00:01", "pvt_hw_addr2": "02:00:00:00:00:02"}
    assert hw_slots(user_props(auto.server, user)) == registered

    third = vpn_login(auto, user, *vpn("02:00:00:00:00:03", OFFICE))
    assert third["status"] == "FAIL"
    assert third["client_reason"] == MESSAGES["device_not_registered"]
    assert third["reason"] == "device_pinning: device 02:00:00:00:00:03 is not registered for ben"
    assert hw_slots(user_props(auto.server, user)) == registered
    for address in ("02:00:00:00:00:01", "02:00:00:00:00:02"):
        assert vpn_login(auto, user, *vpn(address.upper(), HOME))["status"] == "SUCCEED", address


def test_registration_only_from_listed_networks(auto):
    user = local_user(auto, "cy")
    for ip in (HOME, "127.0.0.1", "2001:db8::1", "11.0.0.1"):
        refused = vpn_login(auto, user, *vpn("02:00:00:00:0c:01", ip))
        assert refused["status"] == "FAIL", ip
        assert refused["client_reason"] == MESSAGES["device_not_registered"], ip
    assert hw_slots(user_props(auto.server, user)) == {}
    assert vpn_login(auto, user, *vpn("02:00:00:00:0c:01", LAB))["status"] == "SUCCEED"
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": "02:00:00:00:0c:01"}
    # once registered, the device gets in from outside the office too
    assert vpn_login(auto, user, *vpn("02:00:00:00:0c:01", HOME))["status"] == "SUCCEED"


def test_exempt_users_are_not_checked(auto):
    # listed as BreakGlass: user names compare without regard to case
    user = local_user(auto, "breakglass")
    for options in ([], vpn("02:00:00:00:0d:01", HOME), vpn("not-an-address", OFFICE)):
        outcome = vpn_login(auto, user, *options)
        assert outcome["status"] == "SUCCEED", (options, outcome)
    assert hw_slots(user_props(auto.server, user)) == {}


def test_exempt_groups_are_not_checked(auto):
    member = local_user(auto, "gina", conn_group="admins")
    outsider = local_user(auto, "hank", conn_group="staff")
    exempt = vpn_login(auto, member)
    assert exempt["status"] == "SUCCEED", exempt
    assert exempt.group == "admins"
    assert vpn_login(auto, member, *vpn("02:00:00:00:0e:01", HOME))["status"] == "SUCCEED"
    assert hw_slots(user_props(auto.server, member)) == {}
    refused = vpn_login(auto, outsider)
    assert refused["status"] == "FAIL"
    assert refused["client_reason"] == MESSAGES["device_missing_address"]


def test_missing_address_is_refused(auto):
    user = local_user(auto, "ivy")
    refused = vpn_login(auto, user, *vpn(ip=OFFICE))
    assert refused["status"] == "FAIL"
    assert refused["client_reason"] == MESSAGES["device_missing_address"]
    assert refused["reason"] == "device_pinning: client sent no hardware address"
    assert hw_slots(user_props(auto.server, user)) == {}


def test_a_phone_registers_the_device_uuid_it_sends_instead_of_a_mac_address(auto):
    # iOS sends its UUID in upper case, Android in lower case, both in IV_HWADDR and never a MAC address
    user = local_user(auto, "ida")
    phone = "9B2C5E1A-3F4D-4C7E-8A1B-2C3D4E5F6A7B"
    first = vpn_login(auto, user, *vpn(ip=OFFICE, IV_HWADDR=phone, IV_PLAT="ios"))
    assert first["status"] == "SUCCEED", first
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": phone.lower()}
    again = vpn_login(auto, user, *vpn(ip=OFFICE, IV_HWADDR=phone.lower(), IV_PLAT="android"))
    assert again["status"] == "SUCCEED", again
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": phone.lower()}
    # a UUID in braces, or without its dashes, is no device of a known form
    for odd in ("{%s}" % phone, phone.replace("-", "")):
        refused = vpn_login(auto, user, *vpn(ip=OFFICE, IV_HWADDR=odd, IV_PLAT="ios"))
        assert refused["status"] == "FAIL" and refused["client_reason"] == MESSAGES["device_invalid_address"], odd


@pytest.mark.parametrize("address", ["zz:11:22:33:44:55", "00:11:22:33:44", "00:11-22:33:44:55",
                                     "00:11:22:33:44:55:66", "00:11:22:33:44:55'; import os"])
def test_invalid_address_is_refused(auto, address):
    user = local_user(auto, "jay")
    refused = vpn_login(auto, user, *vpn(address, OFFICE))
    assert refused["status"] == "FAIL"
    assert refused["client_reason"] == MESSAGES["device_invalid_address"]
    assert refused["reason"] == "device_pinning: client sent an invalid hardware address"
    assert hw_slots(user_props(auto.server, user)) == {}


def test_web_logins_are_not_checked(auto):
    user = local_user(auto, "kay")
    for options in (["--web"], ["--web", *vpn("02:00:00:00:0f:01", OFFICE)]):
        outcome = vpn_login(auto, user, *options)
        assert outcome["status"] == "SUCCEED", (options, outcome)
    # nothing was registered by the web logins: the first VPN device still gets the first slot
    assert hw_slots(user_props(auto.server, user)) == {}
    assert vpn_login(auto, user, *vpn("02:00:00:00:0f:02", OFFICE))["status"] == "SUCCEED"
    assert hw_slots(user_props(auto.server, user)) == {"pvt_hw_addr": "02:00:00:00:0f:02"}


def test_reauth_of_a_registered_device_passes(auto):
    user = local_user(auto, "lou")
    for address in ("02:00:00:00:10:01", "02:00:00:00:10:02"):
        assert vpn_login(auto, user, *vpn(address, OFFICE))["status"] == "SUCCEED"
    reauth = vpn_login(auto, user, "--reauth", *vpn("02-00-00-00-10-01", HOME))
    assert reauth["status"] == "SUCCEED", reauth
    other = vpn_login(auto, user, "--reauth", *vpn("02:00:00:00:10:03", OFFICE))
    assert other["status"] == "FAIL"
    assert other["client_reason"] == MESSAGES["device_not_registered"]


def test_failed_primary_authentication_registers_nothing(auto):
    user = local_user(auto, "max")
    outcome = auto.login(user, "wrong", *vpn("02:00:00:00:11:01", OFFICE))
    assert outcome["status"] == "FAIL"
    assert outcome["reason"] == "local auth failed: password verification failed"
    assert "client_reason" not in outcome
    assert hw_slots(user_props(auto.server, user)) == {}


# manual mode: the registry pushed by the role --------------------------------------------------

STALE = {"pvt_hw_addr2": "de:ad:be:ef:00:02", "pvt_hw_addr3": "de:ad:be:ef:00:03"}


def prepare_manual(server):
    for user in ("alice", "bob", "carol"):
        server.set_password(user, password(user))
    # registrations made before the role run: alice's are stale, carol is not in the registry
    for name, value in STALE.items():
        server.sacli("--user", "alice", "--key", name, "--value", value, "UserPropPut")
    server.sacli("--user", "carol", "--key", "pvt_hw_addr", "--value", "CA-CA-CA-CA-CA-01", "UserPropPut")


@pytest.fixture(scope="module")
def manual(built):
    return built["pinning-manual"]


def test_manual_role_run_pushes_the_registry(manual):
    props = manual.server.userprops()
    # exclusive: alice's stale pvt_hw_addr2 and pvt_hw_addr3 are gone
    assert hw_slots(props["alice"]) == {"pvt_hw_addr": "00:11:22:33:44:55"}
    assert hw_slots(props["bob"]) == {"pvt_hw_addr": "aa:bb:cc:dd:ee:01", "pvt_hw_addr2": "aa:bb:cc:dd:ee:02"}
    # users the registry does not list keep what an administrator registered
    assert hw_slots(props["carol"]) == {"pvt_hw_addr": "CA-CA-CA-CA-CA-01"}
    commands = manual.server.commands()
    assert "UserPropDel" in commands and "UserPropPut" in commands, commands
    assert commands.count("start") == 1, commands


def test_manual_registered_devices_pass(manual):
    for user, address in (("alice", "00:11:22:33:44:55"), ("alice", "00-11-22-33-44-55"),
                          ("bob", "AA:BB:CC:DD:EE:02"), ("carol", "ca:ca:ca:ca:ca:01")):
        outcome = vpn_login(manual, user, *vpn(address, "10.0.0.1"))
        assert outcome["status"] == "SUCCEED", (user, address, outcome)


def test_manual_never_registers(manual):
    log = Log(manual.server)
    for address in ("de:ad:be:ef:00:02", "02:00:00:00:20:01"):
        refused = vpn_login(manual, "alice", *vpn(address, "10.0.0.1"))
        assert refused["status"] == "FAIL", address
        assert refused["client_reason"] == MESSAGES["device_not_registered"]
    assert hw_slots(user_props(manual.server, "alice")) == {"pvt_hw_addr": "00:11:22:33:44:55"}
    assert "registered device" not in log.new()


def test_manual_missing_address_allowed_with_the_switch(manual):
    log = Log(manual.server)
    allowed = vpn_login(manual, "bob")
    assert allowed["status"] == "SUCCEED", allowed
    assert "bob connected without a hardware address (allowed)" in log.new()
    # the switch lets in clients that send nothing, not clients that send garbage
    invalid = vpn_login(manual, "bob", *vpn("bb:bb:bb"))
    assert invalid["status"] == "FAIL"
    assert invalid["client_reason"] == MESSAGES["device_invalid_address"]


def test_manual_second_role_run_changes_nothing(manual):
    manual.server.reset_calls()
    again = manual.apply()
    assert recap(again.stdout)["as01"]["changed"] == 0, again.stdout
    assert sorted(manual.server.commands()) == ["ConfigQuery", "UserPropGet"]
    assert hw_slots(user_props(manual.server, "alice")) == {"pvt_hw_addr": "00:11:22:33:44:55"}
