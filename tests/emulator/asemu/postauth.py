"""Loading and running the post-auth script the way Access Server does.

The script is the text of the config key ``auth.module.post_auth_script``.  It
is compiled from that string (tracebacks name the file ``<string>``) and
executed with ``SUCCEED`` and ``FAIL`` in its namespace and ``pyovpn.plugin``
importable.  What it prints goes to the server log.
"""

import builtins
import contextlib
import threading
import traceback
import warnings

from pyovpn.plugin import FAIL, SUCCEED

SCRIPT_KEY = "auth.module.post_auth_script"
FLAGS = ("SYNCHRONOUS", "GROUP_SELECT", "AUTH_NULL", "RETAIN_PASSWORD", "STATIC_CHALLENGE", "STATIC_CHALLENGE_ECHO")


class ScriptError(Exception):
    """The script cannot be loaded."""


class AuthRet(dict):
    """The ``authret`` a script gets: a dict that also takes attributes.

    Sample scripts set ``authret.state = ...`` and test ``hasattr(authret, 'state')``, so the
    server's authret is a dict subclass, not a plain dict.
    """


class _LogWriter(object):
    """A file-like object that sends complete lines to the server log."""

    def __init__(self, root, source):
        self.root = root
        self.source = source
        self.pending = ""

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.root.log(self.source, line)
        return len(text)

    def flush(self):
        if self.pending:
            self.root.log(self.source, self.pending)
            self.pending = ""


@contextlib.contextmanager
def output_to_log(root):
    writer = _LogWriter(root, "stdout#info")
    with contextlib.redirect_stdout(writer):
        try:
            yield
        finally:
            writer.flush()


class Script(object):
    """A loaded post-auth script."""

    def __init__(self, namespace):
        self.namespace = namespace
        self.post_auth = namespace.get("post_auth")
        self.post_auth_cr = namespace.get("post_auth_cr")

    def flag(self, name):
        return bool(self.namespace.get(name, False))

    @property
    def is_cr(self):
        return callable(self.post_auth_cr)


def load(text, root=None):
    """Compile and execute the script text; return a Script or raise ScriptError."""
    namespace = {"__name__": "post_auth_script", "__builtins__": builtins, "SUCCEED": SUCCEED, "FAIL": FAIL}
    # what compiling warns of (an invalid escape sequence, say) goes to the server log, not to
    # the stderr of every authcli and start that loads the script
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            code = compile(text, "<string>", "exec")
        except (SyntaxError, ValueError, TypeError) as exc:
            raise ScriptError("does not compile: %s" % _describe(exc)) from exc
    if root is not None:
        for warning in warned:
            root.log("post_auth#warning", "line %s: %s: %s" % (warning.lineno, warning.category.__name__,
                                                               warning.message))
    try:
        if root is None:
            exec(code, namespace)
        else:
            with output_to_log(root):
                exec(code, namespace)
    except BaseException as exc:
        raise ScriptError("raised at import: %s" % _describe(exc)) from exc
    script = Script(namespace)
    if not callable(script.post_auth) and not callable(script.post_auth_cr):
        raise ScriptError("defines neither post_auth nor post_auth_cr")
    return script


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


class CRState(dict):
    """The challenge/response state handed to ``post_auth_cr``.

    It is dict-like and survives between the authentication that issues a
    dynamic challenge and the one that answers it.
    """

    def __init__(self, data=None, answer=None):
        dict.__init__(self, data or {})
        self._answer = answer
        self.challenge = None
        self.expired = False

    def response(self):
        """The user's answer to a dynamic challenge, or None."""
        return self._answer

    def expire(self):
        """End the transaction: the state is not kept for a next authentication.

        It stays readable until the script returns (a sample calls ``expire()`` and then reads
        ``crstate[...]``); the server drops it afterwards.
        """
        self.expired = True

    def challenge_post_auth(self, authret, text, echo=False):
        """Ask the user ``text``; this authentication ends with the challenge.

        The client receives ``CRV1:<flags>:<state_id>:<base64 user>:<text>``
        and answers with the password ``CRV1::<state_id>::<response>``.
        """
        self.challenge = {"text": str(text), "echo": bool(echo)}
        authret["status"] = FAIL
        authret["reason"] = "dynamic challenge issued"
        return authret


def call(script, root, authcred, attributes, authret, info, crstate=None):
    """Run the script's entry point as the server does.

    Returns ``(authret, proplist_save)``.  An exception raised by the script
    fails the authentication with the error text as the reason.  Scripts that
    do not set ``SYNCHRONOUS`` run in a worker thread.
    """
    if not isinstance(authret, AuthRet):
        # the caller's dict stays as it was; an AuthRet (with an authret.state, say) is used as given
        authret = AuthRet(authret)
    if script.is_cr:
        func, args = script.post_auth_cr, (authcred, attributes, authret, info, crstate)
    else:
        func, args = script.post_auth, (authcred, attributes, authret, info)
    outcome = {}

    def run():
        try:
            with output_to_log(root):
                outcome["value"] = func(*args)
        except BaseException as exc:  # noqa: BLE001 - any error of the script fails the login
            outcome["error"] = exc
            outcome["traceback"] = traceback.format_exc()

    if script.flag("SYNCHRONOUS"):
        run()
    else:
        worker = threading.Thread(target=run, name="post_auth")
        worker.start()
        worker.join()

    if "error" in outcome:
        root.log("post_auth#error", outcome["traceback"])
        failed = dict(authret)
        failed["status"] = FAIL
        failed["reason"] = "post_auth script error: %s" % _describe(outcome["error"])
        return failed, None
    value = outcome.get("value")
    if isinstance(value, tuple) and len(value) == 2:
        result, save = value
    else:
        result, save = value, None
    if not isinstance(result, dict) or "status" not in result:
        failed = dict(authret)
        failed["status"] = FAIL
        failed["reason"] = "post_auth script returned %s instead of authret" % type(result).__name__
        return failed, None
    if save is not None and not isinstance(save, dict):
        failed = dict(result)
        failed["status"] = FAIL
        failed["reason"] = "post_auth script returned a %s as proplist_save" % type(save).__name__
        return failed, None
    return result, save
