"""Private OpenLDAP (slapd) and FreeRADIUS instances on loopback, for the tests of authcli's backends.

Each instance runs as a child process of the test session with its own configuration in a temporary
folder and listens on a free port of 127.0.0.1; the system services the Debian packages install are
neither used nor touched.  ``start()`` writes the configuration, starts the server, waits until it
answers and loads the fixture data; ``stop()`` terminates it and waits for it.
"""

import os
import shutil
import socket
import subprocess
import time
from typing import ClassVar

import jinja2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(HERE, "fixtures")
SYSTEM_PACKAGES = os.path.join(REPO, "tests", "bin", "system-packages")

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30


class ServerError(Exception):
    """A test server could not be installed or started."""


def ensure_packages(*packages):
    """Install the Debian packages that are missing, through tests/bin/system-packages."""
    proc = subprocess.run(
        [SYSTEM_PACKAGES, *packages], capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )
    if proc.returncode != 0:
        raise ServerError("system-packages %s failed (%s):\n%s%s" % (
            " ".join(packages), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))


def free_port(kind=socket.SOCK_STREAM):
    """A port of 127.0.0.1 that nothing listens on right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _tail(path, size=4000):
    try:
        with open(path, errors="replace") as handle:
            return handle.read()[-size:]
    except OSError:
        return ""


class _Child:
    """A server process started in the foreground, its output in a log file."""

    name = "server"

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.log_path = os.path.join(self.workdir, "%s.log" % self.name)
        self.proc = None

    def start(self):
        """Configure, start, wait until it answers, load the fixture data; stop it again on failure."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        raise NotImplementedError

    def _spawn(self, argv):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def _wait_until(self, probe, what):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("%s exited with %s before %s:\n%s" % (
                    self.name, self.proc.returncode, what, _tail(self.log_path)))
            if probe():
                return
            time.sleep(0.1)
        raise ServerError("%s did not %s within %ss:\n%s" % (self.name, what, START_TIMEOUT, _tail(self.log_path)))

    def stop(self):
        """Terminate the server and wait for it (killing it if it does not stop)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


def _put(server, key, value):
    server.sacli("--key", key, "--value", str(value), "ConfigPut")


# OpenLDAP -------------------------------------------------------------------------------------


class Slapd(_Child):
    """A private slapd: mdb database dc=example,dc=com with the memberof overlay, the fixture directory."""

    name = "slapd"
    host = LOOPBACK
    suffix = "dc=example,dc=com"
    root_dn = "cn=admin,dc=example,dc=com"
    root_pw = "admin-pw"
    bind_dn = "cn=svc,dc=example,dc=com"
    bind_pw = "svc-pw"
    users_base_dn = "ou=people,dc=example,dc=com"
    groups_base_dn = "ou=groups,dc=example,dc=com"
    ldif = os.path.join(FIXTURES, "directory.ldif")
    # the fixture users: password and the groups the directory gives them
    users: ClassVar[dict] = {
        "alice": ("alice-pw", ("vpn-admins", "vpn-users")),
        "bob": ("bob-pw", ("engineering", "vpn-users")),
        "carol": ("carol-pw", ()),
        "Dave": ("dave-pw", ()),
    }

    def __init__(self, workdir, port=None):
        super().__init__(workdir)
        self.port = port or free_port()

    @property
    def uri(self):
        return "ldap://%s:%d/" % (self.host, self.port)

    def user_dn(self, uid):
        return "uid=%s,%s" % (uid, self.users_base_dn)

    def group_dn(self, name):
        return "cn=%s,%s" % (name, self.groups_base_dn)

    def groups_of(self, uid):
        """The memberOf values the directory gives the fixture user ``uid``, sorted."""
        return sorted(self.group_dn(name) for name in self.users[uid][1])

    def _start(self):
        os.makedirs(os.path.join(self.workdir, "data"), exist_ok=True)
        conf = os.path.join(self.workdir, "slapd.conf")
        with open(os.path.join(FIXTURES, "slapd.conf.j2")) as handle:
            template = jinja2.Template(handle.read(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        with open(conf, "w") as handle:
            handle.write(template.render(
                workdir=self.workdir, suffix=self.suffix, root_dn=self.root_dn, root_pw=self.root_pw,
                bind_dn=self.bind_dn,
            ))
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        # -d 0: stay in the foreground (a child of this process) without debug output
        self._spawn([slapd, "-d", "0", "-f", conf, "-h", self.uri, "-n", "slapd-policy-tests"])
        self._wait_until(self._answers, "answer on %s" % self.uri)
        self._ldap("ldapadd", "-f", self.ldif)

    def _answers(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                pass
        except OSError:
            return False
        return self._ldap("ldapwhoami", check=False).returncode == 0

    def _ldap(self, tool, *args, check=True):
        proc = subprocess.run(
            [tool, "-x", "-H", self.uri, "-D", self.root_dn, "-w", self.root_pw, *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if check and proc.returncode != 0:
            raise ServerError("%s %s failed (%s): %s%s" % (tool, args, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def configure(self, server, api=None, add_req=None, uname_attr=None, use_port_key=False, **keys):
        """Make an emulated server authenticate against this slapd.

        ``api`` selects the flavour of info['ldap_context'] (emulator setting ldap_api); ``keys`` are
        more auth.ldap.0.* settings, given without the prefix (bind_pw="wrong", ...).
        """
        if api is not None:
            server.settings(ldap_api=api)
        settings = {
            "server.0.host": self.host if use_port_key else "%s:%d" % (self.host, self.port),
            "use_ssl": "never",
            "bind_dn": self.bind_dn,
            "bind_pw": self.bind_pw,
            "users_base_dn": self.users_base_dn,
            "uname_attr": uname_attr or "uid",
        }
        if use_port_key:
            settings["server.0.port"] = self.port
        if add_req is not None:
            settings["add_req"] = add_req
        settings.update(keys)
        for name, value in sorted(settings.items()):
            _put(server, "auth.ldap.0." + name, value)
        _put(server, "auth.module.type", "ldap")
        return server


# FreeRADIUS -----------------------------------------------------------------------------------

RADIUSD_CONF = """\
# radiusd.conf of the ovpnas.fleet policy tests (generated): PAP against a `files` users file
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {workdir}
sbindir = /usr/sbin
logdir = {workdir}
raddbdir = {workdir}
radacctdir = {workdir}
name = freeradius
confdir = {workdir}
modconfdir = {workdir}
run_dir = {workdir}
db_dir = {workdir}
libdir = /usr/lib/freeradius
pidfile = {workdir}/radiusd.pid
max_request_time = 10
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no

log {{
    destination = stdout
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}}

security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}

thread pool {{
    start_servers = 2
    max_servers = 8
    min_spare_servers = 1
    max_spare_servers = 4
    max_requests_per_server = 0
}}

client localhost {{
    ipaddr = 127.0.0.1
    secret = {secret}
    require_message_authenticator = no
    nas_type = other
}}

modules {{
    files {{
        filename = {workdir}/users
        acctusersfile = {workdir}/users.acct
        preproxy_usersfile = {workdir}/users.preproxy
    }}
    pap {{
        normalise = yes
    }}
}}

server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
}}
"""


class FreeRadius(_Child):
    """A private FreeRADIUS: PAP for the users of fixtures/radius-users, client 127.0.0.1."""

    name = "freeradius"
    host = LOOPBACK
    secret = "policy-tests-secret"
    users_file = os.path.join(FIXTURES, "radius-users")
    users: ClassVar[dict] = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "eve": "eve-pw"}

    def __init__(self, workdir, port=None):
        super().__init__(workdir)
        self.port = port or free_port(socket.SOCK_DGRAM)

    def _start(self):
        os.makedirs(self.workdir, exist_ok=True)
        shutil.copyfile(self.users_file, os.path.join(self.workdir, "users"))
        for name in ("users.acct", "users.preproxy"):
            open(os.path.join(self.workdir, name), "w").close()
        with open(os.path.join(self.workdir, "radiusd.conf"), "w") as handle:
            handle.write(RADIUSD_CONF.format(workdir=self.workdir, secret=self.secret, port=self.port))
        radiusd = shutil.which("freeradius") or "/usr/sbin/freeradius"
        # -f: foreground (a child of this process); -l stdout: the log goes to the log file
        self._spawn([radiusd, "-f", "-l", "stdout", "-d", self.workdir, "-n", "radiusd"])
        self._wait_until(self._answers, "answer on %s:%d" % (self.host, self.port))

    def _answers(self):
        """True once the server replies (with anything) to an Access-Request."""
        from pyrad.client import Client, Timeout
        from pyrad.dictionary import Dictionary

        dictionary = Dictionary(os.path.join(REPO, "tests", "emulator", "asemu", "radius.dictionary"))
        client = Client(server=self.host, authport=self.port, secret=self.secret.encode(), dict=dictionary,
                        retries=1, timeout=0.3)
        request = client.CreateAuthPacket(User_Name="readiness-probe")
        request["User-Password"] = request.PwCrypt("probe")
        try:
            client.SendPacket(request)
        except (Timeout, OSError):
            return False
        return True

    def configure(self, server, secret=None, timeout=None, port=None):
        """Make an emulated server authenticate against this FreeRADIUS."""
        _put(server, "auth.radius.0.server.0.host", self.host)
        _put(server, "auth.radius.0.server.0.secret", self.secret if secret is None else secret)
        _put(server, "auth.radius.0.server.0.auth_port", self.port if port is None else port)
        if timeout is not None:
            _put(server, "auth.radius.0.server.0.timeout", timeout)
        _put(server, "auth.module.type", "radius")
        return server
