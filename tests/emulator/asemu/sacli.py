"""sacli: the Access Server API client, emulated.

Usage: ``sacli [options] cmd``.  Options are global and may come before or
after the command; command names are matched without regard to case.

Every call that reaches the server is recorded in the log database as an ``XML_API`` row of the
user ``__local_root__`` with ``api_method`` the command (``auth`` 0 and the message in ``error``
when it fails).  A bad command line, a failover standby (no agent) and an injected fault that
stops the call write none.
"""

import argparse
import errno
import hashlib
import json
import os
import re
import signal
import sys
import time

from asemu import logdb, passwords, postauth
from asemu.root import SERVICES, Root
from asemu.store import Store

CONFIG_PROFILE = "Default"

# Which services a change of a key (by prefix) restarts.  What the real server restarts is known
# for cs.* only (client_query, iptables_web and web, not api); the modules do not depend on this.
RESTARTS = (
    ("auth.", ("auth", "api")),
    ("vpn.client.", ("client_query", "web")),
    ("vpn.daemon.", ("openvpn_0", "openvpn_1", "iptables_openvpn", "ip6tables_openvpn")),
    ("vpn.server.", ("openvpn_0", "openvpn_1", "iptables_openvpn", "ip6tables_openvpn")),
    ("cs.", ("client_query", "iptables_web", "web")),
    ("admin_ui.", ("web", "api")),
    ("host.", ("web", "openvpn_0", "openvpn_1")),
)
# The names `start` prints in its WILL_RESTART line, in the order the server restarts them (not
# sorted: a real server prints `WILL_RESTART ['web', 'client']`).
WILL_RESTART_ORDER = (("web", "web"), ("client_query", "client"), ("openvpn_0", "openvpn"), ("auth", "auth"))

# what sacli prints on a failover standby, where the agent does not run (the
# real wording is unknown)
NO_AGENT = "sacli: could not connect to the Access Server agent at %s: [Errno %d] %s\n"


class SacliUsage(Exception):
    """Bad command line: a message on stderr and a non-zero exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise SacliUsage(message)


def build_parser():
    parser = _Parser(prog="sacli", usage="sacli [options] cmd [args...]", add_help=True, allow_abbrev=False)
    parser.add_argument("-k", "--key")
    parser.add_argument("-v", "--value")
    parser.add_argument("--value_file")
    parser.add_argument("-u", "--user")
    parser.add_argument("--pfilt")
    parser.add_argument("--new_pass")
    parser.add_argument("-a", "--auth_user", help="administrator name (ignored when run as root)")
    parser.add_argument("-p", "--auth_pass", help="administrator password (ignored when run as root)")
    parser.add_argument("-i", "--interactive", action="store_true", help="prompt for the administrator password")
    parser.add_argument("cmd", nargs="*")
    return parser


def natural_key(text):
    """Sort ``access_to.9`` before ``access_to.10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def dump(data, natural=False):
    if natural:
        ordered = {}
        for name in sorted(data):
            ordered[name] = {k: data[name][k] for k in sorted(data[name], key=natural_key)}
        return json.dumps(ordered, indent=2)
    return json.dumps(data, indent=2, sort_keys=True)


def apply_fault(fault):
    """Carry out an injected fault; return an exit code to stop, or None to go on.

    Actions: ``exit`` (rc, stderr, stdout), ``garbage`` (stdout, rc),
    ``hang`` (seconds, then go on).  ``errors`` and ``off`` are read by
    start and status themselves.
    """
    action = fault.get("action")
    if action == "exit":
        if fault.get("stdout"):
            sys.stdout.write(fault["stdout"])
        sys.stderr.write(fault.get("stderr", "emulated failure\n"))
        return int(fault.get("rc", 1))
    if action == "garbage":
        sys.stdout.write(fault.get("stdout", "<html><body>502 Bad Gateway</body></html>\n"))
        return int(fault.get("rc", 0))
    if action == "hang":
        time.sleep(float(fault.get("seconds", 3600)))
    return None


class Sacli(object):
    def __init__(self, root, args, fault):
        self.root = root
        self.args = args
        self.fault = fault or {}
        self.settings = root.settings()

    def require(self, command, *names):
        missing = ["--%s" % n for n in names if getattr(self.args, n) is None]
        if missing:
            raise SacliUsage("%s requires %s" % (command, " and ".join(missing)))

    def value(self, command):
        """The value of --value, or the content of --value_file."""
        if self.args.value_file is not None:
            try:
                with open(self.args.value_file, "rb") as handle:
                    data = handle.read().decode("utf-8")
            except (IOError, OSError) as exc:
                raise SacliUsage("cannot read --value_file: %s" % exc) from exc
            except UnicodeDecodeError:
                raise SacliUsage("--value_file is not UTF-8 text") from None
            if self.settings["value_file_strip"]:
                data = data.rstrip("\r\n")
            return data
        if self.args.value is not None:
            return self.args.value
        raise SacliUsage("%s requires --value or --value_file" % command)

    def acknowledge(self):
        if self.settings["configput_output"] == "list":
            print("[True, {}]")

    # configuration ---------------------------------------------------------
    def ConfigQuery(self):
        with Store(self.root.config_db) as db:
            print(dump(db.items(CONFIG_PROFILE)))

    def ConfigPut(self):
        self.require("ConfigPut", "key")
        value = self.value("ConfigPut")
        with Store(self.root.config_db) as db:
            db.put(CONFIG_PROFILE, self.args.key, value)
        self.root.log("SACLI", "ConfigPut key=%s" % self.args.key)
        self.acknowledge()

    def ConfigDel(self):
        self.require("ConfigDel", "key")
        with Store(self.root.config_db) as db:
            db.delete(CONFIG_PROFILE, self.args.key)
        self.root.log("SACLI", "ConfigDel key=%s" % self.args.key)
        self.acknowledge()

    def ConfigReplace(self):
        text = self.value("ConfigReplace")
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise SacliUsage("ConfigReplace: value is not JSON: %s" % exc) from exc
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise SacliUsage("ConfigReplace: value must be a JSON object of strings")
        with Store(self.root.config_db) as db:
            db.replace(CONFIG_PROFILE, values)
        self.root.log("SACLI", "ConfigReplace keys=%d" % len(values))
        self.acknowledge()

    # user properties -------------------------------------------------------
    def UserPropGet(self):
        with Store(self.root.userprop_db) as db:
            names = db.profiles()
            if self.args.pfilt is not None:
                names = [n for n in names if n == self.args.pfilt]
            print(dump({n: db.items(n) for n in names}, natural=True))

    def UserPropPut(self):
        self.require("UserPropPut", "user", "key")
        value = self.value("UserPropPut")
        with Store(self.root.userprop_db) as db:
            db.put(self.args.user, self.args.key, value)
        self.root.log("SACLI", "UserPropPut user=%s key=%s" % (self.args.user, self.args.key))
        self.acknowledge()

    def UserPropDel(self):
        self.require("UserPropDel", "user", "key")
        with Store(self.root.userprop_db) as db:
            db.delete(self.args.user, self.args.key)
        self.acknowledge()

    def UserPropDelAll(self):
        self.require("UserPropDelAll", "user")
        with Store(self.root.userprop_db) as db:
            db.delete_profile(self.args.user)
        self.acknowledge()

    def SetLocalPassword(self):
        self.require("SetLocalPassword", "user", "new_pass")
        with Store(self.root.userprop_db) as db:
            if db.profile_id(self.args.user) is None:
                db.put(self.args.user, "type", "user_connect")
            db.put(self.args.user, "pvt_password_digest", passwords.make_digest(self.args.new_pass))
        self.acknowledge()

    def RemoveLocalPassword(self):
        self.require("RemoveLocalPassword", "user")
        with Store(self.root.userprop_db) as db:
            db.delete(self.args.user, "pvt_password_digest")
        self.acknowledge()

    # services --------------------------------------------------------------
    def _status(self, state):
        running = state.get("running", False)
        status = dict.fromkeys(SERVICES, "on" if running else "off")
        settle = float(self.settings["settle_seconds"])
        if running and time.time() - state.get("started_at", 0) < settle:
            for service in state.get("restarted", []):
                status[service] = "off"
        for service in self.fault.get("services", []) if self.fault.get("action") == "off" else []:
            status[service] = "off"
        return {
            "active_profile": CONFIG_PROFILE,
            "errors": state.get("errors", {}),
            "last_restarted": state.get("last_restarted", ""),
            "service_status": status,
        }

    def start(self):
        with self.root.locked():
            state = self.root.state()
            with Store(self.root.config_db) as db:
                config = db.items(CONFIG_PROFILE)
            applied = {k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in config.items()}
            errors = {}
            script = config.get(postauth.SCRIPT_KEY)
            if script:
                try:
                    postauth.load(script, self.root)
                except postauth.ScriptError as exc:
                    errors["auth"] = [["error", "post_auth_script %s" % exc]]
            if self.fault.get("action") == "errors":
                errors.update(self.fault.get("errors") or {"auth": [["error", "emulated start error"]]})
            if state.get("running") and "applied" in state:
                previous = state["applied"]
                changed = {k for k in set(previous) | set(applied) if previous.get(k) != applied.get(k)}
                restarted = set()
                for key in changed:
                    for prefix, services in RESTARTS:
                        if key.startswith(prefix):
                            restarted.update(services)
                mode = "warm"
            else:
                restarted, mode = set(SERVICES), "cold"
            if self.settings["start_info_entries"]:
                for service in sorted(restarted):
                    if service.startswith("openvpn_"):
                        errors[service] = [["info", "process started successfully on 172.27.224.1"]]
            state.update(
                running=True,
                applied=applied,
                errors=errors,
                restarted=sorted(restarted),
                started_at=time.time(),
                last_restarted=time.ctime(),
            )
            self.root.save_state(state)
            with open(self.root.sock, "w"):
                pass
        result = self._status(state)
        for service in restarted:
            if result["service_status"][service] == "on":
                result["service_status"][service] = "restarted"
        self.root.log("SACLI", "start %s: restarted %s; errors %s" % (mode, sorted(restarted), sorted(errors)))
        body = json.dumps(result, indent=2, sort_keys=True)
        if self.settings["start_output"] == "json":
            print(body)
        else:
            will = [name for service, name in WILL_RESTART_ORDER if service in restarted]
            print("RunStart %s None" % mode)
            print(body)
            if self.settings["start_output"] == "spaced":
                print()
            print("WILL_RESTART %r" % (will,))

    def stop(self):
        with self.root.locked():
            state = self.root.state()
            state.update(running=False, restarted=[])
            self.root.save_state(state)
            if os.path.exists(self.root.sock):
                os.remove(self.root.sock)
        print(json.dumps(self._status(state), indent=2, sort_keys=True))

    def status(self):
        print(json.dumps(self._status(self.root.state()), indent=2, sort_keys=True))

    def Version(self):
        print(self.settings["version"])

    def VPNSummary(self):
        """The number of connected clients: the vpn_clients setting while the services run, else 0."""
        count = int(self.settings["vpn_clients"]) if self.root.state().get("running", False) else 0
        print(json.dumps({"n_clients": count}, indent=2, sort_keys=True))


COMMANDS = {
    name.lower(): name
    for name in (
        "ConfigQuery", "ConfigPut", "ConfigDel", "ConfigReplace",
        "UserPropGet", "UserPropPut", "UserPropDel", "UserPropDelAll",
        "SetLocalPassword", "RemoveLocalPassword",
        "start", "stop", "status", "Version", "VPNSummary",
    )
}


def no_agent(root):
    """A failover standby: no agent to connect to; the command fails before it starts (faults stay armed)."""
    root.sync_agent_socket()
    sys.stderr.write(NO_AGENT % (root.sock, errno.ENOENT, os.strerror(errno.ENOENT)))
    return 1


def record_api_call(root, command, rc, error, started):
    """The XML_API row of a call that reached the server (never fails the call)."""
    try:
        with Store(root.config_db) as db:
            config = db.items(CONFIG_PROFILE)
    except Exception as exc:  # noqa: BLE001 - the row is written without host.name
        root.log("log#error", "config.db unreadable for the log row: %s" % exc)
        config = {}
    logdb.write(root, logdb.api_row(config, command, rc == 0, error, started))


def main(root_path, argv):
    started = time.time()
    root = Root(root_path)
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    command, options, rc = "", [], 1
    # whether the call reached the server (and gets its log database row), and why it failed
    reached, error = False, None
    try:
        try:
            args = build_parser().parse_args(argv)
            options = [n for n, v in vars(args).items() if n != "cmd" and v not in (None, False)]
            if len(args.cmd) != 1:
                raise SacliUsage("Wrong number of arguments.")
            command = args.cmd[0]
            if command.lower() not in COMMANDS:
                raise SacliUsage("unknown command: %s" % command)
            command = COMMANDS[command.lower()]
            if root.settings()["standby"]:
                rc = no_agent(root)
                return rc
            fault = root.take_fault(command.lower())
            if fault is not None:
                rc = apply_fault(fault)
                if rc is not None:
                    return rc
            reached = True
            getattr(Sacli(root, args, fault), command)()
            sys.stdout.flush()
            rc = 0
        except SacliUsage as exc:
            sys.stderr.write("sacli: %s\nUsage: sacli [options] cmd [args...]\n" % exc)
            rc = 2 if not command else 1
            error = str(exc)
        return rc
    finally:
        if reached:
            if rc != 0 and error is None:
                failure = sys.exc_info()[1]
                error = "%s: %s" % (type(failure).__name__, failure) if failure is not None else None
            record_api_call(root, command, rc, error, started)
        root.record_call("sacli", command, options, started, rc)
