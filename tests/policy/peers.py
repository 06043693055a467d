"""Loopback peers for the tests of Duo two-factor, custom authentication and challenge verification.

* ``make_certs(workdir)``: a throwaway PKI made with the openssl command line (a test CA, a server
  certificate for 127.0.0.1 and localhost, an unrelated CA with a certificate of its own, a
  certificate for the wrong name); returns a ``Certs`` of file paths.
* ``DuoStandIn``: a Duo Auth API v2 stand-in over HTTPS that verifies the signature of every request
  with duo_client's own ``sign()`` and answers from replies the tests script per user.
* ``HttpPeer``: a custom authentication endpoint (POST /auth) and a challenge verification endpoint
  (POST /verify) over HTTPS (or plain HTTP), with switches that make it slow or broken.
* ``down_url()``: a URL of a free port of 127.0.0.1 where nothing listens.

Each peer is an http.server.ThreadingHTTPServer in a daemon thread, bound to port 0 of 127.0.0.1 (the
kernel picks a free port: no race); TLS is negotiated in the request's own thread, so a client that
rejects the certificate does not hold up the others.  ``start()`` returns the peer, ``stop()`` shuts the
server down and closes its socket, ``reset()`` forgets what the tests set and what the peer recorded.
Peers print nothing: what they saw is in ``peer.requests`` (passwords included, in memory only).
"""

import base64
import binascii
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import Optional

LOOPBACK = "127.0.0.1"
OPENSSL_TIMEOUT = 60
# seconds a connection may stay idle (TLS handshake included) before a peer drops it
IDLE_TIMEOUT = 10


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def down_url(path="", scheme="https"):
    """A URL of a free port of 127.0.0.1: connections to it are refused."""
    return "%s://%s:%d%s" % (scheme, LOOPBACK, free_port(), path)


# The test PKI --------------------------------------------------------------------------------

OPENSSL_CNF = """\
# openssl configuration of the ovpnas.fleet peer tests (generated)
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = IP:127.0.0.1, DNS:localhost

[wrong_name]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = DNS:wrong.example
"""


class CertError(Exception):
    """openssl failed to make a key or a certificate."""


@dataclasses.dataclass(frozen=True)
class Certs:
    """File paths (PEM) of the test PKI; every key is an unencrypted RSA 2048 key."""

    workdir: str
    ca_file: str            # the test CA: trust this one
    ca_key: str
    server_cert: str        # signed by the test CA; IP:127.0.0.1, DNS:localhost
    server_key: str
    other_ca_file: str      # an unrelated CA
    other_ca_key: str
    other_cert: str         # signed by the unrelated CA; IP:127.0.0.1, DNS:localhost
    other_key: str
    wrong_name_cert: str    # signed by the test CA; DNS:wrong.example only
    wrong_name_key: str

    def server_context(self, cert=None, key=None):
        """A server-side SSLContext presenting ``cert``/``key`` (by default the good server certificate)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert or self.server_cert, key or self.server_key)
        return context

    def client_context(self, cafile=None):
        """A verifying client SSLContext that trusts the test CA (or ``cafile``)."""
        return ssl.create_default_context(cafile=cafile or self.ca_file)


def _openssl(workdir, *args):
    proc = subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=OPENSSL_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise CertError("openssl %s failed (%s): %s%s" % (args[0], proc.returncode, proc.stdout, proc.stderr))


def make_certs(workdir):
    """Make the test PKI in ``workdir`` with the openssl command line; return its ``Certs``."""
    workdir = str(workdir)
    os.makedirs(workdir, exist_ok=True)
    cnf = os.path.join(workdir, "openssl.cnf")
    with open(cnf, "w") as handle:
        handle.write(OPENSSL_CNF)

    def path(name):
        return os.path.join(workdir, name)

    def key(name):
        _openssl(workdir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path(name))
        return path(name)

    def authority(name, subject):
        ca_key = key(name + ".key")
        _openssl(workdir, "req", "-config", cnf, "-new", "-x509", "-sha256", "-days", "30", "-key", ca_key,
                 "-subj", subject, "-extensions", "ca", "-out", path(name + ".pem"))
        return path(name + ".pem"), ca_key

    def leaf(name, subject, section, ca_file, ca_key):
        leaf_key = key(name + ".key")
        _openssl(workdir, "req", "-config", cnf, "-new", "-sha256", "-key", leaf_key, "-subj", subject,
                 "-out", path(name + ".csr"))
        _openssl(workdir, "x509", "-req", "-sha256", "-days", "30", "-in", path(name + ".csr"),
                 "-CA", ca_file, "-CAkey", ca_key, "-set_serial", str(secrets.randbits(63)),
                 "-extfile", cnf, "-extensions", section, "-out", path(name + ".pem"))
        return path(name + ".pem"), leaf_key

    ca_file, ca_key = authority("ca", "/O=ovpnas.fleet tests/CN=ovpnas.fleet test CA")
    other_ca_file, other_ca_key = authority("other-ca", "/O=Elsewhere/CN=Unrelated test CA")
    server_cert, server_key = leaf("server", "/O=ovpnas.fleet tests/CN=localhost", "server", ca_file, ca_key)
    other_cert, other_key = leaf("other", "/O=Elsewhere/CN=localhost", "server", other_ca_file, other_ca_key)
    wrong_cert, wrong_key = leaf("wrong-name", "/O=ovpnas.fleet tests/CN=wrong.example", "wrong_name",
                                 ca_file, ca_key)
    return Certs(
        workdir=workdir, ca_file=ca_file, ca_key=ca_key, server_cert=server_cert, server_key=server_key,
        other_ca_file=other_ca_file, other_ca_key=other_ca_key, other_cert=other_cert, other_key=other_key,
        wrong_name_cert=wrong_cert, wrong_name_key=wrong_key,
    )


# The HTTP(S) server under every peer -------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1:0 whose accepted sockets are wrapped in TLS (when a context is given)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, peer, handler, context):
        self.peer = peer
        self.context = context
        super().__init__((LOOPBACK, 0), handler)

    def server_bind(self):
        # HTTPServer.server_bind would look the name of 127.0.0.1 up (socket.getfqdn): not needed here
        socketserver.TCPServer.server_bind(self)
        self.server_name = LOOPBACK
        self.server_port = self.server_address[1]

    def get_request(self):
        sock, address = self.socket.accept()
        if self.context is not None:
            # the handshake happens in the request's thread (_Handler.setup), not in the accept loop
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address):
        # failed handshakes, clients that went away: remembered, never printed
        self.peer.errors.append(repr(sys.exc_info()[1]))


class _Handler(http.server.BaseHTTPRequestHandler):
    """Common plumbing: TLS handshake with a timeout, body reading, JSON replies, no logging."""

    timeout = IDLE_TIMEOUT
    server_version = "ovpnas-fleet-test-peer"
    sys_version = ""

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as error:
                self.server.peer.tls_errors.append(str(error))
                raise

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_bytes(self, status, body, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, payload, headers=()):
        self.send_bytes(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def hang_up(self):
        """Close the connection without a reply."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Peer:
    """A server in a daemon thread: start(), stop(), the port, the URL; sleeps that stop() and reset() cut short."""

    handler = _Handler

    def __init__(self, context=None):
        self.context = context
        self.httpd = None
        self.thread = None
        self.port = None
        self.errors = []        # exceptions of request threads (handshake failures, clients gone)
        self.tls_errors = []    # failed TLS handshakes, as text
        self._wake = threading.Event()
        self._lock = threading.Lock()

    @property
    def scheme(self):
        return "https" if self.context is not None else "http"

    def url_for(self, path="", host=LOOPBACK):
        """The URL of ``path`` on this peer, through ``host`` (127.0.0.1 or localhost)."""
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    @property
    def url(self):
        return self.url_for()

    def start(self):
        self._wake = threading.Event()
        self.httpd = _Server(self, self.handler, self.context)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="%s-%d" % (type(self).__name__, self.port), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Shut the server down, close its socket, wake the requests that sleep; wait for the thread."""
        self._wake.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None

    @property
    def running(self):
        return self.thread is not None and self.thread.is_alive()

    def sleep(self, seconds):
        """Sleep in a request thread; reset() and stop() end the sleep early."""
        if seconds:
            self._wake.wait(seconds)

    def _wake_sleepers(self):
        self._wake.set()
        self._wake = threading.Event()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


# Duo Auth API v2 -----------------------------------------------------------------------------------

DUO_IKEY = "DIPOLICYTESTS0000001"
DUO_SKEY = "policytestsduoskey0000000000000000000000"
DUO_MAX_SKEW = 300
DUO_DEVICES = ({"device": "DP1", "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"],
                "type": "phone", "number": "XXX-XXX-0100", "display_name": "Test phone (XXX-XXX-0100)"},)

PREAUTH_RESULTS = ("auth", "allow", "deny", "enroll")
PUSH_RESULTS = ("allow", "deny", "timeout")
SMS_RESULTS = ("sent", "deny")
DUO_BEHAVIOURS = (None, "timeout", "error500", "garbage")
PREAUTH_MESSAGES = {
    "auth": "Account is active",
    "allow": "Allowing unknown user",
    "deny": "Your account is disabled",
    "enroll": "Enroll an authentication device to proceed",
}
PUSH_REPLIES = {
    "allow": {"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."},
    "deny": {"result": "deny", "status": "deny", "status_msg": "Login request denied."},
    "timeout": {"result": "deny", "status": "timeout", "status_msg": "Login timed out."},
}
PASSCODE_ALLOW = {"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."}
PASSCODE_DENY = {"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."}
SMS_SENT = {"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."}
SMS_DENY = {"result": "deny", "status": "deny", "status_msg": "Unable to send SMS passcodes."}

# stat FAIL replies: (HTTP status, code, message)
DUO_MISSING_CREDENTIALS = (401, 40101, "Missing request credentials")
DUO_BAD_IKEY = (401, 40102, "Invalid integration key in request credentials")
DUO_BAD_SIGNATURE = (401, 40103, "Invalid signature in request credentials")
DUO_BAD_DATE = (401, 40105, "Request date missing or too far from the server's clock")  # the stand-in's wording
DUO_MISSING_PARAMETER = (400, 40001, "Missing required request parameters")
DUO_INVALID_PARAMETER = (400, 40002, "Invalid request parameters")
DUO_NOT_FOUND = (404, 40401, "Resource not found")


@dataclasses.dataclass
class DuoUser:
    """What the stand-in answers for one user name (see DuoStandIn.script)."""

    preauth: str = "auth"                 # auth | allow | deny | enroll
    push: str = "allow"                   # allow | deny | timeout (Duo's "Login timed out."), also factor auto
    phone: str = "allow"                  # allow | deny | timeout
    passcodes: frozenset = frozenset()    # always valid
    sms: str = "sent"                     # sent | deny
    sms_passcodes: frozenset = frozenset()  # valid once factor sms answered "sent"
    devices: tuple = DUO_DEVICES
    status_msg: Optional[str] = None      # preauth status_msg (default: PREAUTH_MESSAGES)
    enroll_portal_url: str = "https://127.0.0.1/portal?code=policy-tests"
    behaviour: Optional[str] = None       # None | timeout | error500 | garbage, for this user's preauth/auth
    delay: float = 0.0                    # seconds "timeout" sleeps before answering
    sms_sent: bool = False                # state: an SMS was sent


@dataclasses.dataclass
class DuoRequest:
    """One request the stand-in received."""

    method: str
    path: str
    params: dict            # JSON body (sig v5), or form/query parameters (one value: str; several: list)
    headers: dict           # as received
    body: str               # raw body text
    query: str              # raw query string
    verified: Optional[bool] = None   # signature matched (None: /auth/v2/ping, not signed)
    sig_version: Optional[int] = None  # 5 or 2, when verified
    digest: Optional[str] = None       # "sha512" or "sha1", when verified
    signed_host: Optional[str] = None  # the host string of the matching signature
    date_ok: Optional[bool] = None
    reason: Optional[str] = None       # why the request was rejected (401), if it was
    status: Optional[int] = None       # the HTTP status of the reply (None: no reply yet, or none sent)

    @property
    def username(self):
        return self.params.get("username")


def _flatten(parsed):
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


class _DuoHandler(_Handler):
    def do_GET(self):
        self.server.peer.serve(self, "GET")

    def do_POST(self):
        self.server.peer.serve(self, "POST")


class DuoStandIn(_Peer):
    """Duo Auth API v2 over HTTPS on 127.0.0.1, with the test CA's server certificate.

    Endpoints: POST /auth/v2/preauth, POST /auth/v2/auth (async too), GET /auth/v2/auth_status,
    GET|POST /auth/v2/check (signed) and GET /auth/v2/ping (not signed).  Every signed request is
    verified with ``duo_client.client.sign`` against ``ikey``/``skey``, the request's Date header, and
    the Host header (as sent, "localhost:PORT", and without the port, "localhost", the host duo_client
    signs when given host= and port= separately); sig v5 (HMAC-SHA512; POST: params {} and the raw
    JSON body; GET: the query parameters and an empty body; the X-Duo-* headers) and sig v2 (form or
    query parameters; HMAC-SHA1 or HMAC-SHA512) are tried in turn.  A Date more than ``max_skew``
    seconds off is rejected.  Users nobody scripted get preauth "enroll" (Duo's default policy).
    """

    handler = _DuoHandler

    def __init__(self, certs, ikey=DUO_IKEY, skey=DUO_SKEY, max_skew=DUO_MAX_SKEW):
        super().__init__(certs.server_context())
        self.certs = certs
        self.ca_file = certs.ca_file
        self.ikey = ikey
        self.skey = skey
        self.max_skew = max_skew
        self.requests = []
        self.users = {}
        self.behaviour = None
        self.behaviour_delay = 0.0
        self.transactions = {}

    @property
    def host(self):
        """The API host as "127.0.0.1:PORT" (what a client that takes host:port signs and sends as Host)."""
        return "%s:%d" % (LOOPBACK, self.port)

    def reset(self):
        """Forget the scripts, the recorded requests, the global behaviour; wake sleeping requests."""
        with self._lock:
            self.users = {}
            self.behaviour = None
            self.behaviour_delay = 0.0
            self.transactions = {}
            del self.requests[:]
            del self.errors[:]
            del self.tls_errors[:]
        self._wake_sleepers()

    def script(self, username, **fields):
        """Script the replies for ``username``: preauth=, push=, phone=, passcodes=, sms=, sms_passcodes=,
        devices=, status_msg=, enroll_portal_url=, behaviour=, delay= (see DuoUser); returns the DuoUser."""
        for name in ("passcodes", "sms_passcodes"):
            if name in fields:
                fields[name] = frozenset([fields[name]] if isinstance(fields[name], str) else fields[name])
        if "devices" in fields:
            fields["devices"] = tuple(fields["devices"])
        user = DuoUser(**fields)
        _check_choice("preauth", user.preauth, PREAUTH_RESULTS)
        _check_choice("push", user.push, PUSH_RESULTS)
        _check_choice("phone", user.phone, PUSH_RESULTS)
        _check_choice("sms", user.sms, SMS_RESULTS)
        _check_choice("behaviour", user.behaviour, DUO_BEHAVIOURS)
        with self._lock:
            self.users[username] = user
        return user

    def behave(self, behaviour, delay=0.0):
        """Make every request (ping and check included) time out (sleep ``delay`` s), fail with HTTP 500, or
        get a 200 that is not JSON: behave("timeout", 5) | behave("error500") | behave("garbage"); behave(None)."""
        _check_choice("behaviour", behaviour, DUO_BEHAVIOURS)
        self.behaviour = behaviour
        self.behaviour_delay = delay

    def verified_requests(self, path=None):
        """The requests that carried a good signature (of ``path``, if given)."""
        return [r for r in self.requests if r.verified and (path is None or r.path == path)]

    def last(self, path=None):
        """The last request (of ``path``, if given)."""
        matching = [r for r in self.requests if path is None or r.path == path]
        return matching[-1] if matching else None

    # request handling

    def serve(self, handler, method):
        split = urllib.parse.urlsplit(handler.path)
        raw = handler.read_body()
        body = raw.decode("utf-8", errors="replace")
        headers = dict(handler.headers.items())
        query_params = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        params = _flatten(query_params)
        if method == "POST":
            if content_type == "application/json":
                try:
                    params = json.loads(body) if body else {}
                except ValueError:
                    params = {}
            else:
                params = _flatten(urllib.parse.parse_qs(body, keep_blank_values=True))
        if not isinstance(params, dict):
            params = {}
        request = DuoRequest(method=method, path=split.path, params=params, headers=headers, body=body,
                             query=split.query)
        if split.path != "/auth/v2/ping":
            self._verify(request, handler, query_params)
        self.requests.append(request)

        behaviour, delay = self.behaviour, self.behaviour_delay
        user = self.users.get(params.get("username")) if split.path in ("/auth/v2/preauth", "/auth/v2/auth") \
            else None
        if behaviour is None and user is not None and user.behaviour is not None:
            behaviour, delay = user.behaviour, user.delay
        if behaviour == "timeout":
            self.sleep(delay)
        elif behaviour == "error500":
            request.status = 500
            handler.send_bytes(500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
            return
        elif behaviour == "garbage":
            request.status = 200
            handler.send_bytes(200, b"<html>this is not JSON{", "text/html")
            return

        if request.verified is False or request.date_ok is False:
            status, payload = _duo_fail(*self._rejection(request))
        else:
            status, payload = self._answer(method, split.path, params)
        request.status = status
        handler.send_json(status, payload)

    def _rejection(self, request):
        return {
            "missing credentials": DUO_MISSING_CREDENTIALS,
            "wrong ikey": DUO_BAD_IKEY,
            "bad date": DUO_BAD_DATE,
        }.get(request.reason, DUO_BAD_SIGNATURE)

    def _verify(self, request, handler, query_params):
        """Fill in verified/sig_version/signed_host/date_ok/reason of ``request``."""
        authorization = handler.headers.get("Authorization") or ""
        date = handler.headers.get("Date") or ""
        if not authorization.startswith("Basic "):
            request.verified, request.reason = False, "missing credentials"
            return
        try:
            ikey = base64.b64decode(authorization[6:], validate=True).decode("utf-8").split(":", 1)[0]
        except (binascii.Error, ValueError):
            request.verified, request.reason = False, "bad signature"
            return
        if not hmac.compare_digest(ikey.encode("utf-8"), self.ikey.encode("utf-8")):
            request.verified, request.reason = False, "wrong ikey"
            return
        match = self._signature_match(request, handler, authorization, date, query_params)
        if match is None:
            request.verified, request.reason = False, "bad signature"
            return
        request.verified = True
        request.sig_version, request.digest, request.signed_host = match
        request.date_ok = _date_within(date, self.max_skew)
        if not request.date_ok:
            request.reason = "bad date"

    def _signature_match(self, request, handler, authorization, date, query_params):
        """(sig_version, digest name, host) of the first signature that matches the Authorization header, or None."""
        from duo_client.client import sign

        host_header = handler.headers.get("Host") or self.host
        hosts = [host_header]
        bare = host_header.rsplit(":", 1)[0] if host_header.rsplit(":", 1)[-1].isdigit() else host_header
        if bare != host_header:
            hosts.append(bare)
        x_duo = {name: value for name, value in handler.headers.items() if name.lower().startswith("x-duo-")}
        in_body = request.method in ("POST", "PUT", "PATCH")
        form_params = urllib.parse.parse_qs(request.body, keep_blank_values=True) if in_body else query_params
        attempts = [
            (5, {} if in_body else query_params, request.body, hashlib.sha512, x_duo),
            (2, form_params, None, hashlib.sha1, None),
            (2, form_params, None, hashlib.sha512, None),
        ]
        expected = authorization.encode("utf-8")
        for host in hosts:
            for sig_version, params, body, digestmod, additional in attempts:
                try:
                    signature = sign(self.ikey, self.skey, request.method, host, request.path, date, sig_version,
                                     params, body=body, digestmod=digestmod, additional_headers=additional)
                except (ValueError, TypeError, AttributeError):
                    continue
                if hmac.compare_digest(signature.encode("utf-8"), expected):
                    return sig_version, digestmod().name, host
        return None

    def _answer(self, method, path, params):
        """(HTTP status, reply) of a verified request."""
        now = int(time.time())
        if path == "/auth/v2/ping" and method == "GET":
            return 200, {"stat": "OK", "response": {"time": now}}
        if path == "/auth/v2/check" and method in ("GET", "POST"):
            return 200, {"stat": "OK", "response": {"time": now}}
        if path == "/auth/v2/preauth" and method == "POST":
            return self._preauth(params)
        if path == "/auth/v2/auth" and method == "POST":
            return self._auth(params)
        if path == "/auth/v2/auth_status" and method == "GET":
            reply = self.transactions.get(params.get("txid"))
            if reply is None:
                return _duo_fail(*DUO_INVALID_PARAMETER, detail="txid")
            return 200, {"stat": "OK", "response": reply}
        return _duo_fail(*DUO_NOT_FOUND)

    def _user(self, params):
        username = params.get("username") or params.get("user_id")
        if not username:
            return None
        return self.users.get(username) or DuoUser(preauth="enroll")

    def _preauth(self, params):
        user = self._user(params)
        if user is None:
            return _duo_fail(*DUO_MISSING_PARAMETER, detail="username")
        response = {"result": user.preauth, "status_msg": user.status_msg or PREAUTH_MESSAGES[user.preauth]}
        if user.preauth == "auth":
            response["devices"] = [dict(device) for device in user.devices]
        elif user.preauth == "enroll":
            response["enroll_portal_url"] = user.enroll_portal_url
        return 200, {"stat": "OK", "response": response}

    def _auth(self, params):
        user = self._user(params)
        if user is None:
            return _duo_fail(*DUO_MISSING_PARAMETER, detail="username")
        factor = params.get("factor")
        with self._lock:
            if user.preauth in ("deny", "enroll"):
                reply = {"result": "deny", "status": "deny",
                         "status_msg": user.status_msg or PREAUTH_MESSAGES[user.preauth]}
            elif user.preauth == "allow":
                reply = {"result": "allow", "status": "bypass", "status_msg": PREAUTH_MESSAGES["allow"]}
            elif factor in ("push", "auto"):
                reply = dict(PUSH_REPLIES[user.push])
            elif factor == "phone":
                reply = dict(PUSH_REPLIES[user.phone])
            elif factor == "passcode":
                passcode = params.get("passcode")
                if passcode is None:
                    return _duo_fail(*DUO_MISSING_PARAMETER, detail="passcode")
                good = passcode in user.passcodes or (user.sms_sent and passcode in user.sms_passcodes)
                reply = dict(PASSCODE_ALLOW if good else PASSCODE_DENY)
            elif factor == "sms":
                if user.sms == "sent":
                    user.sms_sent = True
                    reply = dict(SMS_SENT)
                else:
                    reply = dict(SMS_DENY)
            else:
                return _duo_fail(*DUO_INVALID_PARAMETER, detail="factor")
            if str(params.get("async", "0")).lower() in ("1", "true"):
                txid = secrets.token_hex(16)
                self.transactions[txid] = reply
                return 200, {"stat": "OK", "response": {"txid": txid}}
        return 200, {"stat": "OK", "response": reply}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError("%s must be one of %s, not %r" % (name, choices, value))


def _duo_fail(status, code, message, detail=None):
    payload = {"stat": "FAIL", "code": code, "message": message}
    if detail is not None:
        payload["message_detail"] = detail
    return status, payload


def _date_within(date, max_skew):
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return False
    if when is None:
        return False
    if when.tzinfo is None:
        # "-0000" (what email.utils.formatdate() writes): UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return abs(when.timestamp() - time.time()) <= max_skew


@dataclasses.dataclass
class BadTlsPeers:
    """HTTPS peers a client that trusts only the test CA must reject."""

    other_ca: "HttpPeer"      # a certificate for 127.0.0.1 and localhost, signed by an unrelated CA
    wrong_name: "HttpPeer"    # signed by the test CA, for DNS:wrong.example only

    @property
    def peers(self):
        return (self.other_ca, self.wrong_name)

    def reset(self):
        for peer in self.peers:
            peer.reset()

    def stop(self):
        for peer in self.peers:
            peer.stop()


# Custom authentication and challenge verification ---------------------------------------------------

PEER_USERS = {
    "alice": ("alice-pw", ("vpn-admins", "vpn-users")),
    "bob": ("bob-pw", ("engineering", "vpn-users")),
    "carol": ("carol-pw", ()),
}
PEER_CHALLENGES = {"alice": ("123456",), "bob": ("654321",)}
PEER_BEHAVIOURS = (None, "slow", "status", "garbage", "close")


@dataclasses.dataclass
class PeerRequest:
    """One request an HttpPeer received (the password stays here, in memory: never print it)."""

    method: str
    path: str
    headers: dict
    body: str
    json: object = None     # the parsed body, or None
    status: Optional[int] = None  # the HTTP status of the reply (None: no reply sent)

    @property
    def username(self):
        return self.json.get("username") if isinstance(self.json, dict) else None


class _PeerHandler(_Handler):
    def do_GET(self):
        self.server.peer.serve(self, "GET")

    def do_POST(self):
        self.server.peer.serve(self, "POST")


class HttpPeer(_Peer):
    """A custom authentication endpoint and a challenge verification endpoint.

    POST /auth   {"username", "password", ...} -> 200 {"authenticated": true, "groups": [...]} for a user of
                 ``users`` (name -> (password, groups)) with the right password, else 200
                 {"authenticated": false}; when ``token`` is set, requests without "Authorization:
                 Bearer <token>" get 401.
    POST /verify {"username", "response"} -> 200 {"valid": true|false} against ``challenges``
                 (name -> the valid responses); the same token check.
    A body that is not a JSON object gets 400, another path 404, another method 405.
    ``behave()`` makes it slow, answer 500/502/503, answer garbage, or hang up.
    Over HTTPS when given a certificate and key (``certfile``/``keyfile``), plain HTTP otherwise.
    """

    handler = _PeerHandler

    def __init__(self, certfile=None, keyfile=None, token=None):
        context = None
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
        super().__init__(context)
        self.requests = []
        self.token = token
        self._default_token = token
        self.users = {}
        self.challenges = {}
        self.behaviour = None
        self.reset()

    @property
    def auth_url(self):
        return self.url_for("/auth")

    @property
    def verify_url(self):
        return self.url_for("/verify")

    def reset(self):
        """Back to the default users and challenges, the token given to __init__, normal behaviour; no records."""
        with self._lock:
            self.users = {name: (password, list(groups)) for name, (password, groups) in PEER_USERS.items()}
            self.challenges = {name: set(responses) for name, responses in PEER_CHALLENGES.items()}
            self.token = self._default_token
            self.behaviour = None
            del self.requests[:]
            del self.errors[:]
            del self.tls_errors[:]
        self._wake_sleepers()

    def set_user(self, name, password, groups=()):
        self.users[name] = (password, list(groups))

    def set_challenge(self, name, *responses):
        """``responses`` are the valid answers of ``name`` (none: every answer is wrong)."""
        self.challenges[name] = set(responses)

    def behave(self, mode=None, seconds=None, status=None, path=None):
        """Change how the peer answers (every path, or only ``path``) until reset():

        behave("slow", seconds=N)   sleep N s (default 5), then answer normally
        behave("status", status=S)  answer HTTP S (500, 502, 503, ...) with a short text body
        behave("garbage")           answer 200 with a body that is not JSON
        behave("close")             close the connection without a reply
        behave(None)                answer normally
        ``seconds`` also delays "status", "garbage" and "close".
        """
        _check_choice("mode", mode, PEER_BEHAVIOURS)
        if mode is None:
            self.behaviour = None
            return
        if mode == "status" and status is None:
            raise ValueError('behave("status") needs status=')
        if seconds is None:
            seconds = 5 if mode == "slow" else 0
        self.behaviour = {"mode": mode, "seconds": seconds, "status": status, "path": path}

    def last(self, path=None):
        matching = [r for r in self.requests if path is None or r.path == path]
        return matching[-1] if matching else None

    def serve(self, handler, method):
        path = urllib.parse.urlsplit(handler.path).path
        body = handler.read_body().decode("utf-8", errors="replace")
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        request = PeerRequest(method=method, path=path, headers=dict(handler.headers.items()), body=body,
                              json=document)
        self.requests.append(request)

        behaviour = self.behaviour
        if behaviour is not None and behaviour["path"] in (None, path):
            self.sleep(behaviour["seconds"])
            if behaviour["mode"] == "close":
                handler.hang_up()
                return
            if behaviour["mode"] == "status":
                request.status = behaviour["status"]
                text = http.server.BaseHTTPRequestHandler.responses.get(behaviour["status"], ("Error",))[0]
                handler.send_bytes(request.status, ("%d %s\n" % (request.status, text)).encode(), "text/plain")
                return
            if behaviour["mode"] == "garbage":
                request.status = 200
                handler.send_bytes(200, b"<html><body>Service Unavailable{{ not json", "text/html")
                return

        status, payload, headers = self._answer(method, path, handler.headers.get("Authorization"), document)
        request.status = status
        handler.send_json(status, payload, headers)

    def _answer(self, method, path, authorization, document):
        if path not in ("/auth", "/verify"):
            return 404, {"error": "not found"}, ()
        if method != "POST":
            return 405, {"error": "method not allowed"}, (("Allow", "POST"),)
        if self.token is not None:
            expected = ("Bearer %s" % self.token).encode("utf-8")
            if not hmac.compare_digest((authorization or "").encode("utf-8"), expected):
                return 401, {"error": "unauthorized"}, (("WWW-Authenticate", 'Bearer realm="policy-tests"'),)
        if not isinstance(document, dict):
            return 400, {"error": "a JSON object is expected"}, ()
        username = document.get("username")
        if path == "/auth":
            password = document.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                return 400, {"error": "username and password are required"}, ()
            known = self.users.get(username)
            if known is not None and hmac.compare_digest(known[0].encode("utf-8"), password.encode("utf-8")):
                return 200, {"authenticated": True, "groups": list(known[1])}, ()
            return 200, {"authenticated": False}, ()
        response = document.get("response")
        if not isinstance(username, str) or not isinstance(response, str):
            return 400, {"error": "username and response are required"}, ()
        return 200, {"valid": response in self.challenges.get(username, ())}, ()
