"""Install the Access Server emulator into ROOT.

ROOT gets the layout of /usr/local/openvpn_as: scripts/sacli,
scripts/authcli and scripts/logdba (and scripts/traffic, the emulator's
traffic generator), etc/as.conf, etc/db/config.db, etc/db/userprop.db and
etc/db/log.db, the Python packages under lib/python, and log/.  The tools find everything
relative to their own location, so ROOT may be /usr/local/openvpn_as in a
container or any folder on this machine.  ROOT must not exist or be empty.

With --cluster-db DIR the root uses DIR/config.db and DIR/userprop.db: the
first install with DIR creates them, later ones join and leave them alone.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import stat
import sys
import time

from asemu import logdb
from asemu.root import DEFAULT_SETTINGS, Root
from asemu.store import Store

# the tools written into ROOT/scripts: each runs asemu.<tool>.main(ROOT, arguments)
TOOLS = ("sacli", "authcli", "logdba", "traffic")
# the folder that holds the asemu and pyovpn packages
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

AS_CONF = """\
# OpenVPN Access Server configuration file (emulated)
#
# ~ stands for the folder of this file.
AS_CONNECT=true
SYS=~/..
config_db=sqlite:///{config_db}
user_prop_db=sqlite:///{user_prop_db}
certs_db=sqlite:///~/db/certs.db
log_db=sqlite:///~/db/log.db
general.sock_dir=~/sock
sa.sock=~/sock/sagent
sa.company_name=ovpnas.fleet emulator
"""

WRAPPER = """\
#!{python}
# {tool} of the Access Server emulator; see tests/emulator in ovpnas.fleet.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib", "python"))

from asemu.{tool} import main  # noqa: E402

sys.exit(main(ROOT, sys.argv[1:]))
"""


def default_config(hostname):
    return {
        "admin_ui.https.ip_address": "all",
        "admin_ui.https.port": "943",
        "aui.eula_version": "3",
        "auth.ldap.0.name": "My LDAP servers",
        "auth.ldap.0.ssl_verify": "never",
        "auth.ldap.0.timeout": "4",
        "auth.ldap.0.use_ssl": "never",
        "auth.module.type": "local",
        "auth.pam.0.service": "openvpnas",
        "auth.radius.0.acct_enable": "false",
        "auth.radius.0.name": "My Radius servers",
        "cs.cws_proto_v2": "true",
        "cs.https.ip_address": "all",
        "cs.https.port": "943",
        "cs.prof_sign_web": "true",
        "host.name": hostname,
        "sa.initial_run_groups.0": "web_group",
        "sa.initial_run_groups.1": "openvpn_group",
        "upgrade.current_version": DEFAULT_SETTINGS["version"],
        "vpn.client.routing.inter_client": "false",
        "vpn.client.routing.reroute_dns": "true",
        "vpn.client.routing.reroute_gw": "true",
        "vpn.daemon.0.client.netmask_bits": "20",
        "vpn.daemon.0.client.network": "172.27.224.0",
        "vpn.daemon.0.listen.ip_address": "all",
        "vpn.daemon.0.listen.port": "443",
        "vpn.daemon.0.listen.protocol": "tcp",
        "vpn.daemon.0.server.ip_address": "all",
        "vpn.server.daemon.enable": "true",
        "vpn.server.daemon.protocols": "tcp_udp",
        "vpn.server.daemon.tcp.n_daemons": "1",
        "vpn.server.daemon.tcp.port": "443",
        "vpn.server.daemon.udp.n_daemons": "1",
        "vpn.server.daemon.udp.port": "1194",
        "vpn.server.port_share.enable": "true",
        "vpn.server.routing.private_access": "nat",
    }


def applied(config):
    """What `start` compares with to find the keys changed since the last start."""
    return {k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in config.items()}


def fill(path, profiles):
    """Write ``profiles`` into the database at ``path`` unless it holds profiles already; True if it did.

    A cluster node that joins finds the databases of the first node and leaves them alone.  The
    check and the writes are one transaction, so installs that race for one folder fill it once.
    """
    with Store(path) as db:
        db.begin()
        if db.profiles():
            return False
        for name, values in profiles.items():
            db.replace(name, values)
    os.chmod(path, 0o600)
    return True


def count(text):
    """A number of clients for argparse: a whole number, 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def seconds(text):
    """A number of seconds for argparse: 0 or more."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def parse_args(argv, prog="install"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("root", help="folder to create (must not exist, or be empty)")
    parser.add_argument("--version", default=DEFAULT_SETTINGS["version"], help="what `sacli Version` prints")
    parser.add_argument("--hostname", default=None, help="host.name (default: the folder name)")
    parser.add_argument(
        "--configput-output", choices=("silent", "list"), default=DEFAULT_SETTINGS["configput_output"],
        help="ConfigPut prints nothing (newer versions) or [True, {}] (older versions)",
    )
    parser.add_argument(
        "--start-output", choices=("full", "spaced", "json"), default=DEFAULT_SETTINGS["start_output"],
        help="start prints RunStart/JSON/WILL_RESTART (full), the same with a blank line before WILL_RESTART"
             " (spaced), or the JSON alone",
    )
    parser.add_argument(
        "--value-file-strip", action="store_true", help="ConfigPut strips trailing newlines of --value_file"
    )
    parser.add_argument(
        "--ldap-api", choices=("ldap3", "python-ldap"), default=DEFAULT_SETTINGS["ldap_api"],
        help="what info['ldap_context'] is after an LDAP login: an ldap3 Connection or a python-ldap LDAPObject",
    )
    parser.add_argument(
        "--log-file", default=DEFAULT_SETTINGS["log_file"], help="server log (relative to ROOT unless absolute)"
    )
    parser.add_argument("--python", default="/usr/bin/env python3", help="interpreter for the tools' #! line")
    parser.add_argument("--stopped", action="store_true", help="leave the services stopped (default: running)")
    parser.add_argument(
        "--vpn-clients", type=count, default=DEFAULT_SETTINGS["vpn_clients"],
        help="how many VPN clients are connected while the services run (what VPNSummary counts)",
    )
    parser.add_argument(
        "--cluster-db", metavar="DIR", default=None,
        help="use DIR/config.db and DIR/userprop.db, shared with every root installed with the same DIR"
        " (the first install creates them, later ones join)",
    )
    parser.add_argument(
        "--standby", action="store_true", help="a failover standby: no agent socket, every sacli command fails"
    )
    parser.add_argument(
        "--log-lag", metavar="SECONDS", type=seconds, default=DEFAULT_SETTINGS["log_lag_seconds"],
        help="log.db rows become visible to logdba this many seconds after they are written (the real server"
        " writes them asynchronously)",
    )
    parser.add_argument(
        "--logdba-json", choices=("list", "object"), default=DEFAULT_SETTINGS["logdba_json"],
        help='logdba --json prints a list of rows, or {"rows": [...], "total": N}',
    )
    parser.add_argument(
        "--log-time-format", choices=("epoch", "text"), default=DEFAULT_SETTINGS["log_time_format"],
        help="logdba prints start_time and timestamp as epoch seconds or as 'YYYY-MM-DD HH:MM:SS' (UTC)",
    )
    parser.add_argument(
        "--log-script-reason", choices=("reason", "generic"), default=DEFAULT_SETTINGS["log_script_reason"],
        help="the log row of a login the post-auth script refused holds its reason in error, or"
        " 'authentication failed' for every refusal",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Install as the command line says: ``install ROOT [options]``, or ``asemu-install`` without ``argv``."""
    prog = "install"
    if argv is None:
        # the asemu-install console script of the installed distribution
        argv, prog = sys.argv[1:], os.path.basename(sys.argv[0])
    args = parse_args(argv, prog)
    target = os.path.abspath(args.root)
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        sys.stderr.write("install: %s exists and is not an empty folder; refusing to overwrite it\n" % target)
        return 1
    for sub in ("scripts", "etc/db", "etc/sock", "etc/emulator", "lib/python", "log"):
        os.makedirs(os.path.join(target, sub), exist_ok=True)
    os.chmod(os.path.join(target, "etc", "emulator"), 0o700)
    os.chmod(os.path.join(target, "etc", "db"), 0o700)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("asemu", "pyovpn"):
        shutil.copytree(os.path.join(HERE, package), os.path.join(target, "lib", "python", package), ignore=ignore)
    python = args.python
    if not python.startswith("/"):
        # a bare name such as python3: find it through PATH when the tool runs
        python = "/usr/bin/env " + python
    for tool in TOOLS:
        path = os.path.join(target, "scripts", tool)
        with open(path, "w") as handle:
            handle.write(WRAPPER.format(python=python, tool=tool))
        os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    databases = {"config_db": "~/db/config.db", "user_prop_db": "~/db/userprop.db"}
    if args.cluster_db:
        cluster = os.path.abspath(args.cluster_db)
        os.makedirs(cluster, 0o700, exist_ok=True)
        databases = {
            "config_db": os.path.join(cluster, "config.db"), "user_prop_db": os.path.join(cluster, "userprop.db"),
        }
    with open(os.path.join(target, "etc", "as.conf"), "w") as handle:
        handle.write(AS_CONF.format(**databases))

    root = Root(target)
    hostname = args.hostname or os.path.basename(target.rstrip("/")) or socket.gethostname()
    config = default_config(hostname)
    config["upgrade.current_version"] = args.version
    joined = not fill(root.config_db, {
        "Default": config, "_INTERNAL": {"webui.edit_profile": "Default", "run_api.active_profile": "Default"},
    })
    fill(root.userprop_db, {
        "__DEFAULT__": {
            "def_deny": "false", "prop_autogenerate": "true", "prop_force_lzo": "false", "type": "user_default",
        },
        "openvpn": {"prop_superuser": "true", "type": "user_connect", "user_auth_type": "local"},
    })
    # every root keeps its own log database, cluster nodes too
    logdb.create(root.log_db)
    if joined:
        # a cluster node: the shared configuration (host.name included) is what it runs with
        with Store(root.config_db) as db:
            config = db.items("Default")

    settings = {
        "version": args.version,
        "configput_output": args.configput_output,
        "start_output": args.start_output,
        "value_file_strip": args.value_file_strip,
        "ldap_api": args.ldap_api,
        "log_file": args.log_file,
        "vpn_clients": args.vpn_clients,
        "standby": args.standby,
        "log_lag_seconds": args.log_lag,
        "logdba_json": args.logdba_json,
        "log_time_format": args.log_time_format,
        "log_script_reason": args.log_script_reason,
    }
    with open(root.settings_file, "w") as handle:
        json.dump(settings, handle, indent=2, sort_keys=True)
    if not args.stopped:
        root.save_state({
            "running": True, "errors": {}, "restarted": [], "started_at": time.time(), "applied": applied(config),
            "last_restarted": time.ctime(),
        })
        if not args.standby:
            with open(root.sock, "w"):
                pass
    root.log("install", "emulated Access Server %s installed in %s" % (args.version, target))
    if joined:
        root.log("install", "joined the cluster databases in %s" % os.path.dirname(root.config_db))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
