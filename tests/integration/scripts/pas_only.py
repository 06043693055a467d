# A whole authentication method (PAS only): Access Server's own method lets every login through
# (AUTH_NULL) and hands the script the password (RETAIN_PASSWORD); the script checks it against
# its own table of PBKDF2 digests and picks the user's group. Unknown users and wrong passwords
# are refused; the password never reaches a log.
import hashlib
import hmac

from pyovpn.plugin import FAIL, SUCCEED

AUTH_NULL = True
RETAIN_PASSWORD = True
ROUNDS = 1000
# user: (salt, PBKDF2-SHA256 digest of the password, group)
USERS = {
    "canary": ("salt-canary", "a4ec70e6e937187c46d8f7980e243d7d6c2f70d8909dc6dec3ef67318c7f8c9f", "service"),
    "erin": ("salt-erin", "62ac6a621b9187cafa827f925c01fefd8d982cdb7aa0f1b8511e97724813982b", "partners"),
}


def post_auth(authcred, attributes, authret, info):
    if info.get("auth_method") in ("session", "autologin"):
        return authret
    entry = USERS.get(authcred.get("username", ""))
    password = authcred.get("password") or ""
    if entry is None:
        authret["status"] = FAIL
        authret["reason"] = "unknown user"
        authret["client_reason"] = "Unknown user or wrong password."
        return authret
    salt, digest, group = entry
    given = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), ROUNDS).hex()
    if not hmac.compare_digest(given, digest):
        authret["status"] = FAIL
        authret["reason"] = "wrong password"
        authret["client_reason"] = "Unknown user or wrong password."
        return authret
    authret["status"] = SUCCEED
    authret["proplist"]["conn_group"] = group
    return authret
