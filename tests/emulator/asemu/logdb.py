"""The log database, etc/db/log.db: one row per authentication and per API call.

Access Server records every authentication, failures included, and every sacli call in its log
database (``log_db`` in as.conf), which ``scripts/logdba`` reads.  The fields are those its API
returns; the raw table schema of the real server is not public, so this one simply stores them
under the same names, plus ``api_method`` (the command of an ``XML_API`` row) and the emulator's
own ``visible_after``.

The real server writes these rows asynchronously, seconds after the event.  The setting
``log_lag_seconds`` plays that: a row is stored at once with ``visible_after`` = the time it was
written + the lag, and readers do not see it before then.

Several processes write at once (authcli, sacli, the traffic generator): every write is one short
transaction with a busy timeout, the file is in WAL mode so that readers do not block writers, and
a row that cannot be written is reported in the server log instead of failing the login or the
sacli call that wanted it.
"""

import ipaddress
import os
import socket
import sqlite3
import time
import zlib

# the fields of a row, in the order the server's API lists them
FIELDS = (
    "node", "username", "start_time", "duration", "service", "active", "auth", "real_address",
    "virtual_ipv4_address", "server_port", "bytes_received", "bytes_sent", "total_bytes", "error",
    "timestamp", "version", "gui_version", "platform", "protocol", "proxied_ip",
)
# what logdba can print: the fields and the command of an API call
COLUMNS = FIELDS + ("api_method",)
# the fields holding epoch seconds
TIME_FIELDS = ("start_time", "timestamp")
# the fields printed as the strings "1" and "0"
FLAG_FIELDS = ("active", "auth")
SERVICES = ("VPN", "WEB_ADMIN", "WEB_CLIENT", "XML_API")
# the user name of sacli's calls
API_USER = "__local_root__"
# what error says of the first step of a login answered with a dynamic challenge
CHALLENGE = "challenge"
BUSY_TIMEOUT = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT,
    username TEXT,
    start_time INTEGER,
    duration INTEGER,
    service TEXT,
    active INTEGER,
    auth INTEGER,
    real_address TEXT,
    virtual_ipv4_address TEXT,
    server_port INTEGER,
    bytes_received INTEGER,
    bytes_sent INTEGER,
    total_bytes INTEGER,
    error TEXT,
    timestamp INTEGER,
    version TEXT,
    gui_version TEXT,
    platform TEXT,
    protocol TEXT,
    proxied_ip TEXT,
    api_method TEXT,
    visible_after REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS log_start_time ON log (start_time);
"""


def connect(path):
    """A connection to the log database at ``path``, created (0600, WAL mode) when missing."""
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log'").fetchone() is None:
            conn.executescript(SCHEMA)
            conn.execute("PRAGMA journal_mode=WAL")
        # login records are no bank ledger: no disk sync on commit or checkpoint (the file stays
        # consistent; a power cut may lose the last rows), so that hundreds of logins a second fit
        conn.execute("PRAGMA synchronous=OFF")
    except BaseException:
        conn.close()
        raise
    return conn


def create(path):
    """Create an empty log database (the installer does, as the real server has one from the start)."""
    connect(path).close()


# writing ------------------------------------------------------------------------------------------

def write(root, row):
    """Store one row (a dict of FIELDS and api_method) in the root's log database.

    Never raises: a row that cannot be written is reported in the server log.  Returns whether it
    was written.
    """
    try:
        lag = float(root.settings().get("log_lag_seconds") or 0)
        now = time.time()
        values = dict.fromkeys(COLUMNS)
        values.update((name, row[name]) for name in COLUMNS if name in row)
        if values["timestamp"] is None:
            values["timestamp"] = int(now)
        if values["start_time"] is None:
            values["start_time"] = int(now)
        for name in FLAG_FIELDS:
            values[name] = 1 if values[name] in (1, "1", True) else 0
        names = COLUMNS + ("visible_after",)
        params = [values[name] for name in COLUMNS] + [now + max(lag, 0.0)]
        conn = connect(root.log_db)
        try:
            with conn:
                conn.execute("INSERT INTO log (%s) VALUES (%s)" % (", ".join(names), ", ".join("?" * len(names))),
                             params)
        finally:
            conn.close()
        return True
    except Exception as exc:  # noqa: BLE001 - a login record must never fail what it records
        try:
            root.log("log#error", "log.db row not written (%s %s): %s: %s" % (
                row.get("service"), row.get("username"), type(exc).__name__, exc))
        except Exception:  # noqa: BLE001 - nowhere left to report it
            pass
        return False


def node_name(config):
    """What ``node`` says: the server's host.name (this machine's name when it is unset)."""
    return config.get("host.name") or socket.gethostname()


def virtual_address(config, username, proplist):
    """The VPN address of a login: the user's ``conn_ip``, else a stable one from the client pool."""
    if proplist.get("conn_ip"):
        return proplist["conn_ip"]
    try:
        network = ipaddress.ip_network("%s/%s" % (config.get("vpn.daemon.0.client.network", "172.27.224.0"),
                                                  config.get("vpn.daemon.0.client.netmask_bits", "20")),
                                       strict=False)
    except ValueError:
        return None
    hosts = network.num_addresses - 3
    if hosts < 1:
        return None
    # .1 is the server's own address in the pool
    index = 2 + zlib.crc32(username.lower().encode("utf-8")) % hosts
    return str(network.network_address + index)


def login_row(config, username, service, ok, error, started, client_info=None, client_ip=None,
              protocol=None, proplist=None):
    """The row of one login (service VPN or WEB_CLIENT) as the server writes it.

    ``username`` is the name the client typed; ``client_info`` what it claims (IV_PLAT, IV_VER,
    IV_GUI_VER); a failure has ``auth`` 0, ``duration`` null and the failure text in ``error``.
    The emulator runs no tunnel: a successful login is a session that ended at once (``active``
    0, ``duration`` 0, no bytes).
    """
    client_info = client_info or {}
    web = service != "VPN"
    if web:
        protocol = "TCP"
        port = config.get("cs.https.port", "943")
    else:
        protocol = (protocol or "UDP").upper()
        port = config.get("vpn.server.daemon.%s.port" % protocol.lower(), "1194" if protocol == "UDP" else "443")
    row = {
        "node": node_name(config),
        "username": username,
        "start_time": int(started),
        "duration": 0 if ok else None,
        "service": service,
        "active": 0,
        "auth": 1 if ok else 0,
        "real_address": client_ip,
        "virtual_ipv4_address": None,
        "server_port": _port(port),
        "bytes_received": 0 if ok and not web else None,
        "bytes_sent": 0 if ok and not web else None,
        "total_bytes": 0 if ok and not web else None,
        "error": None if ok else (error or "authentication failed"),
        "version": client_info.get("IV_VER"),
        "gui_version": client_info.get("IV_GUI_VER"),
        "platform": client_info.get("IV_PLAT"),
        "protocol": protocol,
        "proxied_ip": None,
        "api_method": None,
    }
    if ok and not web:
        row["virtual_ipv4_address"] = virtual_address(config, username, proplist or {})
    return row


def api_row(config, command, ok, error, started):
    """The XML_API row of one sacli call: user __local_root__, api_method the command."""
    return {
        "node": node_name(config),
        "username": API_USER,
        "start_time": int(started),
        "duration": 0 if ok else None,
        "service": "XML_API",
        "active": 0,
        "auth": 1 if ok else 0,
        "error": None if ok else (error or "API call failed"),
        "api_method": command,
    }


def _port(text):
    try:
        return int(str(text).strip())
    except ValueError:
        return None


# reading ------------------------------------------------------------------------------------------

def like(pattern):
    """A pattern with ``%`` wildcards as a LIKE operand with ESCAPE '\\' (``_`` is no wildcard here)."""
    return pattern.replace("\\", "\\\\").replace("_", "\\_")


def read(path, start_ge=None, start_lt=None, services=(), auth=None, active=None, username=None, now=None):
    """The visible rows of the log database at ``path``, oldest first, as dicts of COLUMNS.

    ``services`` and ``username`` are patterns with ``%`` wildcards (matched without regard to
    case); ``auth`` and ``active`` 0 or 1; ``start_ge``/``start_lt`` epoch seconds.
    """
    if not os.path.exists(path):
        return []
    where, params = ["visible_after <= ?"], [time.time() if now is None else now]
    if start_ge is not None:
        where.append("start_time >= ?")
        params.append(start_ge)
    if start_lt is not None:
        where.append("start_time < ?")
        params.append(start_lt)
    if services:
        where.append("(%s)" % " OR ".join(["service LIKE ? ESCAPE '\\'"] * len(services)))
        params.extend(like(s) for s in services)
    if auth is not None:
        where.append("auth = ?")
        params.append(int(auth))
    if active is not None:
        where.append("active = ?")
        params.append(int(active))
    if username is not None:
        where.append("username LIKE ? ESCAPE '\\'")
        params.append(like(username))
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT)
    try:
        try:
            cursor = conn.execute("SELECT %s FROM log WHERE %s ORDER BY start_time, id" % (
                ", ".join(COLUMNS), " AND ".join(where)), params)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        return [dict(zip(COLUMNS, values)) for values in cursor]
    finally:
        conn.close()
