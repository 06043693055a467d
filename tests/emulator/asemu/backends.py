"""The LDAP and RADIUS primary authentication methods, against real servers.

Access Server's flow, as far as it is known:

* LDAP: bind as ``auth.ldap.0.bind_dn`` (anonymously when it is unset), search
  ``auth.ldap.0.users_base_dn`` (subtree) for ``(<uname_attr>=<user>)``, and
  ``auth.ldap.0.add_req`` when set; exactly one entry must match; bind as that
  entry with the user's password.  The post-auth script gets ``user_dn``,
  ``search_base`` and ``ldap_context``, a connection bound as the service
  account and usable as ``with info['ldap_context'] as l:`` -- an
  ``ldap3.Connection`` (AS 2.8 and later) or a python-ldap ``LDAPObject``
  (earlier versions), selected by the emulator setting ``ldap_api``.
* RADIUS: PAP Access-Request to ``auth.radius.0.server.N``; the attributes of
  an Access-Accept reach the script as ``info['radius_reply']``:
  ``{attribute number: [text values]}``.

ldap3, python-ldap and pyrad are imported only when a login needs them: the
rest of the emulator runs on the standard library alone.  Servers are tried
in the order of their index (``server.0``, ``server.1``, ...) while they are
unreachable.
"""

import math
import os
import socket
import struct

RADIUS_DICTIONARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "radius.dictionary")
LDAP_APIS = ("ldap3", "python-ldap")
LDAP_DEFAULT_TIMEOUT = 4
RADIUS_DEFAULT_PORT = 1812
RADIUS_DEFAULT_TIMEOUT = 3
RADIUS_RETRIES = 3
# what authcli sends as NAS-Identifier
NAS_IDENTIFIER = "OpenVPN-AS"


class Result(object):
    """The outcome of one primary authentication."""

    def __init__(self, ok, reason, user=None, info=None):
        self.ok = ok
        self.reason = reason
        self.user = user
        self.info = info or {}


class _Unreachable(Exception):
    """The server cannot be reached: try the next one."""


def _number(text, default, kind=int):
    try:
        return kind(str(text).strip())
    except (TypeError, ValueError):
        return default


def _indexed(config, prefix):
    """The indexes N of the keys ``<prefix>N.host`` that are set, in numeric order."""
    indexes = set()
    for key, value in config.items():
        if key.startswith(prefix) and key.endswith(".host") and value.strip():
            index = key[len(prefix):-len(".host")]
            if index.isdigit():
                indexes.add(int(index))
    return sorted(indexes)


# LDAP -----------------------------------------------------------------------------------------

def escape_filter(value):
    """Escape a value for an LDAP search filter (RFC 4515)."""
    out = []
    for char in value:
        if char in "\\*()\x00":
            out.append("\\%02x" % ord(char))
        else:
            out.append(char)
    return "".join(out)


def _split_host(host, port_key):
    """(host, port or None) from ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    host = host.strip()
    port = None
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1:]
            host = host[1:end]
            if rest.startswith(":"):
                port = _number(rest[1:], None)
    elif host.count(":") == 1:
        host, text = host.split(":", 1)
        port = _number(text, None)
    if port is None and port_key:
        port = _number(port_key, None)
    return host, port


class LdapSettings(object):
    """The auth.ldap.0.* configuration."""

    def __init__(self, config):
        prefix = "auth.ldap.0."
        self.use_ssl = config.get(prefix + "use_ssl", "never").strip().lower() or "never"
        self.ssl_verify = config.get(prefix + "ssl_verify", "never").strip().lower() or "never"
        self.bind_dn = config.get(prefix + "bind_dn", "")
        self.bind_pw = config.get(prefix + "bind_pw", "")
        self.base = config.get(prefix + "users_base_dn", "")
        self.uname_attr = config.get(prefix + "uname_attr", "").strip() or "uid"
        self.add_req = config.get(prefix + "add_req", "").strip()
        self.timeout = _number(config.get(prefix + "timeout"), LDAP_DEFAULT_TIMEOUT, float)
        self.servers = []
        for index in _indexed(config, prefix + "server."):
            key = "%sserver.%d." % (prefix, index)
            host, port = _split_host(config[key + "host"], config.get(key + "port"))
            self.servers.append((host, port))

    def ssl_modes(self):
        """Whether to use TLS (ldaps), per attempt: always, never, adaptive (TLS, then plain)."""
        if self.use_ssl == "always":
            return [True]
        if self.use_ssl == "adaptive":
            return [True, False]
        return [False]

    def uri(self, host, port, ssl):
        port = port or (636 if ssl else 389)
        if ":" in host:
            host = "[%s]" % host
        return "%s://%s:%d" % ("ldaps" if ssl else "ldap", host, port)

    def plain_filter(self, username):
        return "(%s=%s)" % (self.uname_attr, escape_filter(username))

    def user_filter(self, username):
        requirement = self.requirement()
        if requirement:
            return "(&%s%s)" % (self.plain_filter(username), requirement)
        return self.plain_filter(username)

    def requirement(self):
        if not self.add_req:
            return ""
        if self.add_req.startswith("("):
            return self.add_req
        return "(%s)" % self.add_req


class _Ldap3(object):
    """The ldap3 flavour: ldap3.Connection objects."""

    def __init__(self, settings):
        import ldap3
        from ldap3.core import exceptions

        self.ldap3 = ldap3
        self.exceptions = exceptions
        self.settings = settings
        self.unreachable = (exceptions.LDAPCommunicationError, exceptions.LDAPSocketOpenError,
                            exceptions.LDAPSessionTerminatedByServerError, exceptions.LDAPSocketReceiveError)

    def _server(self, uri):
        tls = None
        if uri.startswith("ldaps:"):
            import ssl

            verify = ssl.CERT_NONE if self.settings.ssl_verify == "never" else ssl.CERT_REQUIRED
            tls = self.ldap3.Tls(validate=verify)
        return self.ldap3.Server(uri, get_info=self.ldap3.NONE, tls=tls, connect_timeout=self.settings.timeout)

    def connection(self, uri, dn, password, bind=True):
        """A connection (bound unless ``bind`` is false); raises _Unreachable or returns (conn, error)."""
        conn = self.ldap3.Connection(
            self._server(uri), user=dn or None, password=password or None, raise_exceptions=False,
            # ldap3 packs receive_timeout into SO_RCVTIMEO: whole seconds only
            receive_timeout=max(1, math.ceil(self.settings.timeout)),
        )
        if not bind:
            return conn, None
        try:
            if conn.bind():
                return conn, None
        except self.unreachable as exc:
            raise _Unreachable("%s: %s" % (uri, exc)) from exc
        except self.exceptions.LDAPException as exc:
            return None, str(exc)
        error = conn.result.get("description") or conn.last_error or "bind failed"
        conn.unbind()
        return None, error

    def search(self, conn, base, filterstr, attribute):
        """[(dn, [values of attribute])] of the entries that match."""
        try:
            conn.search(base, filterstr, search_scope=self.ldap3.SUBTREE, attributes=[attribute], size_limit=2)
        except self.unreachable as exc:
            raise _Unreachable(str(exc)) from exc
        found = []
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            values = []
            for name, value in (entry.get("raw_attributes") or {}).items():
                if name.lower() == attribute.lower():
                    values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value]
            found.append((entry["dn"], values))
        return found

    def close(self, conn):
        try:
            conn.unbind()
        except self.exceptions.LDAPException:
            pass


class PythonLdapContext(object):
    """info['ldap_context'] of the python-ldap flavour.

    ``with ctx as l:`` yields a python-ldap ``LDAPObject`` bound as the
    service account (connecting again if a previous ``with`` block ended) and
    unbinds it when the block ends.  Attribute access outside a ``with`` block
    is passed on to the LDAPObject.
    """

    def __init__(self, backend, uri, dn, password, conn=None):
        self._backend = backend
        self._uri = uri
        self._dn = dn
        self._password = password
        self._conn = conn

    def _connected(self):
        if self._conn is None:
            self._conn = self._backend.bound(self._uri, self._dn, self._password)
        return self._conn

    def __enter__(self):
        return self._connected()

    def __exit__(self, *exc):
        self.close()
        return False

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._connected(), name)

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            self._backend.close(conn)

    def __repr__(self):
        return "<PythonLdapContext %s as %s>" % (self._uri, self._dn or "anonymous")


class _PythonLdap(object):
    """The python-ldap flavour: ldap.ldapobject.LDAPObject objects."""

    def __init__(self, settings):
        import ldap

        self.ldap = ldap
        self.settings = settings
        self.unreachable = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR)

    def _initialize(self, uri):
        ldap = self.ldap
        conn = ldap.initialize(uri)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.settings.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.settings.timeout)
        if uri.startswith("ldaps:"):
            if self.settings.ssl_verify == "never":
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_NEVER)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        return conn

    def bound(self, uri, dn, password):
        """A bound LDAPObject; raises python-ldap's exceptions."""
        conn = self._initialize(uri)
        try:
            conn.simple_bind_s(dn or "", password or "")
        except self.ldap.LDAPError:
            self.close(conn)
            raise
        return conn

    def connection(self, uri, dn, password, bind=True):
        if not bind:
            return self._initialize(uri), None
        try:
            return self.bound(uri, dn, password), None
        except self.unreachable as exc:
            raise _Unreachable("%s: %s" % (uri, _ldap_error(exc))) from exc
        except self.ldap.LDAPError as exc:
            return None, _ldap_error(exc)

    def search(self, conn, base, filterstr, attribute):
        try:
            entries = conn.search_ext_s(base, self.ldap.SCOPE_SUBTREE, filterstr, [attribute], sizelimit=2)
        except self.unreachable as exc:
            raise _Unreachable(_ldap_error(exc)) from exc
        except self.ldap.SIZELIMIT_EXCEEDED:
            return [("", []), ("", [])]
        found = []
        for dn, attrs in entries:
            if dn is None:
                continue  # a referral
            values = []
            for name, value in (attrs or {}).items():
                if name.lower() == attribute.lower():
                    values = [v.decode("utf-8", "replace") for v in value]
            found.append((dn, values))
        return found

    def close(self, conn):
        try:
            conn.unbind_s()
        except self.ldap.LDAPError:
            pass


def _ldap_error(exc):
    """The text of a python-ldap error (its args hold a dict with desc and info)."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, dict):
        text = detail.get("desc") or str(exc)
        if detail.get("info"):
            text = "%s (%s)" % (text, detail["info"])
        return text
    return str(exc)


def _ldap_backend(api, settings):
    if api not in LDAP_APIS:
        raise ValueError("unknown ldap_api %r (expected one of %s)" % (api, ", ".join(LDAP_APIS)))
    return _Ldap3(settings) if api == "ldap3" else _PythonLdap(settings)


def _invalid_credentials(error):
    text = str(error).lower().replace(" ", "")
    return "invalidcredentials" in text


def ldap_authenticate(config, username, password, api="ldap3"):
    """Authenticate ``username`` against the configured LDAP servers; return a Result."""
    settings = LdapSettings(config)
    if not settings.servers:
        return Result(False, "LDAP auth failed: no LDAP server configured (auth.ldap.0.server.0.host)")
    if not settings.base:
        return Result(False, "LDAP auth failed: auth.ldap.0.users_base_dn is not set")
    try:
        backend = _ldap_backend(api, settings)
    except ImportError as exc:
        return Result(False, "LDAP auth failed: the %s library is not installed (%s)" % (api, exc))
    except ValueError as exc:
        return Result(False, "LDAP auth failed: %s" % exc)
    errors = []
    for host, port in settings.servers:
        for ssl in settings.ssl_modes():
            uri = settings.uri(host, port, ssl)
            try:
                return _ldap_login(backend, settings, uri, username, password)
            except _Unreachable as exc:
                errors.append(str(exc))
    return Result(False, "LDAP auth failed: server unreachable: %s" % "; ".join(errors))


def _ldap_login(backend, settings, uri, username, password):
    service, error = backend.connection(uri, settings.bind_dn, settings.bind_pw)
    if service is None:
        return Result(False, "LDAP auth failed: bind as %s failed: %s" % (settings.bind_dn or "anonymous", error))
    keep = False
    try:
        found = backend.search(service, settings.base, settings.user_filter(username), settings.uname_attr)
        if (not found and settings.requirement()
                and backend.search(service, settings.base, settings.plain_filter(username), settings.uname_attr)):
            return Result(False, "LDAP auth failed: user does not meet the additional requirement (add_req)")
        if not found:
            return Result(False, "LDAP auth failed: user not found")
        if len(found) > 1:
            return Result(False, "LDAP auth failed: user name is not unique in %s" % settings.base)
        dn, names = found[0]
        if not password:
            # an empty password would be an unauthenticated bind, which servers accept
            return Result(False, "LDAP auth failed: invalid credentials (empty password)")
        user_conn, error = backend.connection(uri, dn, password)
        if user_conn is None:
            if _invalid_credentials(error):
                return Result(False, "LDAP auth failed: invalid credentials")
            return Result(False, "LDAP auth failed: bind as user failed: %s" % error)
        backend.close(user_conn)
        canonical = _canonical(names, username)
        if isinstance(backend, _PythonLdap):
            context = PythonLdapContext(backend, uri, settings.bind_dn, settings.bind_pw, conn=service)
        else:
            context = service
        keep = True
        info = {"user_dn": dn, "search_base": settings.base, "ldap_context": with_authldap(context, settings)}
        return Result(True, "LDAP auth succeeded", user=canonical, info=info)
    finally:
        if not keep:
            backend.close(service)


def _canonical(names, username):
    """The directory's spelling of the name typed (the value of uname_attr that matched)."""
    for name in names:
        if name == username:
            return name
    for name in names:
        if name.lower() == username.lower():
            return name
    return names[0] if names else username


class AuthLdap(object):
    """``info['ldap_context'].authldap``: the LDAP method's settings, as the server attaches them.

    OpenVPN's own LDAP group-mapping script reads ``.authldap.parms['uname_attr']``; nothing else
    of it is known.
    """

    def __init__(self, settings):
        self.parms = {"uname_attr": settings.uname_attr}


def with_authldap(context, settings):
    if context is not None:
        context.authldap = AuthLdap(settings)
    return context


def ldap_context(config, api="ldap3"):
    """A fresh info['ldap_context'] bound as the service account (for the answer to a challenge).

    Returns (context, error): an unbound context when the service bind fails
    (``with`` binds it again), None when no server is configured or the
    library is missing.
    """
    context, error = _service_context(config, api)
    return with_authldap(context, LdapSettings(config)), error


def _service_context(config, api):
    settings = LdapSettings(config)
    if not settings.servers:
        return None, "no LDAP server configured"
    try:
        backend = _ldap_backend(api, settings)
    except (ImportError, ValueError) as exc:
        return None, str(exc)
    errors = []
    for host, port in settings.servers:
        for ssl in settings.ssl_modes():
            uri = settings.uri(host, port, ssl)
            try:
                conn, error = backend.connection(uri, settings.bind_dn, settings.bind_pw)
            except _Unreachable as exc:
                errors.append(str(exc))
                continue
            if conn is None:
                errors.append(error)
                break
            if isinstance(backend, _PythonLdap):
                return PythonLdapContext(backend, uri, settings.bind_dn, settings.bind_pw, conn=conn), None
            return conn, None
    host, port = settings.servers[0]
    uri = settings.uri(host, port, settings.ssl_modes()[0])
    if isinstance(backend, _PythonLdap):
        return PythonLdapContext(backend, uri, settings.bind_dn, settings.bind_pw), "; ".join(errors)
    conn = backend.connection(uri, settings.bind_dn, settings.bind_pw, bind=False)[0]
    return conn, "; ".join(errors)


def close_context(context):
    """Unbind an info['ldap_context'] after the post-auth script has run."""
    if context is None:
        return
    close = getattr(context, "close", None) if isinstance(context, PythonLdapContext) else None
    if close is None:
        close = getattr(context, "unbind", None)
    if close is None:
        return
    try:
        close()
    except Exception:  # noqa: BLE001 - the login is decided; a failing unbind changes nothing
        pass


# RADIUS ---------------------------------------------------------------------------------------

class RadiusServer(object):
    def __init__(self, host, secret, port, timeout):
        self.host = host
        self.secret = secret
        self.port = port
        self.timeout = timeout


def radius_servers(config):
    prefix = "auth.radius.0.server."
    servers = []
    for index in _indexed(config, prefix):
        key = "%s%d." % (prefix, index)
        servers.append(RadiusServer(
            host=config[key + "host"].strip(),
            secret=config.get(key + "secret", ""),
            port=_number(config.get(key + "auth_port"), RADIUS_DEFAULT_PORT),
            timeout=_number(config.get(key + "timeout"), RADIUS_DEFAULT_TIMEOUT, float),
        ))
    return servers


def _radius_text(attribute_type, value):
    if attribute_type == "ipaddr" and len(value) == 4:
        return socket.inet_ntoa(value)
    if attribute_type in ("integer", "date") and len(value) == 4:
        return str(struct.unpack("!I", value)[0])
    return value.decode("utf-8", "replace")


def radius_reply(reply, dictionary):
    """{attribute number: [text values]} of a reply packet's attributes (raw values decoded by type)."""
    result = {}
    for key, values in dict.items(reply):
        # a vendor-specific sub-attribute is listed under Vendor-Specific
        number = 26 if isinstance(key, tuple) else int(key)
        if number == 80:
            continue  # Message-Authenticator protects the packet: not a reply item
        attribute_type = "octets"
        if dictionary.attrindex.HasBackward(number):
            attribute_type = dictionary.attributes[dictionary.attrindex.GetBackward(number)].type
        for value in values:
            if isinstance(value, bytes):
                value = _radius_text(attribute_type, value)
            result.setdefault(number, []).append(str(value))
    return result


def radius_authenticate(config, username, password):
    """Authenticate ``username`` with PAP against the configured RADIUS servers; return a Result."""
    servers = radius_servers(config)
    if not servers:
        return Result(False, "RADIUS auth failed: no RADIUS server configured (auth.radius.0.server.0.host)")
    try:
        from pyrad import packet
        from pyrad.client import Client, Timeout
        from pyrad.dictionary import Dictionary
    except ImportError as exc:
        return Result(False, "RADIUS auth failed: the pyrad library is not installed (%s)" % exc)
    dictionary = Dictionary(RADIUS_DICTIONARY)
    errors = []
    for server in servers:
        client = Client(server=server.host, authport=server.port, secret=server.secret.encode("utf-8"),
                        dict=dictionary)
        client.retries = RADIUS_RETRIES
        client.timeout = server.timeout
        try:
            request = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username)
            request["User-Password"] = request.PwCrypt(password or "")
            request["NAS-Identifier"] = NAS_IDENTIFIER
            reply = client.SendPacket(request)
        except Timeout:
            errors.append("%s:%d: no valid reply within %gs" % (server.host, server.port, server.timeout))
            continue
        except OSError as exc:
            errors.append("%s:%d: %s" % (server.host, server.port, exc))
            continue
        except ValueError as exc:
            return Result(False, "RADIUS auth failed: %s" % exc)
        finally:
            close = getattr(client, "_CloseSocket", None)
            if close is not None:
                close()
        attributes = radius_reply(reply, dictionary)
        if reply.code == packet.AccessAccept:
            return Result(True, "RADIUS auth succeeded", user=username, info={"radius_reply": attributes})
        messages = attributes.get(18, [])
        if reply.code == packet.AccessChallenge:
            reason = "RADIUS auth failed: Access-Challenge is not supported"
        else:
            reason = "RADIUS auth failed: Access-Reject"
        if messages:
            reason += ": " + " ".join(messages)
        return Result(False, reason, info={"radius_reply": attributes})
    return Result(False, "RADIUS server unreachable: %s" % "; ".join(errors))
