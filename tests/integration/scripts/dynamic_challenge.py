# A Turing-style dynamic challenge: after the password, every login is asked a small sum, and the
# answer is checked on the client's second connection (post_auth_cr and its crstate). Service
# accounts listed in EXEMPT, reauthentications and web logins through the admin API are not asked.
import random

from pyovpn.plugin import FAIL, SUCCEED

EXEMPT = {"canary"}


def post_auth_cr(authcred, attributes, authret, info, crstate):
    if authret["status"] != SUCCEED or attributes.get("reauth"):
        return authret
    if authret["user"] in EXEMPT:
        return authret
    expected = crstate.get("expected")
    if expected is None:
        first, second = random.randint(2, 9), random.randint(2, 9)
        crstate["expected"] = str(first + second)
        crstate.challenge_post_auth(authret, "What is %d + %d?" % (first, second), echo=True)
        return authret
    answer = (crstate.response() or "").strip()
    crstate.expire()
    if answer != expected:
        authret["status"] = FAIL
        authret["client_reason"] = "Wrong answer."
    return authret
