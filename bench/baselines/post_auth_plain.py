"""A post-auth script written by hand for the policy of bench/script.py, plainly.

It does what the script the post_auth role generates for the benchmark's variables does:
group mapping on the SAML groups claim (first matching rule, else the default group), device
pinning in auto mode (three devices, registration only from two networks, one exempt user and
one exempt group) and a host-checker policy (two required applications, a minimum client
version). It makes the same decisions (status, group, message shown to the user, properties
saved) and fails closed the same way, written the way an administrator would write it for this
one policy: settings as constants, no framework. bench/script.py checks that both scripts decide
alike before it times them.
"""

import ipaddress
import re
import traceback

from pyovpn.plugin import FAIL, SUCCEED

GROUP_SELECT = True
SYNCHRONOUS = True

INTERNAL_ERROR = "Authentication failed. Please contact your administrator."

# group mapping: (rule, SAML groups, group, properties); the first match wins
RULES = [
    ("admins", {"vpn-admins"}, "admins", {"prop_autologin": "true"}),
    ("users", {"vpn-users"}, "users", {}),
]
DEFAULT_GROUP = "everyone"

# device pinning
SLOTS = ["pvt_hw_addr"] + ["pvt_hw_addr%d" % n for n in range(2, 11)]
MAX_DEVICES = 3
NETWORKS = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("198.51.100.0/24")]
EXEMPT_USERS = {"breakglass"}
EXEMPT_GROUPS = {"admins"}
MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")
NOT_HEX = re.compile("[^0-9A-Fa-f]")

# host checker: (application, platforms that report it, minimum version); both are required
MIN_CLIENT = (3, 4)
APPS = [
    ("FIREFOX", ("win", "mac"), (115, 0)),
    ("DEFENDER", ("win",), None),
]
DIGITS = re.compile(r"\d+")


class Refused(Exception):
    def __init__(self, reason, message):
        Exception.__init__(self, reason)
        self.reason = reason
        self.message = message


def mac(value):
    """A hardware address as 00:11:22:aa:bb:cc, or None."""
    text = str(value or "").strip()
    if not MAC.match(text):
        return None
    digits = NOT_HEX.sub("", text).lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def older(text, minimum):
    numbers = [int(n) for n in DIGITS.findall(str(text))]
    if not numbers:
        return True
    numbers += [0] * (len(minimum) - len(numbers))
    return tuple(numbers) < minimum


def check(authcred, attributes, authret, info):
    user = authret.get("user")
    if not user:
        raise ValueError("authret carries no user name")
    if not isinstance(authret.get("proplist"), dict):
        authret["proplist"] = {}
    proplist = authret["proplist"]
    save = {}
    client_info = attributes.get("client_info") or {}

    groups = set()
    if info.get("auth_method") == "saml":
        claim = (info.get("saml_attr") or {}).get("groups") or []
        if not isinstance(claim, (list, tuple)):
            claim = [claim]
        groups = {str(g).lower() for g in claim}
        for name, wanted, group, properties in RULES:
            if groups & wanted:
                proplist["conn_group"] = group
                proplist.update(properties)
                print("ovpnas.fleet post_auth: %s (saml) matched %s" % (user, name))
                break
        else:
            proplist["conn_group"] = DEFAULT_GROUP

    if not attributes.get("vpn_auth"):
        return authret, save

    mine = groups | {str(proplist.get("conn_group") or "").lower()}
    if user.lower() not in EXEMPT_USERS and not mine & EXEMPT_GROUPS:
        sent = authcred.get("client_hw_addr") or client_info.get("IV_HWADDR")
        address = mac(sent)
        if address is None and sent:
            raise Refused("client sent an invalid hardware address",
                          "This VPN client reports a hardware address that is not valid.")
        if address is None:
            raise Refused("client sent no hardware address",
                          "This VPN client does not report a hardware address, which is required.")
        if address not in [mac(proplist.get(slot)) for slot in SLOTS if proplist.get(slot)]:
            free = [slot for slot in SLOTS[:MAX_DEVICES] if not proplist.get(slot)]
            try:
                ip = ipaddress.ip_address(str(authcred.get("client_ip_addr") or "").strip())
            except ValueError:
                ip = None
            if not free or ip is None or not any(ip in net for net in NETWORKS):
                raise Refused("device %s is not registered for %s" % (address, user),
                              "This device is not registered for your account.")
            proplist[free[0]] = save[free[0]] = address
            print("ovpnas.fleet post_auth: registered device %s for %s in %s" % (address, user, free[0]))

    platform = str(client_info.get("IV_PLAT") or "").lower()
    if older(client_info.get("UV_ASCLI_VER") or "", MIN_CLIENT):
        raise Refused("client version %r is older than 3.4" % client_info.get("UV_ASCLI_VER"),
                      "Please update your VPN client to version 3.4 or later.")
    if platform not in ("win", "mac"):
        return authret, save
    for name, platforms, minimum in APPS:
        if platform not in platforms:
            continue
        value = client_info.get("UV_APPVER_" + name)
        if value is None or (value.startswith("ERR_") and value != "ERR_NOT_FOUND"):
            raise Refused("%s could not be checked: %s" % (name, value),
                          "%s could not be verified on this device." % name)
        if value == "ERR_NOT_FOUND":
            raise Refused("%s is not installed" % name, "%s is required on this device." % name)
        if minimum and older(value, minimum):
            raise Refused("%s %s is older than %s" % (name, value, ".".join(map(str, minimum))),
                          "%s must be updated to version %s or later." % (name, ".".join(map(str, minimum))))
    return authret, save


def post_auth(authcred, attributes, authret, info):
    if authret.get("status") != SUCCEED:
        return authret
    try:
        return check(authcred or {}, attributes or {}, authret, info or {})
    except Refused as refusal:
        authret["status"] = FAIL
        authret["reason"] = refusal.reason
        authret["client_reason"] = refusal.message
        print("ovpnas.fleet post_auth: refused %s: %s" % (authret.get("user"), refusal.reason))
        return authret, {}
    except Exception as exc:  # noqa: BLE001 - any error refuses the login
        authret["status"] = FAIL
        authret["reason"] = "post_auth error: %s: %s" % (type(exc).__name__, exc)
        authret["client_reason"] = INTERNAL_ERROR
        print("ovpnas.fleet post_auth: %s\n%s" % (authret["reason"], traceback.format_exc()))
        return authret, {}
