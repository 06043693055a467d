"""One emulated server: its folder, settings, state, call log, faults and log."""

import contextlib
import fcntl
import json
import os
import time

# Defaults of etc/emulator/settings.json.  Each setting selects one of the
# variants that real Access Server versions are known (or may be) to show.
DEFAULT_SETTINGS = {
    # what `sacli Version` prints
    "version": "2.14.3",
    # "silent": ConfigPut/ConfigDel print nothing (newer versions);
    # "list": they print `[True, {}]` (older versions)
    "configput_output": "silent",
    # "full": start prints `RunStart warm None`, the JSON object and a
    # `WILL_RESTART [...]` line; "spaced": the same with a blank line before
    # WILL_RESTART (both are seen in public outputs); "json": the JSON object alone
    "start_output": "full",
    # whether ConfigPut strips trailing newlines from --value_file content
    # (the real behaviour is unknown: modules must work with both)
    "value_file_strip": False,
    # whether authcli prints the `AUTH_RETURN` line (some versions omit it)
    "authcli_header": True,
    # whether start also lists informational entries in `errors`
    # (`[["info", "process started successfully ..."]]`), as logs show
    "start_info_entries": False,
    # seconds after `start` during which `status` still reports the
    # restarted services as "off"
    "settle_seconds": 0,
    # the API of info['ldap_context'] in post-auth scripts after an LDAP login:
    # "ldap3" (an ldap3.Connection, AS 2.8 and later) or "python-ldap" (a
    # python-ldap LDAPObject, earlier versions)
    "ldap_api": "ldap3",
    # where the log goes; relative paths are relative to the root
    "log_file": "log/openvpnas.log",
    # how many VPN clients are connected while the services run (what
    # `sacli VPNSummary` counts)
    "vpn_clients": 0,
    # a UCARP failover standby: the services do not run, there is no agent
    # socket and every sacli command fails
    "standby": False,
    # seconds after a login record is written before readers (logdba) see it:
    # the real server writes log.db asynchronously, seconds late
    "log_lag_seconds": 0,
    # what `logdba --json` prints (the real shape is unknown): "list", a JSON
    # list of row objects, or "object", {"rows": [...], "total": N}
    "logdba_json": "list",
    # how logdba prints start_time and timestamp: "epoch" (integer seconds) or
    # "text" ("YYYY-MM-DD HH:MM:SS", UTC)
    "log_time_format": "epoch",
    # what the row of a login the post-auth script refused holds in `error`: "reason", the
    # script's reason (very likely the real behaviour), or "generic", the same text for every
    # refusal, "authentication failed" (whether the reason lands there is not public)
    "log_script_reason": "reason",
}

SERVICES = (
    "api", "auth", "bridge", "client_query", "crl", "daemon_pre", "db_push",
    "iptables_api", "iptables_live", "iptables_openvpn", "iptables_web",
    "ip6tables_api", "ip6tables_live", "ip6tables_openvpn", "ip6tables_web",
    "log", "openvpn_0", "openvpn_1", "subscription", "user", "web",
)


def _read_json(path, default):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return default


def _write_json(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


class Root(object):
    """Paths and emulator-private state of one installed root."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.etc = os.path.join(self.path, "etc")
        self.private = os.path.join(self.etc, "emulator")
        self.as_conf = os.path.join(self.etc, "as.conf")
        conf = self._read_as_conf()
        self.config_db = conf["config_db"]
        self.userprop_db = conf["user_prop_db"]
        self.sock = conf["sa.sock"]
        self.log_db = conf["log_db"]
        self.settings_file = os.path.join(self.private, "settings.json")
        self.state_file = os.path.join(self.private, "state.json")
        self.faults_file = os.path.join(self.private, "faults.json")
        self.crstate_file = os.path.join(self.private, "crstate.json")
        # what post-auth scripts set as authret.state, pickled per user (see authcli)
        self.authret_state_file = os.path.join(self.private, "authret_state.pickle")
        self.lock_file = os.path.join(self.private, "lock")
        self.call_log = os.path.join(self.path, "log", "calls.jsonl")
        self.lib = os.path.join(self.path, "lib", "python")

    def _read_as_conf(self):
        """Database and socket paths from etc/as.conf (``~`` is etc/)."""
        values = {}
        with open(self.as_conf) as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                name, value = line.split("=", 1)
                values[name.strip()] = value.strip()
        # a root installed before the log database existed has no log_db line: the default path
        values.setdefault("log_db", "sqlite:///~/db/log.db")
        result = {}
        for name in ("config_db", "user_prop_db", "sa.sock", "log_db"):
            value = values[name]
            if value.startswith("sqlite:///"):
                # sqlite:///~/db/config.db, or sqlite:////abs/path (a cluster's shared database)
                value = value[len("sqlite:///"):]
            if value.startswith("~/"):
                value = os.path.join(self.etc, value[2:])
            result[name] = value
        return result

    # settings -------------------------------------------------------------
    def settings(self):
        merged = dict(DEFAULT_SETTINGS)
        merged.update(_read_json(self.settings_file, {}))
        return merged

    def update_settings(self, **changes):
        with self.locked():
            current = _read_json(self.settings_file, {})
            current.update(changes)
            _write_json(self.settings_file, current)
        if "standby" in changes:
            self.sync_agent_socket()

    @property
    def log_file(self):
        path = self.settings()["log_file"]
        return path if os.path.isabs(path) else os.path.join(self.path, path)

    # state ----------------------------------------------------------------
    def state(self):
        return _read_json(self.state_file, {})

    def save_state(self, state):
        _write_json(self.state_file, state)

    def sync_agent_socket(self):
        """Make the agent socket present while the services run and the node is no standby, else absent."""
        with self.locked():
            up = self.state().get("running", False) and not self.settings()["standby"]
            if up and not os.path.exists(self.sock):
                with open(self.sock, "w"):
                    pass
            elif not up and os.path.exists(self.sock):
                os.remove(self.sock)

    @contextlib.contextmanager
    def locked(self):
        """Serialize read-modify-write of the emulator's private files."""
        with open(self.lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # faults ---------------------------------------------------------------
    def take_fault(self, name):
        """Return the fault armed for ``name`` (a lower-case command), if any.

        A fault with ``after`` lets that many calls through first; one with ``times`` is used
        that many times and then disarmed.
        """
        if not os.path.exists(self.faults_file):
            return None
        with self.locked():
            faults = _read_json(self.faults_file, {})
            fault = faults.get(name)
            if fault is None:
                return None
            if fault.get("after", 0) > 0:
                fault["after"] -= 1
                _write_json(self.faults_file, faults)
                return None
            if "times" in fault:
                fault["times"] -= 1
                if fault["times"] <= 0:
                    del faults[name]
                _write_json(self.faults_file, faults)
            return fault

    def set_fault(self, name, **fault):
        with self.locked():
            faults = _read_json(self.faults_file, {})
            faults[name.lower()] = fault
            _write_json(self.faults_file, faults)

    def clear_faults(self):
        with self.locked():
            if os.path.exists(self.faults_file):
                os.remove(self.faults_file)

    # logs -----------------------------------------------------------------
    def record_call(self, tool, command, options, started, rc):
        """Append one line to the call log: names only, never values."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "tool": tool,
            "command": command,
            "options": sorted(options),
            "duration": round(time.time() - started, 4),
            "rc": rc,
        }
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def calls(self):
        """The call log as a list of dicts (for tests and benchmarks)."""
        try:
            with open(self.call_log) as handle:
                return [json.loads(line) for line in handle if line.strip()]
        except (IOError, OSError):
            return []

    def log(self, source, message):
        """Append a line to the server log, in the style of openvpnas.log."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())
        lines = message.rstrip("\n").split("\n") or [""]
        path = self.log_file
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory)
        with open(path, "a") as handle:
            for line in lines:
                handle.write("%s [%s] %s\n" % (stamp, source, line))
