"""Helpers of the Duo, challenge/response, custom authentication and secrets policy tests.

* ``MFA_MESSAGES``: the messages of policy.MESSAGES plus distinct ones for the new capabilities,
  so that a test sees which check refused a login.
* ``challenge_of(outcome)`` reads the ``challenge : CRV1:<flags>:<state_id>:<b64 user>:<text>`` line
  authcli prints for a dynamic challenge; ``answer(server, user, state_id, response)`` is the login
  that answers it (password ``CRV1::<state_id>::<response>``).
* ``totp(seed, ...)`` computes RFC 6238 codes; ``fresh_period()`` waits until the current period has
  a few seconds left, so that a code computed now is checked in the same period.
* ``pbkdf2_hash(password, salt)`` writes a hash in Django's format, as the role expects it.
* ``Relay`` forwards TCP connections to a target the test chooses (TLS passes through untouched: the
  client checks the certificate of whatever peer the relay reaches); ``ConnectProxy`` is an HTTP
  proxy that tunnels CONNECT requests and records them.
"""

import ast
import base64
import binascii
import hashlib
import hmac
import os
import re
import select
import socket
import socketserver
import struct
import subprocess
import threading
import time

from policy import MESSAGES, PYTHONS, login

LOOPBACK = "127.0.0.1"

MFA_MESSAGES = dict(
    MESSAGES,
    custom_auth_failed="MSG wrong user name or password",
    custom_auth_unavailable="MSG authentication unavailable",
    duo_prompt="MSG Duo: a passcode, or push, phone or sms",
    duo_sms_sent="MSG Duo sent passcodes by SMS",
    duo_invalid_answer="MSG not a Duo answer",
    duo_denied="MSG Duo denied",
    duo_enroll="MSG enroll in Duo first: {url}",
    duo_unavailable="MSG Duo unavailable",
    challenge_wrong="MSG wrong code",
    challenge_retry="MSG wrong code, try again.",
    challenge_no_secret="MSG no code set up",
    challenge_unavailable="MSG code not checked",
)

CRV1 = re.compile(r"^CRV1:(?P<flags>[^:]*):(?P<state_id>[^:]+):(?P<user>[^:]*):(?P<text>.*)\Z", re.DOTALL)


def challenge_of(outcome):
    """{flags, state_id, user, text} of the dynamic challenge authcli printed (AssertionError without one)."""
    assert outcome["status"] == "FAIL", outcome
    assert outcome.get("reason") == "dynamic challenge issued", outcome
    match = CRV1.match(outcome.get("challenge", ""))
    assert match, outcome
    fields = match.groupdict()
    fields["user"] = base64.b64decode(fields["user"]).decode("utf-8")
    return fields


def answer(server, user, state_id, response, *options):
    """The login that answers a dynamic challenge, as OpenVPN clients send it."""
    return login(server, user, "CRV1::%s::%s" % (state_id, response), *options)


def local_users(password, *names, **props):
    """A scenario's prepare(server): local users with ``password``; ``props`` = {user: {property: value}}."""
    def prepare(server):
        for name in names:
            server.set_password(name, password)
        for user, values in props.items():
            for key, value in values.items():
                server.sacli("--user", user, "--key", key, "--value", value, "UserPropPut")
    return prepare


# TOTP (RFC 6238) ------------------------------------------------------------------------------

def totp(seed, offset=0, digits=6, algorithm="sha1", period=30, at=None):
    """The code of base32 ``seed`` for the period ``offset`` periods from now (or from ``at``)."""
    text = re.sub(r"[\s=]", "", seed).upper()
    key = base64.b32decode(text + "=" * (-len(text) % 8))
    counter = int(time.time() if at is None else at) // period + offset
    digest = hmac.new(key, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    start = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[start:start + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def current_step(period=30):
    return int(time.time()) // period


def fresh_period(period=30, margin=5):
    """Wait, when needed, until at least ``margin`` seconds of the current period remain."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


# PBKDF2 hashes (Django's format) -----------------------------------------------------------------

def pbkdf2_hash(password, salt, iterations=100000):
    derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return "pbkdf2_sha256$%d$%s$%s" % (iterations, salt, base64.b64encode(derived).decode("ascii"))


def random_base32(length=32):
    return base64.b32encode(os.urandom(length * 5 // 8)).decode("ascii")


def random_token(prefix):
    return "%s-%s" % (prefix, binascii.hexlify(os.urandom(12)).decode("ascii"))


# TCP relay and CONNECT proxy ---------------------------------------------------------------------

IDLE_SECONDS = 15


def pump(one, other):
    """Copy bytes both ways until a side closes (or nothing moves for IDLE_SECONDS); close both."""
    sockets = [one, other]
    try:
        while True:
            readable = select.select(sockets, [], [], IDLE_SECONDS)[0]
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (other if sock is one else one).sendall(data)
    except OSError:
        return
    finally:
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, owner, handler):
        self.owner = owner
        super().__init__((LOOPBACK, 0), handler)

    def handle_error(self, request, client_address):
        self.owner.errors.append(client_address)


class _Tunnel:
    handler = None

    def __init__(self):
        self.server = None
        self.thread = None
        self.port = None
        self.errors = []

    def start(self):
        self.server = _TcpServer(self, self.handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="%s-%d" % (type(self).__name__, self.port), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self):
        relay = self.server.owner
        target = relay.target
        relay.connections.append(target)
        try:
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            return
        upstream.settimeout(None)
        pump(self.request, upstream)


class Relay(_Tunnel):
    """127.0.0.1:port -> ``target`` ((host, port)), chosen per connection; ``connections`` lists the targets used."""

    handler = _RelayHandler

    def __init__(self, target=None):
        super().__init__()
        self.target = target
        self.connections = []

    def url_for(self, path):
        return "https://%s:%d%s" % (LOOPBACK, self.port, path)


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self):
        proxy = self.server.owner
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass
        proxy.requests.append(request_line)
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or proxy.refuse:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = parts[1].rsplit(":", 1)
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except (OSError, ValueError):
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        pump(self.connection, upstream)


class ConnectProxy(_Tunnel):
    """An HTTP proxy for HTTPS (CONNECT only); ``requests`` holds the request lines, ``refuse`` makes it answer 502."""

    handler = _ProxyHandler

    def __init__(self):
        super().__init__()
        self.requests = []
        self.refuse = False

    @property
    def url(self):
        return "http://%s:%d" % (LOOPBACK, self.port)


# Reading scripts --------------------------------------------------------------------------------

SECRET_MARKER = "# ovpnas.fleet.secret"


def flag_lines(script):
    """{name: the text after `NAME = `} of the module-level flags of a script."""
    flags = {}
    for line in script.splitlines():
        match = re.match(r"^(SYNCHRONOUS|GROUP_SELECT|AUTH_NULL|RETAIN_PASSWORD|STATIC_CHALLENGE|STATIC_CHALLENGE_ECHO)"
                         r" = (.*)$", line)
        if match:
            flags[match.group(1)] = match.group(2)
    return flags


def lines_with(text, value):
    return [line for line in text.splitlines() if value in line]


# What Access Server is known to offer on crstate (docs/access-server.md): `in`, get, item
# set, response(), expire(), challenge_post_auth(). Scripts must not count on more.
CRSTATE_OPERATIONS = {"get", "response", "expire", "challenge_post_auth"}


def crstate_operations(script):
    """The attributes a script uses on crstate (a name `crstate`, or `<something>.crstate`)."""
    used = set()
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Attribute):
            base = node.value
            if (isinstance(base, ast.Name) and base.id == "crstate") or \
                    (isinstance(base, ast.Attribute) and base.attr == "crstate"):
                used.add(node.attr)
    return used


def assert_crstate_used_as_documented(built):
    """The scripts that ask questions use only what Access Server is known to offer on crstate."""
    asking = [name for name, scenario in built.items() if "def post_auth_cr(" in scenario.script]
    assert asking, sorted(built)
    for name in asking:
        used = crstate_operations(built[name].script)
        assert "challenge_post_auth" in used and "response" in used, (name, used)
        assert used <= CRSTATE_OPERATIONS, (name, sorted(used - CRSTATE_OPERATIONS))
    return True


def assert_compiled_everywhere(built, folder):
    """Each scenario's role run was asked to compile its script with every Python 3 of the machine
    (tests/unit/plugins/modules/test_server_state.py shows that one failing interpreter stops the
    load), and every one of them compiles the live script now (as Access Server does: from the
    text, as `<string>`)."""
    assert PYTHONS, "no Python 3 under PYENV_ROOT"
    paths = []
    for name, scenario in sorted(built.items()):
        assert scenario.variables["post_auth_validate_interpreters"] == PYTHONS, name
        path = os.path.join(str(folder), "%s.py" % name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(scenario.script)
        paths.append(path)
    versions = set()
    for python in PYTHONS:
        proc = subprocess.run(
            [python, "-c", "import sys\nfor p in sys.argv[1:]: compile(open(p, 'rb').read().decode('utf-8'), "
             "'<string>', 'exec')\nprint('%d.%d' % sys.version_info[:2])", *paths],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, (python, proc.stderr)
        versions.add(proc.stdout.strip())
    assert len(versions) == len(PYTHONS) and all(v.startswith("3.") for v in versions), versions
    return True
