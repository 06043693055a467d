"""authcli: one authentication through the configured method and the post-auth script.

Real options: ``--user/-u``, ``--pass``, ``--sr=RESPONSE``.  The options
below them exist only in the emulator and supply what a VPN client or an
identity provider would send.  A dynamic challenge is answered the way
OpenVPN clients do it: the next authentication carries the password
``CRV1::<state_id>::<response>``.

Every run is recorded in the log database (etc/db/log.db), as the server records every
authentication: service VPN (WEB_CLIENT with ``--web``), the name the client typed, what it
claims in ``--client-info`` (IV_PLAT, IV_VER, IV_GUI_VER) and, on a failure, the final reason
(``challenge`` for a login answered with a dynamic challenge).

What a post-auth script sets as ``authret.state`` in a successful login is kept for that user and
handed back as ``authret.state`` to the user's later session logins (``--auth-method`` session or
autologin, and ``--reauth``), as OpenVPN's GROUP_SELECT sample expects.

Without ``--pass`` authcli asks for the password once, before anything else
(``getpass``: on the controlling terminal, or on standard input when there is
none), so the typed password is used everywhere ``--pass`` would be, a
challenge answer ``CRV1::...`` included.  Logins that take no password
(``--auth-method`` session, autologin or saml) are not asked.
"""

import argparse
import base64
import getpass
import json
import os
import pickle
import signal
import sys
import time
import uuid

from asemu import backends, logdb, passwords, postauth
from asemu.root import Root
from asemu.store import Store
from pyovpn.plugin import FAIL, SUCCEED

SESSION_SECONDS = 86400
CHALLENGE_SECONDS = 300
PRIMARY_METHODS = ("local", "ldap", "radius", "saml", "pam", "session", "autologin")
# methods that take no password: a login with one of them is not asked for it
NO_PASSWORD_METHODS = ("session", "autologin", "saml")
# logins that continue a session: they see the authret.state of the login that began it
SESSION_METHODS = ("session", "autologin")
PICKLE_PROTOCOL = 4
_NO_STATE = object()


class AuthcliUsage(Exception):
    pass


def ask_password(args):
    """Prompt for the password when ``--pass`` is absent (as the real tool does), once, at the start.

    Returns False when no password could be read (end of input).
    """
    if args.password is not None or args.auth_method in NO_PASSWORD_METHODS:
        return True
    try:
        args.password = getpass.getpass("Password: ")
    except EOFError:
        return False
    return True


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AuthcliUsage(message)


def build_parser():
    parser = _Parser(prog="authcli", add_help=True, allow_abbrev=False)
    parser.add_argument("-u", "--user", required=True)
    parser.add_argument("--pass", dest="password")
    parser.add_argument("--sr", dest="static_response")
    emu = parser.add_argument_group("emulator options (what the client sends)")
    emu.add_argument("--client-ip", default="127.0.0.1")
    emu.add_argument("--hw-addr", help="client hardware address (client_hw_addr and IV_HWADDR)")
    emu.add_argument("--client-info", action="append", default=[], metavar="NAME=VALUE")
    emu.add_argument("--web", action="store_true", help="a web portal login instead of a VPN login")
    emu.add_argument("--reauth", action="store_true", help="a VPN re-authentication")
    emu.add_argument("--auth-method", choices=(*PRIMARY_METHODS, "pas_only"))
    emu.add_argument("--saml-attr", action="append", default=[], metavar="NAME=VALUE")
    emu.add_argument("--protocol", type=str.upper, choices=("UDP", "TCP"),
                     help="the VPN transport of the login (default UDP), as the log database records it")
    return parser


def _pairs(items, option):
    result = {}
    for item in items:
        if "=" not in item:
            raise AuthcliUsage("%s expects NAME=VALUE, got %r" % (option, item))
        name, value = item.split("=", 1)
        result.setdefault(name, []).append(value)
    return result


def status_name(status):
    if status == SUCCEED:
        return "SUCCEED"
    if status == FAIL:
        return "FAIL"
    return repr(status)


class Authentication(object):
    """One run of authcli against one emulated root."""

    def __init__(self, root, args, config=None):
        self.root = root
        self.args = args
        self.info = {}
        # whether the post-auth script refused the login (its reason may not be logged: log_script_reason)
        self.script_refused = False
        # what the script set as authret.state (_NO_STATE: nothing)
        self.state = _NO_STATE
        if config is None:
            with Store(root.config_db) as db:
                config = db.items("Default")
        self.config = config

    # user properties -------------------------------------------------------
    def _props(self):
        """Every user's and group's properties: {profile name: {name: value}}."""
        with Store(self.root.userprop_db) as db:
            props = {name: {} for name in db.profiles()}
            rows = db.conn.execute(
                "SELECT profile.name, config.name, config.value"
                " FROM config JOIN profile ON profile.id = config.profile_id"
            )
            for profile, name, value in rows:
                props[profile][name] = value
        return props

    def proplist(self, user, group=None, props=None):
        """The properties AS hands the script: defaults < group < user."""
        props = self._props() if props is None else props
        stored = props.get(user, {})
        merged = {"type": "user_connect"}
        defaults = props.get("__DEFAULT__", {})
        merged.update((k, v) for k, v in defaults.items() if k != "type")
        group = group or stored.get("conn_group")
        if group and props.get(group, {}).get("type") == "group":
            merged.update((k, v) for k, v in props[group].items() if k not in ("type", "group_declare"))
        merged.update(stored)
        if group:
            merged["conn_group"] = group
        return merged

    def find_user(self, name):
        with Store(self.root.userprop_db) as db:
            return db.find_profile(name)

    # primary authentication ------------------------------------------------
    def primary(self, script):
        """Authenticate with the configured method; return (authret, info)."""
        args = self.args
        if script is not None and script.flag("AUTH_NULL") and args.auth_method not in ("session", "autologin"):
            # PAS only: the primary method lets everyone through; sessions and
            # auto-login profiles still arrive as what they are
            method = "pas_only"
        else:
            method = args.auth_method or self.config.get("auth.module.type", "local")
        info = {"auth_method": method}
        user = self.find_user(args.user) or args.user
        authret = {"status": FAIL, "user": user, "reason": "", "proplist": {}}
        # a local login reads the properties once, for the password and the proplist
        props = self._props() if method == "local" else None
        if method == "pas_only":
            authret.update(status=SUCCEED, reason="null auth succeeded (PAS only)")
        elif method == "local":
            digest = props.get(user, {}).get("pvt_password_digest")
            if digest is None:
                authret["reason"] = "local auth failed: no local password for user"
            elif passwords.verify(self.password(), digest):
                authret.update(status=SUCCEED, reason="local auth succeeded")
            else:
                authret["reason"] = "local auth failed: password verification failed"
        elif method in ("session", "autologin"):
            authret.update(status=SUCCEED, reason="%s auth succeeded" % method)
        elif method == "saml":
            info["saml_attr"] = _pairs(args.saml_attr, "--saml-attr")
            authret.update(status=SUCCEED, reason="SAML auth succeeded")
        elif method == "ldap":
            # the user name as the directory spells it (the value of uname_attr)
            result = backends.ldap_authenticate(self.config, args.user, self.password(), self.ldap_api())
            info.update(result.info)
            authret.update(status=SUCCEED if result.ok else FAIL, reason=result.reason)
            if result.ok:
                authret["user"] = result.user
        elif method == "radius":
            # the user name as typed
            result = backends.radius_authenticate(self.config, args.user, self.password())
            authret.update(status=SUCCEED if result.ok else FAIL, reason=result.reason, user=args.user)
            if result.ok:
                info.update(result.info)
        else:
            authret["reason"] = "%s auth failed: method not available in this emulator" % method
        if authret["status"] == SUCCEED:
            name = authret["user"]
            if props is None:
                name = self.find_user(name) or name
            authret["proplist"] = self.proplist(name, props=props)
        return authret, info

    def ldap_api(self):
        return self.root.settings().get("ldap_api") or "ldap3"

    def restore_info(self, saved):
        """The info of the authentication a challenge answer continues (saved without ldap_context)."""
        info = dict(saved)
        if isinstance(info.get("radius_reply"), dict):
            # JSON turned the attribute numbers into strings
            info["radius_reply"] = {int(k): v for k, v in info["radius_reply"].items()}
        if info.get("auth_method") == "ldap":
            context, error = backends.ldap_context(self.config, self.ldap_api())
            if error:
                self.root.log("auth#warning", "LDAP context for the challenge answer: %s" % error)
            if context is not None:
                info["ldap_context"] = context
        return info

    def password(self):
        # asked at the start (see ask_password); a login that takes none is asked here if it needs one
        if self.args.password is None:
            self.args.password = getpass.getpass("Password: ")
        return self.args.password

    # the script's view of the client ---------------------------------------
    def client_data(self):
        args = self.args
        client_info = {k: v[-1] for k, v in _pairs(args.client_info, "--client-info").items()}
        authcred = {"username": args.user, "client_ip_addr": args.client_ip}
        if args.hw_addr:
            authcred["client_hw_addr"] = args.hw_addr
            client_info.setdefault("IV_HWADDR", args.hw_addr)
        if args.static_response is not None:
            authcred["static_response"] = args.static_response
        attributes = {"client_info": client_info, "vpn_auth": not args.web}
        if args.web:
            attributes["log_service_name"] = "WEB_CLIENT"
        else:
            attributes["reauth"] = bool(args.reauth)
        return authcred, attributes

    # challenge state -------------------------------------------------------
    def _crstates(self):
        try:
            with open(self.root.crstate_file) as handle:
                states = json.load(handle)
        except (IOError, OSError, ValueError):
            states = {}
        now = time.time()
        return {k: v for k, v in states.items() if v.get("expires", 0) > now}

    def _save_crstates(self, states):
        tmp = self.root.crstate_file + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(states, handle, indent=2, sort_keys=True, default=repr)
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.root.crstate_file)

    # authret.state, kept per user between a login and its session logins ----
    def _states(self):
        """{user (lower case): pickled state}; an unreadable file counts as empty."""
        try:
            with open(self.root.authret_state_file, "rb") as handle:
                states = pickle.load(handle)
        except (IOError, OSError):
            return {}
        except Exception as exc:  # noqa: BLE001 - a damaged file loses the states, not the login
            self.root.log("auth#warning", "authret.state file unreadable, ignored: %s" % exc)
            return {}
        return states if isinstance(states, dict) else {}

    def _save_states(self, states):
        path = self.root.authret_state_file
        tmp = "%s.tmp.%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(states, handle, PICKLE_PROTOCOL)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)

    def load_state(self, user):
        """The authret.state kept for ``user``, or _NO_STATE."""
        data = self._states().get(user.lower())
        if data is None:
            return _NO_STATE
        try:
            return pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - e.g. a class that no longer exists
            self.root.log("auth#warning", "authret.state of %s cannot be restored, dropped: %s" % (user, exc))
            return _NO_STATE

    def keep_state(self, user, value):
        """Keep ``value`` as ``user``'s authret.state (_NO_STATE: forget it); one that cannot be pickled is dropped."""
        data = None
        if value is _NO_STATE and not os.path.exists(self.root.authret_state_file):
            return
        if value is not _NO_STATE:
            try:
                data = pickle.dumps(value, PICKLE_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - pickling raises PicklingError, TypeError, AttributeError, ...
                self.root.log("auth#warning", "authret.state of %s cannot be pickled, dropped: %s: %s" % (
                    user, type(exc).__name__, exc))
        with self.root.locked():
            states = self._states()
            if data is None and user.lower() not in states:
                return
            if data is None:
                del states[user.lower()]
            else:
                states[user.lower()] = data
            self._save_states(states)

    # the whole run -----------------------------------------------------------
    def login(self, started=None):
        """Authenticate, record the login in the log database and the server log; return authret.

        What authcli and the traffic generator both do for one login.  Recording never fails it.
        """
        started = time.time() if started is None else started
        authret = self.run()
        status = status_name(authret.get("status"))
        self.root.log("authcli", "authenticate user=%s status=%s" % (authret.get("user"), status))
        self.record(authret, started)
        return authret

    def record(self, authret, started):
        """Write the log database row of this login."""
        ok = authret.get("status") == SUCCEED
        error = None
        if authret.get("challenge"):
            error = logdb.CHALLENGE
        elif not ok and not (self.script_refused and self.root.settings()["log_script_reason"] == "generic"):
            error = authret.get("reason")
        try:
            client_info = {k: v[-1] for k, v in _pairs(self.args.client_info, "--client-info").items()}
        except AuthcliUsage:
            client_info = {}
        row = logdb.login_row(
            self.config, self.args.user, "WEB_CLIENT" if self.args.web else "VPN", ok, error, started,
            client_info=client_info, client_ip=self.args.client_ip, protocol=self.args.protocol,
            proplist=authret.get("proplist") if ok else None,
        )
        logdb.write(self.root, row)

    def run(self):
        self.info = {}
        try:
            return self._run()
        finally:
            # the LDAP connection handed to the script is not used after it returns
            backends.close_context(self.info.get("ldap_context"))

    def _run(self):
        script, load_error = None, None
        text = self.config.get(postauth.SCRIPT_KEY)
        if text:
            try:
                script = postauth.load(text, self.root)
            except postauth.ScriptError as exc:
                load_error = str(exc)
                self.root.log("post_auth#error", "post-auth script not loaded: %s" % exc)

        password = self.args.password or ""
        answer = None
        with self.root.locked():
            states = self._crstates()
            if password.startswith("CRV1::"):
                parts = password.split("::", 2)
                state_id = parts[1] if len(parts) > 1 else ""
                answer = parts[2] if len(parts) > 2 else ""
                saved = states.pop(state_id, None)
                self._save_crstates(states)
            else:
                state_id, saved = None, None

        if answer is not None:
            if saved is None:
                return {"status": FAIL, "user": self.args.user, "reason": "challenge state unknown or expired"}
            user = saved["user"]
            authret = {"status": SUCCEED, "user": user, "reason": saved["reason"], "proplist": self.proplist(user)}
            info = self.info = self.restore_info(saved["info"])
            crstate = postauth.CRState(saved["data"], answer=answer)
        else:
            authret, info = self.primary(script)
            self.info = info
            crstate = postauth.CRState()
            if authret["status"] != SUCCEED:
                return authret

        if load_error is not None:
            authret.update(status=FAIL, reason="post_auth script could not be loaded: %s" % load_error)
            return authret
        if script is None:
            return self.finish(authret, None, script)

        primary_reason = authret.get("reason", "")
        authcred, attributes = self.client_data()
        resumed = info.get("auth_method") in SESSION_METHODS
        if script.flag("RETAIN_PASSWORD") and answer is None and not resumed:
            authcred["password"] = self.password()
        authret = postauth.AuthRet(authret)
        if resumed or self.args.reauth:
            kept = self.load_state(authret["user"])
            if kept is not _NO_STATE:
                authret.state = kept
        result, save = postauth.call(script, self.root, authcred, attributes, authret, info, crstate)
        self.script_refused = result.get("status") != SUCCEED
        # the script may return the authret it got or another object
        self.state = getattr(result, "state", getattr(authret, "state", _NO_STATE))

        if crstate.challenge and not crstate.expired and result.get("status") != SUCCEED:
            new_id = uuid.uuid4().hex
            with self.root.locked():
                states = self._crstates()
                states[new_id] = {
                    "user": authret["user"],
                    "reason": primary_reason,
                    "info": {k: v for k, v in info.items() if k != "ldap_context"},
                    "data": dict(crstate),
                    "expires": time.time() + CHALLENGE_SECONDS,
                }
                self._save_crstates(states)
            flags = "R,E" if crstate.challenge["echo"] else "R"
            b64user = base64.b64encode(authret["user"].encode("utf-8")).decode("ascii")
            result["challenge"] = "CRV1:%s:%s:%s:%s" % (flags, new_id, b64user, crstate.challenge["text"])
        return self.finish(result, save, script)

    def finish(self, authret, save, script):
        user = authret.get("user") or self.args.user
        if save:
            with Store(self.root.userprop_db) as db:
                for name, value in save.items():
                    db.put(user, str(name), str(value))
        if authret.get("status") != SUCCEED:
            return authret
        proplist = dict(authret.get("proplist") or {})
        if script is not None and script.flag("GROUP_SELECT"):
            # the group the script selected decides, with the user's stored
            # properties (including what the script saved) read afterwards
            chosen = proplist.get("conn_group")
            merged = self.proplist(user, group=chosen)
            merged.update((k, v) for k, v in proplist.items() if k not in merged)
            proplist = merged
        authret["proplist"] = proplist
        if str(proplist.get("prop_deny", "false")).lower() == "true":
            authret.update(status=FAIL, reason="user is denied access (prop_deny)")
        elif self.args.web and str(proplist.get("prop_deny_web", "false")).lower() == "true":
            authret.update(status=FAIL, reason="user is denied web access (prop_deny_web)")
        elif script is not None:
            # a successful login keeps the script's authret.state for the user's session logins; a
            # full login that sets none ends what an earlier one kept
            self.keep_state(user, self.state)
        return authret


def render(authret, header=True):
    lines = ["API METHOD: authenticate"]
    if header:
        lines.append("AUTH_RETURN")
    status = authret.get("status")
    lines.append("  status : %s" % status_name(status))
    if status == SUCCEED:
        lines.append("  session_id : %s" % base64.b64encode(os.urandom(24)).decode("ascii"))
    for name in ("reason", "client_reason", "challenge"):
        if authret.get(name):
            lines.append("  %s : %s" % (name, authret[name]))
    if status == SUCCEED:
        lines.append("  expire : %d" % (int(time.time()) + SESSION_SECONDS))
    lines.append("  user : %s" % authret.get("user", ""))
    if status == SUCCEED:
        lines.append("  proplist : %r" % (authret.get("proplist") or {},))
    return "\n".join(lines)


def main(root_path, argv):
    started = time.time()
    root = Root(root_path)
    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(143))
    options, rc = [], 2
    try:
        try:
            args = build_parser().parse_args(argv)
        except AuthcliUsage as exc:
            sys.stderr.write("authcli: %s\n" % exc)
            return rc
        # the options of the command line: a password typed at the prompt is not one
        options = [name for name, value in vars(args).items() if value not in (None, False, [])]
        if not ask_password(args):
            sys.stderr.write("authcli: no password given\n")
            return rc
        fault = root.take_fault("authcli")
        if fault is not None:
            from asemu.sacli import apply_fault

            rc = apply_fault(fault)
            if rc is not None:
                return rc
        authret = Authentication(root, args).login(started)
        print(render(authret, header=root.settings()["authcli_header"]))
        rc = 0 if authret.get("status") == SUCCEED else 1
        return rc
    finally:
        root.record_call("authcli", "authenticate", options, started, rc)
