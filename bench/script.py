"""Benchmark: what the generated post-auth script costs per login, against the same checks written by hand.

The post_auth role (with the host_checker role for the query file, as the role tests apply them)
renders and loads a script with group mapping (SAML rules, a default group), device pinning (auto
mode, three devices, registration from two networks, an exempt user and an exempt group) and a
host-checker policy (two required applications, one with a minimum version, and a minimum client
version) into an emulated server. Three scripts are then loaded the way Access Server loads them
and called in this process the way it calls them, in the same run:

- generated: the script the role loaded;
- hand_written: bench/baselines/post_auth_plain.py, the same checks written plainly;
- floor: a script that returns authret.

Before anything is timed, the generated and the hand-written script must decide alike (status,
group, message shown to the user, properties saved) on a set of logins: some pass, most are
refused by one check or another. The timed login passes every check. The arguments of each call
are built before the clock starts, fresh for every call (scripts change authret), and the clock
is the CPU time of this process (other processes on the machine do not count). Each round times
every variant in turn; the result is the median of the rounds.

    .venv/bin/python bench/script.py [--calls 20000] [--rounds 7]
"""

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from asemu import postauth
from pyovpn.plugin import FAIL, SUCCEED

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

HAND_WRITTEN = os.path.join(HERE, "baselines", "post_auth_plain.py")
FLOOR = "def post_auth(authcred, attributes, authret, info):\n    return authret\n"
APPS = [
    {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
    {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True},
]
VARIABLES = {
    "post_auth_python": sys.executable,
    "host_checker_apps": APPS,
    "post_auth_group_mapping": True,
    # the logins come from a SAML identity provider: the rules read its groups claim
    "post_auth_group_mapping_sources": ["saml"],
    "post_auth_group_mapping_rules": [
        {"name": "admins", "saml_groups": ["vpn-admins"], "group": "admins", "properties": {"prop_autologin": True}},
        {"name": "users", "saml_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_default_group": "everyone",
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_max_devices": 3,
    "post_auth_device_pinning_networks": ["10.20.0.0/16", "198.51.100.0/24"],
    "post_auth_device_pinning_exempt_users": ["breakglass"],
    "post_auth_device_pinning_exempt_groups": ["admins"],
    "post_auth_host_checker": True,
    "post_auth_host_checker_min_client_version": "3.4",
}

LAPTOP = "00:11:22:33:44:55"
PHONE = "00:aa:bb:cc:dd:ee"
MESSAGES = {
    "device_not_registered": "This device is not registered for your account.",
    "device_missing_address": "This VPN client does not report a hardware address, which is required.",
    "device_invalid_address": "This VPN client reports a hardware address that is not valid.",
    "client_too_old": "Please update your VPN client to version 3.4 or later.",
    "app_outdated": "FIREFOX must be updated to version 115.0 or later.",
    "app_missing": "DEFENDER is required on this device.",
    "app_unverifiable": "FIREFOX could not be verified on this device.",
    "internal_error": "Authentication failed. Please contact your administrator.",
}


def login(user="alice", groups=("staff", "vpn-users"), hw_addr=LAPTOP, ip="203.0.113.7", devices=(PHONE, LAPTOP),
          vpn=True, method="saml", **client):
    """(authcred, attributes, authret, info) of a login; by default one that passes every check:
    the second rule, a registered device (the second of two), a current client with current apps."""
    authcred = {"username": user, "client_ip_addr": ip}
    if hw_addr is not None:
        authcred["client_hw_addr"] = hw_addr
    client_info = {"IV_PLAT": "win", "UV_ASCLI_VER": "3.5.1", "UV_APPVER_FIREFOX": "128.0.3",
                   "UV_APPVER_DEFENDER": "4.18.24090.11"}
    for name, value in client.items():
        if value is None:
            client_info.pop(name, None)
        else:
            client_info[name] = value
    attributes = {"vpn_auth": vpn, "reauth": False, "client_info": client_info}
    proplist = {"type": "user_connect"}
    proplist.update(zip(["pvt_hw_addr"] + ["pvt_hw_addr%d" % n for n in range(2, 11)], devices))
    authret = {"status": SUCCEED, "user": user, "reason": "", "proplist": proplist}
    info = {"auth_method": method, "saml_attr": {"groups": list(groups)}}
    return authcred, attributes, authret, info


# (what the login is, the login, expected: status, group, client_reason, properties saved)
CASES = [
    ("passes every check", login(), (SUCCEED, "users", None, {})),
    ("an administrator: exempt from device pinning", login("bob", ["vpn-admins"], "02:99:99:99:99:99"),
     (SUCCEED, "admins", None, {})),
    ("the exempt user", login("BreakGlass", [], "02:99:99:99:99:99"), (SUCCEED, "everyone", None, {})),
    ("the registered device spelled differently", login(hw_addr="00-11-22-33-44-55".upper()),
     (SUCCEED, "users", None, {})),
    ("a device an administrator registered by hand", login(devices=(PHONE, " 00-11-22-33-44-55".upper())),
     (SUCCEED, "users", None, {})),
    ("a macOS client, which does not report Defender", login(IV_PLAT="mac", UV_APPVER_DEFENDER=None),
     (SUCCEED, "users", None, {})),
    ("a web login: group mapping only", login(vpn=False, hw_addr=None), (SUCCEED, "users", None, {})),
    ("a new device from the office is registered",
     login("carol", ["contractors"], "02:00:00:00:00:01", "198.51.100.20", [PHONE]),
     (SUCCEED, "everyone", None, {"pvt_hw_addr2": "02:00:00:00:00:01"})),
    ("a new device from elsewhere", login(hw_addr="02:00:00:00:00:01"),
     (FAIL, "users", MESSAGES["device_not_registered"], {})),
    ("a new device from the office, every slot taken", login(hw_addr="02:00:00:00:00:01", ip="10.20.1.2",
                                                             devices=(PHONE, LAPTOP, "00:00:00:00:00:03")),
     (FAIL, "users", MESSAGES["device_not_registered"], {})),
    ("no hardware address", login(hw_addr=None), (FAIL, "users", MESSAGES["device_missing_address"], {})),
    ("a hardware address that is not one", login(hw_addr="00:11:22:33:44"),
     (FAIL, "users", MESSAGES["device_invalid_address"], {})),
    ("an old client", login(UV_ASCLI_VER="3.3.9"), (FAIL, "users", MESSAGES["client_too_old"], {})),
    ("an old Firefox", login(UV_APPVER_FIREFOX="102.15.1"), (FAIL, "users", MESSAGES["app_outdated"], {})),
    ("no Defender", login(UV_APPVER_DEFENDER="ERR_NOT_FOUND"), (FAIL, "users", MESSAGES["app_missing"], {})),
    ("Firefox found twice", login(UV_APPVER_FIREFOX="ERR_MANY_FOUND"),
     (FAIL, "users", MESSAGES["app_unverifiable"], {})),
    ("no user name (an internal error)", login(user=""), (FAIL, None, MESSAGES["internal_error"], {})),
]
TIMED = CASES[0][1]


def render_through_the_role(folder):
    root = os.path.join(folder, "as")
    subprocess.run([os.path.join(REPO, "tests", "emulator", "install"), root], check=True, capture_output=True)
    sacli = os.path.join(root, "scripts", "sacli")
    inventory = os.path.join(folder, "inventory.json")
    with open(inventory, "w") as handle:
        json.dump({"fleet": {"hosts": {"as": {"sacli_path": sacli}}, "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}, handle)
    extra = os.path.join(folder, "vars.json")
    with open(extra, "w") as handle:
        json.dump(VARIABLES, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    role = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                           os.path.join(REPO, "tests", "integration", "playbooks", "post_auth.yml"), "-e",
                           "@" + extra], capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if role.returncode != 0:
        raise SystemExit("the post_auth role failed:\n" + role.stdout[-4000:] + role.stderr[-2000:])
    config = json.loads(subprocess.run([sacli, "ConfigQuery"], check=True, capture_output=True, text=True).stdout)
    return config[postauth.SCRIPT_KEY]


def decision(result):
    authret, save = result if isinstance(result, tuple) else (result, {})
    return authret["status"], authret.get("proplist", {}).get("conn_group"), authret.get("client_reason"), save


def same_decisions(generated, hand_written):
    for what, case, expected in CASES:
        ours = decision(generated(*copy.deepcopy(case)))
        plain = decision(hand_written(*copy.deepcopy(case)))
        if not ours == plain == expected:
            raise SystemExit("%s: the generated script decides %r, the hand-written one %r, expected %r"
                             % (what, ours, plain, expected))


def per_call(function, calls):
    arguments = [copy.deepcopy(TIMED) for _call in range(calls)]
    started = time.process_time()
    for authcred, attributes, authret, info in arguments:
        function(authcred, attributes, authret, info)
    return (time.process_time() - started) / calls


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, Python %s" % (cpu, os.cpu_count() or 1, platform.python_version())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "script.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-script-") as folder:
        generated = render_through_the_role(folder)
    with open(HAND_WRITTEN) as handle:
        hand_written = handle.read()
    texts = {"generated": generated, "hand_written": hand_written, "floor": FLOOR}
    scripts = {variant: postauth.load(text).post_auth for variant, text in texts.items()}

    # what the scripts print goes to the server log; here nowhere
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            same_decisions(scripts["generated"], scripts["hand_written"])
            timings = {variant: [] for variant in scripts}
            for _round in range(args.rounds):
                for variant, function in scripts.items():
                    timings[variant].append(per_call(function, args.calls))
        finally:
            sys.stdout = stdout

    us = {variant: statistics.median(values) * 1e6 for variant, values in timings.items()}
    report = {
        "machine": machine(),
        "runs": [{"variant": variant, "us_per_login": round(us[variant], 2), "lines": len(texts[variant].splitlines())}
                 for variant in scripts],
        "ratios": {
            "generated/hand_written": round(us["generated"] / us["hand_written"], 2),
            "generated/floor": round(us["generated"] / us["floor"], 1),
            "hand_written/floor": round(us["hand_written"] / us["floor"], 1),
        },
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")

    print("%s; median of %d rounds of %d logins; %d logins decided alike first"
          % (report["machine"], args.rounds, args.calls, len(CASES)))
    print("%-14s %12s %7s %9s" % ("variant", "us per login", "lines", "x floor"))
    for run in report["runs"]:
        print("%-14s %12.2f %7d %9.1f" % (run["variant"], run["us_per_login"], run["lines"],
                                          us[run["variant"]] / us["floor"]))
    print("generated / hand_written: %.2f" % report["ratios"]["generated/hand_written"])


if __name__ == "__main__":
    main()
