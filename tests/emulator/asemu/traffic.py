"""asemu-traffic: a population of simulated VPN clients logging into emulated servers.

Usage::

    asemu-traffic ROOT... (--duration SECONDS | --count N) [--rate PER_SECOND] [--users N]
        [--population FILE] [--platforms win=40,mac=20,linux=10,ios=15,android=15]
        [--new-device-rate SHARE] [--wrong-password-rate SHARE]
        [--client-info [PLATFORM:]NAME=VALUE]... [--seed SEED] [--json]

Each login is what a VPN client's connection makes the server do: an authentication through the
configured method and the post-auth script, in this process, through authcli's
``Authentication`` (not a run of authcli: nothing is added to log/calls.jsonl), written to the log
database and the server log exactly as authcli writes them.  Logins go to the roots in turn, at
``--rate`` a second (each due at start + n / rate, so the rate does not drift; a slow login delays
the next ones, which then catch up), until ``--count`` logins or ``--duration`` seconds, whichever
comes first, or until SIGINT/SIGTERM; then it prints a summary (``--json``: a JSON object).

The population: ``--users N`` local users ``traffic-001`` ... (created once in each root's
userprop.db, with passwords derived from ``--seed``; running again changes nothing), and
``--population FILE``, a JSON list of ``{"user", "password", "method"}`` (local, ldap or radius;
optional ``"platform"``) for users that exist elsewhere, such as a test's slapd or FreeRADIUS.
LDAP and RADIUS logins reach real servers: a root whose server for a method of the population is
not on a loopback address is refused before any login.

Each user has one platform (``--platforms`` weights, stable for a seed), the client versions of
that platform (IV_VER, IV_GUI_VER, UV_ASCLI_VER, UV_PLAT_REL), one device (desktop platforms: a
MAC address, sent as --hw-addr would; iOS and Android: a UUID in IV_HWADDR, as they send no MAC),
one client address and one transport.  ``--new-device-rate`` of the logins come from a device
never seen before, ``--wrong-password-rate`` of them carry a wrong password (background noise).
``--client-info`` adds a client_info value to every login, or with a platform prefix
(``win:UV_APPVER_FIREFOX=128.0.3``) to the logins of that platform.

Exit codes: 0 (an interrupted run included), 1 when a root cannot be used (missing, or a directory
server off loopback), 2 for a bad command line.
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid

from asemu import authcli, backends, passwords
from asemu.root import Root
from asemu.store import Store
from pyovpn.plugin import SUCCEED

MAX_SECONDS = 600
MAX_COUNT = 100000
MAX_RATE = 500
MAX_USERS = 5000
METHODS = ("local", "ldap", "radius")
PLATFORMS = ("win", "mac", "linux", "ios", "android")
DESKTOP = ("win", "mac", "linux")
DEFAULT_PLATFORMS = "win=40,mac=20,linux=10,ios=15,android=15"
# what each platform's client reports (OpenVPN Connect; OpenVPN 3 Linux)
CLIENTS = {
    "win": {"IV_VER": "3.git::d3f8b18b", "IV_GUI_VER": "OCWindows_3.4.4-3412", "UV_ASCLI_VER": "3.4.4-3412",
            "UV_PLAT_REL": "10.0.22631"},
    "mac": {"IV_VER": "3.git::d3f8b18b", "IV_GUI_VER": "OCmacOS_3.4.4-4629", "UV_ASCLI_VER": "3.4.4-4629",
            "UV_PLAT_REL": "14.5.0"},
    "linux": {"IV_VER": "3.git::58b92569", "IV_GUI_VER": "OpenVPN3/Linux v22", "UV_PLAT_REL": "6.8.0-45-generic"},
    "ios": {"IV_VER": "3.git::d3f8b18b", "IV_GUI_VER": "OCiOS_3.4.0-5372", "UV_ASCLI_VER": "3.4.0-5372",
            "UV_PLAT_REL": "17.5.1"},
    "android": {"IV_VER": "3.git::d3f8b18b", "IV_GUI_VER": "OCAndroid_3.0.5", "UV_ASCLI_VER": "3.0.5",
                "UV_PLAT_REL": "14"},
}
# share of users that connect over TCP rather than UDP
TCP_SHARE = 0.2
# the generated users' digests: PBKDF2 with fewer iterations than the server's default, so that one
# process can verify hundreds of logins a second
USER_ITERATIONS = 1000
# how long a root's configuration is reused before it is read again
CONFIG_SECONDS = 1.0
# client addresses come from the documentation ranges (RFC 5737)
CLIENT_NETWORKS = ("198.51.100.0/24", "203.0.113.0/24")


class TrafficUsage(Exception):
    """A bad command line (exit 2)."""


class TrafficRefused(Exception):
    """A root that cannot be used (exit 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise TrafficUsage(message)


def _bounded(kind, low, high, name, low_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s: not a number: %r" % (name, text)) from None
        if value < low or (low_open and value == low) or value > high:
            raise argparse.ArgumentTypeError("%s must be %s %s and at most %s" % (
                name, "more than" if low_open else "at least", low, high))
        return value
    return parse


def build_parser(prog="asemu-traffic"):
    parser = _Parser(prog=prog, description=__doc__.split("\n\n", 1)[0], allow_abbrev=False)
    parser.add_argument("roots", nargs="*", metavar="ROOT",
                        help="installed emulated servers (logins go to each in turn)")
    parser.add_argument("--rate", type=_bounded(float, 0, MAX_RATE, "--rate", low_open=True), default=10.0,
                        metavar="PER_SECOND", help="logins a second (default 10, at most %d)" % MAX_RATE)
    parser.add_argument("--duration", type=_bounded(float, 0, MAX_SECONDS, "--duration", low_open=True),
                        metavar="SECONDS", help="stop after this long (at most %d)" % MAX_SECONDS)
    parser.add_argument("--count", type=_bounded(int, 1, MAX_COUNT, "--count"), metavar="N",
                        help="stop after N logins (at most %d)" % MAX_COUNT)
    parser.add_argument("--users", type=_bounded(int, 0, MAX_USERS, "--users"), default=0, metavar="N",
                        help="local users traffic-001 ... to create (once) and log in")
    parser.add_argument("--population", metavar="FILE",
                        help='JSON list of {"user", "password", "method" (local|ldap|radius), "platform"}')
    parser.add_argument("--platforms", default=DEFAULT_PLATFORMS, metavar="NAME=WEIGHT,...",
                        help="how users spread over platforms (default %s)" % DEFAULT_PLATFORMS)
    parser.add_argument("--new-device-rate", type=_bounded(float, 0, 1, "--new-device-rate"), default=0.02,
                        metavar="SHARE", help="share of logins from a device never seen before (default 0.02)")
    parser.add_argument("--wrong-password-rate", type=_bounded(float, 0, 1, "--wrong-password-rate"), default=0.03,
                        metavar="SHARE", help="share of logins with a wrong password (default 0.03)")
    parser.add_argument("--client-info", action="append", default=[], metavar="[PLATFORM:]NAME=VALUE",
                        help="a client_info value for every login, or for one platform's")
    parser.add_argument("--seed", default="1", help="seeds passwords, platforms, devices and the mix (default 1)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def parse_args(argv, default_root=None, prog="asemu-traffic"):
    """Options and ROOTs (which may come before, between or after the options)."""
    args, extra = build_parser(prog).parse_known_args(argv)
    for item in extra:
        if item.startswith("-"):
            raise TrafficUsage("unrecognized argument: %s" % item)
        args.roots.append(item)
    if not args.roots and default_root:
        args.roots = [default_root]
    if not args.roots:
        raise TrafficUsage("name at least one ROOT")
    if args.duration is None and args.count is None:
        raise TrafficUsage("give --duration SECONDS or --count N (or both)")
    args.platform_weights = parse_platforms(args.platforms)
    args.extra_info = parse_client_info(args.client_info)
    return args


def parse_platforms(text):
    weights = dict.fromkeys(PLATFORMS, 0.0)
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in PLATFORMS:
            raise TrafficUsage("--platforms: expected NAME=WEIGHT with NAME one of %s, got %r" % (
                ", ".join(PLATFORMS), item))
        try:
            weight = float(value)
        except ValueError:
            raise TrafficUsage("--platforms: not a number: %r" % item) from None
        if weight < 0:
            raise TrafficUsage("--platforms: a weight is 0 or more: %r" % item)
        weights[name] = weight
    if not sum(weights.values()) > 0:
        raise TrafficUsage("--platforms: no platform has a weight")
    return weights


def parse_client_info(items):
    """{platform or None: [(name, value)]} from [PLATFORM:]NAME=VALUE items."""
    result = {}
    for item in items:
        head, sep, value = item.partition("=")
        if not sep or not head:
            raise TrafficUsage("--client-info expects [PLATFORM:]NAME=VALUE, got %r" % item)
        platform = None
        if ":" in head:
            platform, head = head.split(":", 1)
            if platform not in PLATFORMS:
                raise TrafficUsage("--client-info: unknown platform %r (one of %s)" % (platform, ", ".join(PLATFORMS)))
        if not head:
            raise TrafficUsage("--client-info expects [PLATFORM:]NAME=VALUE, got %r" % item)
        result.setdefault(platform, []).append((head, value))
    return result


# the population ----------------------------------------------------------------------------------

def _digest(seed, *parts):
    return hmac.new(str(seed).encode("utf-8"), "/".join(parts).encode("utf-8"), hashlib.sha256).digest()


def user_password(seed, user):
    """The password of a generated user: derived from the seed, the same on every run."""
    return "tr-" + hmac.new(str(seed).encode("utf-8"), user.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def user_names(count):
    width = max(3, len(str(count)))
    return ["traffic-%0*d" % (width, n) for n in range(1, count + 1)]


def mac_address(raw):
    octets = bytearray(raw[:6])
    octets[0] &= 0xFE  # a unicast address
    return ":".join("%02x" % octet for octet in octets)


def device_uuid(raw, platform):
    text = str(uuid.UUID(bytes=bytes(raw[:16]), version=4))
    return text.upper() if platform == "ios" else text


class Member(object):
    """One simulated user and the client it uses."""

    def __init__(self, user, password, method, platform, seed):
        self.user = user
        self.password = password
        self.method = method
        self.platform = platform
        self.device = self.new_device(_digest(seed, user, "device"))
        networks = [ipaddress.ip_network(n) for n in CLIENT_NETWORKS]
        raw = _digest(seed, user, "address")
        network = networks[raw[0] % len(networks)]
        self.client_ip = str(network.network_address + 1 + raw[1] % (network.num_addresses - 2))
        self.protocol = "TCP" if raw[2] < 256 * TCP_SHARE else "UDP"

    def new_device(self, raw):
        if self.platform in DESKTOP:
            return mac_address(raw)
        return device_uuid(raw, self.platform)


def pick_platform(weights, seed, user):
    """One platform by weight, the same for a user on every run with one seed."""
    rng = random.Random("%s/%s/platform" % (seed, user))
    names = [name for name in PLATFORMS if weights[name] > 0]
    return rng.choices(names, weights=[weights[name] for name in names])[0]


def load_population(args):
    """(every member, the generated local users among them)."""
    members = []
    for user in user_names(args.users):
        members.append(Member(user, user_password(args.seed, user), "local",
                              pick_platform(args.platform_weights, args.seed, user), args.seed))
    generated = list(members)
    if args.population:
        try:
            with open(args.population) as handle:
                entries = json.load(handle)
        except (IOError, OSError, ValueError) as exc:
            raise TrafficUsage("--population %s: %s" % (args.population, exc)) from None
        if not isinstance(entries, list):
            raise TrafficUsage("--population: expected a JSON list of objects")
        for entry in entries:
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("user", "password")):
                raise TrafficUsage("--population: each entry needs \"user\" and \"password\" strings: %r" % (entry,))
            method = entry.get("method", "local")
            platform = entry.get("platform") or pick_platform(args.platform_weights, args.seed, entry["user"])
            if method not in METHODS:
                raise TrafficUsage("--population: method %r of %s is not one of %s" % (
                    method, entry["user"], ", ".join(METHODS)))
            if platform not in PLATFORMS:
                raise TrafficUsage("--population: platform %r of %s is not one of %s" % (
                    platform, entry["user"], ", ".join(PLATFORMS)))
            members.append(Member(entry["user"], entry["password"], method, platform, args.seed))
    if not members:
        raise TrafficUsage("no users: give --users N or --population FILE")
    return members, generated


def create_users(root, members):
    """Give each generated local user its password in the root's userprop.db unless it has it already."""
    created = 0
    with Store(root.userprop_db) as db:
        db.begin()
        for member in members:
            digest = db.get(member.user, "pvt_password_digest") if db.profile_id(member.user) else None
            if digest and passwords.verify(member.password, digest):
                continue
            if db.profile_id(member.user) is None:
                db.put(member.user, "type", "user_connect")
                db.put(member.user, "user_auth_type", "local")
            db.put(member.user, "pvt_password_digest", passwords.make_digest(member.password, USER_ITERATIONS))
            created += 1
    return created


# the roots ---------------------------------------------------------------------------------------

def is_loopback(host):
    """Whether every address ``host`` stands for is a loopback address."""
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {info[4][0].split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_root(root, methods):
    """Refuse a root whose LDAP or RADIUS server (for a method in use) is not on loopback."""
    with Store(root.config_db) as db:
        config = db.items("Default")
    hosts = []
    if "ldap" in methods:
        hosts.extend(("LDAP", host) for host, _port in backends.LdapSettings(config).servers)
    if "radius" in methods:
        hosts.extend(("RADIUS", server.host) for server in backends.radius_servers(config))
    for kind, host in hosts:
        if not is_loopback(host):
            raise TrafficRefused("%s: the %s server %s is not on a loopback address; the generator logs in only"
                                 " against local test servers" % (root.path, kind, host))


def open_root(path):
    if not os.path.isfile(os.path.join(path, "etc", "as.conf")):
        raise TrafficRefused("%s: not an installed emulated server (no etc/as.conf)" % path)
    return Root(path)


class ConfigCache(object):
    """Each root's Default profile, read again after CONFIG_SECONDS."""

    def __init__(self):
        self.entries = {}

    def get(self, root):
        now = time.monotonic()
        entry = self.entries.get(root.path)
        if entry is None or now - entry[0] > CONFIG_SECONDS:
            with Store(root.config_db) as db:
                entry = (now, db.items("Default"))
            self.entries[root.path] = entry
        return entry[1]


# the run -----------------------------------------------------------------------------------------

def _counts():
    return {"logins": 0, "succeeded": 0, "failed": 0}


class Generator(object):
    def __init__(self, args, roots, members):
        self.args = args
        self.roots = roots
        self.members = members
        self.rng = random.Random("%s/logins" % args.seed)
        self.parser = authcli.build_parser()
        self.configs = ConfigCache()
        self.stop = threading.Event()
        self.summary = {
            "logins": 0, "succeeded": 0, "failed": 0, "challenged": 0, "errors": 0,
            "wrong_password": 0, "new_device": 0, "users": len(members),
            "per_platform": {}, "per_method": {}, "per_root": {root.path: _counts() for root in roots},
        }

    def client_info(self, member):
        pairs = [("IV_PLAT", member.platform)] + sorted(CLIENTS[member.platform].items())
        pairs += self.args.extra_info.get(None, []) + self.args.extra_info.get(member.platform, [])
        return pairs

    def login_argv(self, member):
        """The authcli command line of one login of ``member`` (what its client sends)."""
        password = member.password
        if self.rng.random() < self.args.wrong_password_rate:
            password += "-wrong"
            self.summary["wrong_password"] += 1
        device = member.device
        if self.rng.random() < self.args.new_device_rate:
            device = member.new_device(bytes(self.rng.getrandbits(8) for _byte in range(16)))
            self.summary["new_device"] += 1
        argv = ["--user=%s" % member.user, "--pass=%s" % password, "--client-ip=%s" % member.client_ip,
                "--auth-method=%s" % member.method, "--protocol=%s" % member.protocol]
        info = self.client_info(member)
        if member.platform in DESKTOP:
            argv.append("--hw-addr=%s" % device)
        else:
            info.append(("IV_HWADDR", device))
        argv.extend("--client-info=%s=%s" % pair for pair in info)
        return argv

    def one(self, index):
        root = self.roots[index % len(self.roots)]
        member = self.members[self.rng.randrange(len(self.members))]
        args = self.parser.parse_args(self.login_argv(member))
        outcome = "failed"
        try:
            authret = authcli.Authentication(root, args, config=self.configs.get(root)).login()
        except Exception as exc:  # noqa: BLE001 - one broken login must not end the run
            self.summary["errors"] += 1
            root.log("traffic#error", "login of %s raised %s: %s" % (member.user, type(exc).__name__, exc))
        else:
            if authret.get("status") == SUCCEED:
                outcome = "succeeded"
            elif authret.get("challenge"):
                self.summary["challenged"] += 1
        self.summary["logins"] += 1
        self.summary[outcome] += 1
        for table, key in (("per_platform", member.platform), ("per_method", member.method),
                           ("per_root", root.path)):
            counts = self.summary[table].setdefault(key, _counts())
            counts["logins"] += 1
            counts[outcome] += 1

    def run(self):
        args = self.args
        period = 1.0 / args.rate
        started = time.monotonic()
        max_late = 0.0
        index = 0
        while not self.stop.is_set():
            if args.count is not None and index >= args.count:
                break
            offset = index * period
            # the logins due within the duration, as long as the duration lasts (a run that fell
            # behind does not overrun it)
            if args.duration is not None and (offset >= args.duration
                                              or time.monotonic() - started >= args.duration):
                break
            due = started + offset
            while not self.stop.is_set():
                left = due - time.monotonic()
                if left <= 0:
                    break
                # short naps, so that a signal ends the run at once
                time.sleep(min(left, 0.2))
            if self.stop.is_set():
                break
            max_late = max(max_late, time.monotonic() - due)
            self.one(index)
            index += 1
        elapsed = time.monotonic() - started
        self.summary.update(
            seconds=round(elapsed, 3),
            rate=round(self.summary["logins"] / elapsed, 2) if elapsed > 0 else 0.0,
            requested_rate=args.rate,
            max_late_seconds=round(max_late, 3),
            interrupted=self.stop.is_set(),
        )
        return self.summary


def render(summary):
    lines = ["%d logins (%d succeeded, %d failed) in %.1fs: %.1f a second (asked %g)" % (
        summary["logins"], summary["succeeded"], summary["failed"], summary["seconds"], summary["rate"],
        summary["requested_rate"])]
    for table in ("per_platform", "per_method", "per_root"):
        for key in sorted(summary[table]):
            counts = summary[table][key]
            lines.append("  %s %s: %d logins, %d succeeded, %d failed" % (
                table[4:], key, counts["logins"], counts["succeeded"], counts["failed"]))
    lines.append("  wrong passwords %d, new devices %d, challenges %d, errors %d%s" % (
        summary["wrong_password"], summary["new_device"], summary["challenged"], summary["errors"],
        ", interrupted" if summary["interrupted"] else ""))
    return "\n".join(lines)


def main(root_path=None, argv=None):
    """``asemu-traffic ROOT... [options]``; the scripts/traffic of a root passes its ROOT as the default."""
    prog = "traffic" if root_path else "asemu-traffic"
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = parse_args(argv, default_root=root_path, prog=prog)
        members, generated = load_population(args)
        roots = [open_root(os.path.abspath(path)) for path in args.roots]
        methods = {member.method for member in members}
        for root in roots:
            check_root(root, methods)
        for root in roots:
            create_users(root, generated)
    except TrafficUsage as exc:
        sys.stderr.write("%s: %s\n" % (prog, exc))
        return 2
    except TrafficRefused as exc:
        sys.stderr.write("%s: refused: %s\n" % (prog, exc))
        return 1
    generator = Generator(args, roots, members)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers[signum] = signal.signal(signum, lambda *unused: generator.stop.set())
    try:
        summary = generator.run()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    for root in roots:
        root.log("traffic", "%d logins (%d succeeded, %d failed)" % (
            summary["per_root"][root.path]["logins"], summary["per_root"][root.path]["succeeded"],
            summary["per_root"][root.path]["failed"]))
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else render(summary))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
