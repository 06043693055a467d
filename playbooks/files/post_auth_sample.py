# A small post-auth script: it lets every user that passed authentication in and logs
# which method authenticated them. The post_auth role replaces it with a composed script.
from pyovpn.plugin import FAIL, SUCCEED

SYNCHRONOUS = True


def post_auth(authcred, attributes, authret, info):
    if authret.get("status") != SUCCEED:
        return authret
    try:
        print("post_auth: %s authenticated by %s" % (authret.get("user"), info.get("auth_method")))
    except Exception as exc:  # noqa: BLE001 - any error fails the login closed
        authret["status"] = FAIL
        authret["reason"] = "post_auth sample failed: %s" % exc
        authret["client_reason"] = "Authentication failed"
    return authret
