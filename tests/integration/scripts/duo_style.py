# Two-factor authentication against an HTTPS API in the style of Duo's integration: a fixed host,
# port 443, the script's own CA file, keys pasted into the script. Only "allow" lets a user in;
# an unreachable API refuses the login (fail closed).
import http.client
import json
import ssl

from pyovpn.plugin import FAIL, SUCCEED

API_HOST = "api-4f2a.duo.example.com"
API_PORT = 443
IKEY = "DIWJ8X6AEYOR5OMC6TQ1"
SKEY = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
TIMEOUT = 10


def api_call(path, params):
    context = ssl.create_default_context(cafile=CA_FILE)
    connection = http.client.HTTPSConnection(API_HOST, API_PORT, timeout=TIMEOUT, context=context)
    body = json.dumps(dict(params, ikey=IKEY, skey_hint=len(SKEY)))
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    reply = connection.getresponse()
    data = json.loads(reply.read().decode("utf-8") or "{}")
    if reply.status != 200 or data.get("stat") != "OK":
        raise RuntimeError("API answered %s" % reply.status)
    return data["response"]


def post_auth(authcred, attributes, authret, info):
    if authret["status"] != SUCCEED:
        return authret
    try:
        result = api_call("/auth/v2/auth", {"username": authret["user"], "factor": "auto"})
    except Exception as exc:  # noqa: BLE001
        authret["status"] = FAIL
        authret["reason"] = "second factor unavailable: %s" % exc
        authret["client_reason"] = "The second factor could not be checked."
        return authret
    if result.get("result") != "allow":
        authret["status"] = FAIL
        authret["client_reason"] = result.get("status_msg") or "Second factor refused."
    return authret
