# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run policy cases against a post-auth script before it is loaded.

    python3 policy_harness.py SCRIPT CASES.json

The script is compiled and executed the way Access Server does it (from its text, as
``<string>``, with SUCCEED and FAIL in its namespace and ``pyovpn.plugin`` importable), then
each case calls its entry point with the authcred, attributes, authret and info that Access
Server would pass for that user, client and directory answer. HTTPS calls of the script (Duo,
endpoints) get the replies the case scripts, never the network: a script the collection composed
through its ``post_json``, any other script at the socket (``http.client``, ``urllib.request``, a
raw socket wrapped with ``ssl``), answered by a stand-in on the loopback whatever host, port and CA
file the script names. A script that reaches for a host the case scripts no reply for fails that
case, naming the host. For a script the collection did not compose, what a case's login saves
(``proplist_save``) is read back by the next case of the same user. Prints a JSON report and exits
0 when every case passed, 1 when one failed, 2 when the script cannot be loaded.

Runs on Python 3.6 and newer with the standard library only.
"""

import contextlib
import http.client
import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading
import traceback
import types
import urllib.parse

SUCCEED, FAIL = 0, 1
STATUS = {"SUCCEED": SUCCEED, "FAIL": FAIL}
# the first line of a script's header when the collection composed it (an own script's says "(own script)")
GENERATOR = "# ovpnas.fleet.generator: ovpnas.fleet"
RADIUS_NAMES = {"Framed-IP-Address": 8, "Filter-Id": 11, "Callback-Number": 19, "Class": 25, "Framed-Pool": 88}


def install_pyovpn():
    """Make `from pyovpn.plugin import *` work where Access Server's own package is absent."""
    try:
        from pyovpn import plugin
        global SUCCEED, FAIL
        SUCCEED, FAIL = plugin.SUCCEED, plugin.FAIL
        STATUS.update(SUCCEED=SUCCEED, FAIL=FAIL)
    except ImportError:
        package = types.ModuleType("pyovpn")
        plugin = types.ModuleType("pyovpn.plugin")
        plugin.SUCCEED, plugin.FAIL = SUCCEED, FAIL
        plugin.__all__ = ["SUCCEED", "FAIL"]
        package.plugin = plugin
        sys.modules["pyovpn"] = package
        sys.modules["pyovpn.plugin"] = plugin


class AuthRet(dict):
    """authret as Access Server passes it: a dict that also takes attributes (``authret.state = ...``)."""


class Ldap3Context:
    """Answers like an ldap3 Connection: the user's memberOf values, and the listed groups."""

    def __init__(self, user_dn, groups, uname_attr="uid"):
        self.user_dn = user_dn
        self.groups = groups
        self.response = []
        self.result = {"result": 0, "description": "success"}
        # the LDAP method's settings, as OpenVPN's own group-mapping script reads them
        self.authldap = types.SimpleNamespace(parms={"uname_attr": uname_attr})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def search(self, search_base, search_filter, search_scope="SUBTREE", attributes=None):
        self.response = [{"type": "searchResEntry", "dn": dn, "attributes": attrs}
                         for dn, attrs in answer(self.user_dn, self.groups, search_base, search_scope == "BASE")]
        return bool(self.response)


class PythonLdapContext(Ldap3Context):
    """Answers like a python-ldap LDAPObject (values are bytes)."""

    def search_s(self, base, scope, filterstr="(objectClass=*)", attrlist=None):
        return [(dn, {k: [v.encode("utf-8") for v in vals] for k, vals in attrs.items()})
                for dn, attrs in answer(self.user_dn, self.groups, base, scope == 0)]


def answer(user_dn, groups, base, base_scope):
    if base_scope:
        return [(user_dn, {"memberOf": list(groups)})] if base.lower() == user_dn.lower() else []
    return [(dn, {"cn": [dn.split(",", 1)[0].split("=", 1)[-1]]}) for dn in groups]


class CRState(dict):
    """The challenge/response state: dict-like, with the answer of the client's second login."""

    def __init__(self, answer_text=None):
        dict.__init__(self)
        self.answer = answer_text
        self.challenge = None
        self.expired = False

    def response(self):
        return self.answer

    def expire(self):
        # ends the transaction: nothing is kept for a next login, but the state stays readable
        # until the script returns
        self.expired = True

    def challenge_post_auth(self, authret, text, echo=False):
        self.challenge = {"text": text, "echo": bool(echo)}
        authret["status"] = FAIL
        return authret


def property_text(value):
    """A property value as Access Server stores it: booleans as "true"/"false", the rest as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def arguments(case, namespace, answering=False, saved=None):
    client = case.get("client") or {}
    web = bool(client.get("web", False))
    client_info = {str(k): str(v) for k, v in (client.get("info") or {}).items()}
    authcred = {"username": case.get("username", case["user"]), "client_ip_addr": client.get("ip", "203.0.113.10")}
    if client.get("hw_addr"):
        authcred["client_hw_addr"] = client["hw_addr"]
        client_info.setdefault("IV_HWADDR", client["hw_addr"])
    if client.get("platform"):
        client_info.setdefault("IV_PLAT", client["platform"])
    if client.get("version"):
        client_info.setdefault("UV_ASCLI_VER", client["version"])
    if client.get("static_response") is not None and not answering:
        authcred["static_response"] = client["static_response"]
    if namespace.get("RETAIN_PASSWORD") and client.get("password") is not None:
        authcred["password"] = client["password"]
    attributes = {"client_info": client_info, "vpn_auth": not web}
    if web:
        attributes["log_service_name"] = "WEB_CLIENT"
    else:
        attributes["reauth"] = bool(client.get("reauth", False))
    proplist = {"type": "user_connect"}
    # what an earlier case of this user saved, as Access Server keeps it; the case's own properties over it
    proplist.update(saved or {})
    proplist.update({str(k): property_text(v) for k, v in (case.get("properties") or {}).items()})
    authret = {"status": SUCCEED, "user": case["user"], "reason": "primary auth succeeded", "proplist": proplist}
    info = {"auth_method": case.get("auth_method", "local")}
    ldap = case.get("ldap")
    if ldap is not None:
        user_dn = ldap.get("user_dn", "uid=%s,ou=people,dc=example,dc=com" % case["user"])
        kind = PythonLdapContext if ldap.get("api") == "python-ldap" else Ldap3Context
        context = kind(user_dn, list(ldap.get("groups") or []), ldap.get("uname_attr", "uid"))
        info.update(user_dn=user_dn, ldap_context=context)
    if case.get("radius_reply") is not None:
        reply = {}
        for key, values in case["radius_reply"].items():
            number = int(key) if str(key).isdigit() else RADIUS_NAMES[key]
            reply[number] = [str(v) for v in (values if isinstance(values, list) else [values])]
        info["radius_reply"] = reply
    if case.get("saml_attr") is not None:
        info["saml_attr"] = case["saml_attr"]
    return authcred, attributes, authret, info


class ScriptedHttp:
    """Stands in for the script's post_json: the case's http_replies, never the network.

    Policy cases run on production servers: a Duo push or a call to a real endpoint must not
    happen there. A case scripts the replies by URL path, e.g.
    ``{"/auth/v2/preauth": {"stat": "OK", "response": {"result": "allow"}}}``; a reply may be
    ``{"status": 503}``, ``{"status": 200, "json": {...}}`` or ``"unavailable"``. A path the
    case does not script is unavailable.
    """

    def __init__(self, namespace):
        self.unavailable = namespace["Unavailable"]
        self.replies = {}

    def __call__(self, url, body, headers, ca_file="", timeout=5, proxy=""):
        path = urllib.parse.urlsplit(url).path or "/"
        reply = self.replies.get(path, "unavailable")
        if reply == "unavailable":
            raise self.unavailable("no reply for %s in this policy case" % path)
        if isinstance(reply, dict) and set(reply) <= {"status", "json"} and "status" in reply:
            if reply["status"] >= 500:
                raise self.unavailable("HTTP %d" % reply["status"])
            return reply["status"], reply.get("json")
        return 200, reply


class Network:
    """The network as a policy case scripts it: outbound connections answered from the case's ``http_replies``.

    Every connection a script opens (``socket.create_connection``, ``socket.connect``, ``http.client``,
    ``urllib.request``) goes to a plain HTTP stand-in on the loopback, and every TLS wrap of one returns it
    unwrapped, with a certificate that names the host the script asked for: the script's own CA file and
    host name checks pass, and nothing leaves the machine. A reply is found by host and path (a key like
    ``https://api-1.duosecurity.com/auth/v2/preauth`` or ``api-1.duosecurity.com/auth/v2/preauth``) or by path
    alone (``/auth/v2/preauth``, any host). A host the case has no reply for is refused and named.
    """

    def __init__(self):
        self.by_host = {}
        self.by_path = {}
        self.reached = []
        self.host = "localhost"
        network = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
                path = urllib.parse.urlsplit(self.path).path or "/"
                reply = network.reply(host, path)
                if reply is None or reply == "unavailable":
                    # as a server that does not answer: the connection closes without a reply
                    self.close_connection = True
                    return
                status, body = 200, reply
                if isinstance(reply, dict) and "status" in reply and set(reply) <= {"status", "json", "body"}:
                    status, body = int(reply["status"]), reply.get("json", reply.get("body", ""))
                data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = self.server.server_address
        thread = threading.Thread(target=self.server.serve_forever)
        thread.daemon = True
        thread.start()

    def script(self, replies):
        """The replies of one case."""
        self.by_host, self.by_path, self.reached = {}, {}, []
        for key, reply in (replies or {}).items():
            key = str(key)
            if key.startswith("/"):
                self.by_path[key] = reply
                continue
            parts = urllib.parse.urlsplit(key if "://" in key else "//" + key)
            self.by_host[((parts.hostname or "").lower(), parts.path or "/")] = reply

    def reply(self, host, path):
        if (host, path) in self.by_host:
            return self.by_host[(host, path)]
        return self.by_path.get(path)

    def knows(self, host):
        host = str(host).strip("[]").lower()
        return bool(self.by_path) or any(known == host for known, _path in self.by_host)

    def route(self, address):
        """Where a connection to ``address`` goes: the stand-in, or nowhere (the host is refused and named)."""
        host = address[0] if isinstance(address, tuple) and address else address
        if tuple(address[:2]) == self.address:
            return self.address
        if not self.knows(host):
            name = "%s:%s" % (host, address[1]) if isinstance(address, tuple) and len(address) > 1 else str(host)
            if name not in self.reached:
                self.reached.append(name)
            raise ConnectionRefusedError("the policy case scripts no reply for %s" % name)
        # the host a TLS wrap of this connection names in its certificate
        self.host = str(host).strip("[]")
        return self.address

    def install(self):
        """Route every connection of this process through ``route`` and unwrap its TLS."""
        network = self
        create_connection = socket.create_connection
        connect = socket.socket.connect
        connect_ex = socket.socket.connect_ex
        wrap = ssl.SSLContext.wrap_socket

        def routed_create_connection(address, *args, **kwargs):
            return create_connection(network.route(address), *args, **kwargs)

        def routed_connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                address = network.route(address)
            return connect(sock, address)

        def routed_connect_ex(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    address = network.route(address)
                except ConnectionRefusedError:
                    return 111
            return connect_ex(sock, address)

        def unwrapped(context_or_sock, sock=None, *args, **kwargs):
            sock = sock if isinstance(context_or_sock, ssl.SSLContext) else context_or_sock
            try:
                peer = sock.getpeername()[:2]
            except (OSError, AttributeError):
                peer = None
            if peer != network.address:
                return wrap(context_or_sock, sock, *args, **kwargs)
            return Unwrapped(sock, kwargs.get("server_hostname") or network.host)

        socket.create_connection = routed_create_connection
        socket.socket.connect = routed_connect
        socket.socket.connect_ex = routed_connect_ex
        http.client.HTTPConnection._create_connection = staticmethod(routed_create_connection)
        ssl.SSLContext.wrap_socket = unwrapped
        if hasattr(ssl, "wrap_socket"):
            ssl.wrap_socket = lambda sock, *args, **kwargs: Unwrapped(sock, network.host)


class Unwrapped:
    """A connection to the stand-in, as a TLS socket looks to a script: its certificate names ``host``."""

    def __init__(self, sock, host):
        self._sock = sock
        self._host = host or "localhost"

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def getpeercert(self, binary_form=False):
        if binary_form:
            return b""
        return {"subject": ((("commonName", self._host),),), "subjectAltName": (("DNS", self._host),),
                "notAfter": "Jan  1 00:00:00 2100 GMT"}

    def do_handshake(self, *args):
        return None

    def version(self):
        return "TLSv1.3"

    def cipher(self):
        return ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256)

    def selected_alpn_protocol(self):
        return None

    def unwrap(self):
        return self._sock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()
        return False


def run_case(namespace, case, network=None, saved=None):
    """One login; when the script asks a question and the case has an answer, the answering login too."""
    response = (case.get("client") or {}).get("response")
    if isinstance(namespace.get("post_json"), ScriptedHttp):
        namespace["post_json"].replies = dict(case.get("http_replies") or {})
    if network is not None:
        network.script(case.get("http_replies"))
    authret, save, crstate = call(namespace, arguments(case, namespace, saved=saved), CRState())
    if crstate.challenge and not crstate.expired and response is not None:
        # the client reconnects with the answer; the state the script kept comes along
        crstate.answer, crstate.challenge = str(response), None
        authret, save, crstate = call(namespace, arguments(case, namespace, answering=True, saved=saved), crstate)
    return authret, save, crstate


def call(namespace, args, crstate):
    """Call the script's entry point with (authcred, attributes, authret, info) as Access Server does."""
    entry = namespace.get("post_auth_cr") or namespace.get("post_auth")
    args = args[:2] + (AuthRet(args[2]),) + tuple(args[3:])
    call_args = args + (crstate,) if "post_auth_cr" in namespace else args
    outcome = {}

    def run():
        try:
            outcome["value"] = entry(*call_args)
        except BaseException as exc:  # noqa: BLE001 - Access Server fails the login on any exception
            outcome["error"] = "%s: %s" % (type(exc).__name__, exc)

    if namespace.get("SYNCHRONOUS"):
        run()
    else:
        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
    if "error" in outcome:
        authret = dict(args[2], status=FAIL, reason="post_auth raised %s" % outcome["error"])
        return authret, {}, crstate
    value = outcome.get("value")
    if isinstance(value, tuple) and len(value) == 2:
        authret, save = value
    else:
        authret, save = value, None
    # what Access Server does with a return that is not authret (and proplist_save)
    if not isinstance(authret, dict) or "status" not in authret:
        return dict(args[2], status=FAIL, reason="post_auth returned %s instead of authret"
                    % type(authret).__name__), {}, crstate
    if save is not None and not isinstance(save, dict):
        return dict(authret, status=FAIL, reason="post_auth returned a %s as proplist_save"
                    % type(save).__name__), {}, crstate
    return authret, save or {}, crstate


def check(case, authret, save, crstate):
    expect = case.get("expect") or {}
    problems = []
    status = "SUCCEED" if authret.get("status") == SUCCEED else "FAIL"
    if "status" in expect and expect["status"] != status:
        problems.append("status %s, expected %s (reason: %s)" % (status, expect["status"], authret.get("reason")))
    proplist = authret.get("proplist") or {}
    if "group" in expect and proplist.get("conn_group") != expect["group"]:
        problems.append("group %r, expected %r" % (proplist.get("conn_group"), expect["group"]))
    for name, value in (expect.get("properties") or {}).items():
        if proplist.get(name) != (None if value is None else property_text(value)):
            problems.append("property %s is %r, expected %r" % (name, proplist.get(name), value))
    for name, value in (expect.get("saved") or {}).items():
        if save.get(name) != (None if value is None else property_text(value)):
            problems.append("saved %s is %r, expected %r" % (name, save.get(name), value))
    for field in ("reason", "client_reason"):
        if field in expect and str(expect[field]) not in str(authret.get(field) or ""):
            problems.append("%s %r does not contain %r" % (field, authret.get(field), expect[field]))
    if "challenge" in expect and bool(crstate.challenge) != bool(expect["challenge"]):
        problems.append("challenge %r, expected %s" % (crstate.challenge, "one" if expect["challenge"] else "none"))
    return problems


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    install_pyovpn()
    with open(argv[1], "rb") as handle:
        text = handle.read().decode("utf-8")
    with open(argv[2], "rb") as handle:
        cases = json.loads(handle.read().decode("utf-8"))
    report = {"python": "%d.%d.%d" % sys.version_info[:3], "cases": [], "passed": 0, "failed": 0}
    namespace = {"__name__": "post_auth_script", "SUCCEED": SUCCEED, "FAIL": FAIL}
    # a script the collection composed states each case's properties in full; any other reads back what it saved
    composed = any(line.rstrip() == GENERATOR for line in text.split("\n")[:20])
    saved_by_user = {}
    network = Network()
    network.install()
    # what the script prints goes to the log on the server; here to stderr, not the report
    quiet = contextlib.redirect_stdout(sys.stderr)
    try:
        with quiet:
            exec(compile(text, "<string>", "exec"), namespace)
        if not callable(namespace.get("post_auth")) and not callable(namespace.get("post_auth_cr")):
            raise ValueError("the script defines neither post_auth nor post_auth_cr")
        if callable(namespace.get("post_json")) and "Unavailable" in namespace:
            namespace["post_json"] = ScriptedHttp(namespace)
    except Exception as exc:  # noqa: BLE001 - report whatever keeps the script from loading
        report["error"] = traceback.format_exc()
        report["summary"] = ["the script does not load: %s: %s" % (type(exc).__name__, exc)]
        print(json.dumps(report, indent=2, sort_keys=True))
        return 2
    for index, case in enumerate(cases):
        name = case.get("name") or "case %d" % (index + 1)
        try:
            user = str(case.get("user"))
            with contextlib.redirect_stdout(sys.stderr):
                authret, save, crstate = run_case(namespace, case, network,
                                                  None if composed else saved_by_user.get(user))
            if not composed and save:
                saved_by_user.setdefault(user, {}).update({str(k): property_text(v) for k, v in save.items()})
            problems = check(case, authret, save, crstate)
            problems += ["reached for %s, for which the case scripts no reply" % host for host in network.reached]
            result = {"name": name, "status": "SUCCEED" if authret.get("status") == SUCCEED else "FAIL",
                      "reason": authret.get("reason"), "client_reason": authret.get("client_reason"),
                      "group": (authret.get("proplist") or {}).get("conn_group"), "problems": problems}
        except Exception:  # noqa: BLE001 - a broken case is a failed case
            result = {"name": name, "problems": ["the case could not run: %s" % traceback.format_exc()]}
        report["cases"].append(result)
        report["failed" if result["problems"] else "passed"] += 1
    report["summary"] = ["%s: %s" % (case["name"], "; ".join(case["problems"]))
                         for case in report["cases"] if case["problems"]]
    print(json.dumps(report, indent=2, sort_keys=True))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
