"""Benchmark: what a generated post-auth script costs per login, against a script that does nothing.

The post_auth role renders and loads a script with group mapping (SAML), device pinning and a
host-checker policy into an emulated server; then that script and a baseline (`return authret`)
are each called many times in this process, the way Access Server calls them, with the same
login. The result is the ratio of the two medians, measured in the same run.

    .venv/bin/python bench/login_cost.py [--calls 20000] [--rounds 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "emulator"))

from asemu import postauth  # noqa: E402
from pyovpn.plugin import SUCCEED  # noqa: E402

BASELINE = "def post_auth(authcred, attributes, authret, info):\n    return authret\n"
VARIABLES = {
    "post_auth_python": sys.executable,
    "host_checker_apps": [
        {"name": "FIREFOX", "regex": "^mozilla firefox", "platform": "all", "min_version": "115.0", "required": True},
        {"name": "DEFENDER", "regex": "^microsoft defender", "platform": "win", "required": True},
    ],
    "post_auth_group_mapping": True,
    "post_auth_group_mapping_rules": [
        {"name": "admins", "saml_groups": ["vpn-admins"], "group": "admins", "properties": {"prop_autologin": True}},
        {"name": "users", "saml_groups": ["vpn-users"], "group": "users"},
    ],
    "post_auth_group_mapping_default_group": "everyone",
    "post_auth_device_pinning": True,
    "post_auth_device_pinning_max_devices": 3,
    "post_auth_host_checker": True,
    "post_auth_host_checker_min_client_version": "3.4",
}


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
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                    os.path.join(REPO, "tests", "integration", "playbooks", "post_auth.yml"), "-e", "@" + extra],
                   check=True, capture_output=True, env=env, cwd=REPO)
    config = json.loads(subprocess.run([sacli, "ConfigQuery"], check=True, capture_output=True, text=True).stdout)
    return config[postauth.SCRIPT_KEY]


def login():
    """A VPN login that passes every check: the last rule, a registered device, current apps."""
    authcred = {"username": "alice", "client_ip_addr": "198.51.100.7", "client_hw_addr": "00:11:22:33:44:55"}
    attributes = {"vpn_auth": True, "reauth": False, "client_info": {
        "IV_PLAT": "win", "UV_ASCLI_VER": "3.5.1", "UV_APPVER_FIREFOX": "128.0.3", "UV_APPVER_DEFENDER": "4.18"}}
    authret = {"status": SUCCEED, "user": "alice", "reason": "", "proplist": {
        "type": "user_connect", "pvt_hw_addr": "00:aa:bb:cc:dd:ee", "pvt_hw_addr2": "00:11:22:33:44:55"}}
    info = {"auth_method": "saml", "saml_attr": {"groups": ["staff", "vpn-users"]}}
    return authcred, attributes, authret, info


def per_call(function, calls):
    started = time.perf_counter()
    for _call in range(calls):
        authcred, attributes, authret, info = login()
        function(authcred, attributes, authret, info)
    return (time.perf_counter() - started) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "login_cost.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-login-") as folder:
        text = render_through_the_role(folder)
    generated = postauth.load(text).post_auth
    baseline = postauth.load(BASELINE).post_auth
    # what the script prints goes to the server log; here nowhere
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            result = generated(*login())
            rounds = [(per_call(baseline, args.calls), per_call(generated, args.calls))
                      for _round in range(args.rounds)]
        finally:
            sys.stdout = stdout
    assert result[0]["status"] == SUCCEED and result[0]["proplist"]["conn_group"] == "users", result
    base = statistics.median(r[0] for r in rounds)
    ours = statistics.median(r[1] for r in rounds)
    report = {"calls": args.calls, "rounds": args.rounds, "baseline_us": round(base * 1e6, 2),
              "generated_us": round(ours * 1e6, 2), "ratio": round(ours / base, 1),
              "script_lines": len(text.splitlines())}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print("generated script (%d lines): %.1f us per login; baseline: %.2f us; ratio %.1f"
          % (report["script_lines"], report["generated_us"], report["baseline_us"], report["ratio"]))


if __name__ == "__main__":
    main()
