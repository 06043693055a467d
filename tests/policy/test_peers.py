"""The loopback peers of peers.py work, and fail when they should (see conftest.py for the fixtures).

duo_client talks to the Duo stand-in as it would to Duo (host "localhost" and the port apart: duo_client
5.7.0 cannot connect to a "host:port" host, and its certificate name check reads DNS names only); the
hand-rolled requests show the shape a post-auth script sends: sig v5, signed host "127.0.0.1:PORT".
"""

import email.utils
import hashlib
import http.client
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import duo_client
import peers
import pytest
from duo_client.client import sign

# duo_client 5.7.0 builds its SSLContext with ssl.PROTOCOL_TLS
pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")


def duo_api(duo, **options):
    """A duo_client.Auth for the stand-in."""
    options.setdefault("timeout", 5)
    return duo_client.Auth(duo.ikey, duo.skey, host="localhost", port=duo.port, ca_certs=duo.ca_file, **options)


def duo_request(duo, method, path, params, skey=None, date=None, body=None, headers=None, sig_version=5):
    """A hand-rolled Duo API request (sig v5 JSON, or v2 form); returns (HTTP status, decoded reply)."""
    date = date or email.utils.formatdate()
    extra = dict(headers or {})
    if sig_version == 5 and method == "POST":
        canonical_body = json.dumps(params, sort_keys=True, separators=(",", ":"))
        signature = sign(duo.ikey, skey or duo.skey, method, duo.host, path, date, 5, {}, body=canonical_body,
                         digestmod=hashlib.sha512, additional_headers=extra)
        content_type, uri, payload = "application/json", path, canonical_body
    elif sig_version == 5:
        listed = {key: [value] for key, value in params.items()}
        signature = sign(duo.ikey, skey or duo.skey, method, duo.host, path, date, 5, listed, body="",
                         digestmod=hashlib.sha512, additional_headers=extra)
        content_type, uri, payload = None, path + "?" + urllib.parse.urlencode(params), None
    else:
        listed = {key: [value] for key, value in params.items()}
        signature = sign(duo.ikey, skey or duo.skey, method, duo.host, path, date, 2, listed,
                         digestmod=hashlib.sha1)
        content_type, uri, payload = "application/x-www-form-urlencoded", path, urllib.parse.urlencode(params)
    request_headers = dict(extra, Authorization=signature, Date=date)
    if content_type:
        request_headers["Content-Type"] = content_type
    if body is not None:
        payload = body
    connection = http.client.HTTPSConnection(peers.LOOPBACK, duo.port, timeout=5,
                                             context=ssl.create_default_context(cafile=duo.ca_file))
    try:
        connection.request(method, uri, body=payload.encode() if payload is not None else None,
                           headers=request_headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def fetch(url, document=None, cafile=None, token=None, timeout=5, method=None):
    """(status, body bytes) of a urllib request; TLS verified against ``cafile``; HTTP errors included."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer %s" % token
    data = json.dumps(document).encode() if document is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


# The test PKI ------------------------------------------------------------------------------------

def openssl_verify(cafile, cert):
    return subprocess.run(["openssl", "verify", "-CAfile", cafile, cert], capture_output=True, text=True,
                          timeout=30, check=False).returncode


def test_ca_signs_the_server_and_wrong_name_certificates_but_not_the_other(test_ca):
    assert openssl_verify(test_ca.ca_file, test_ca.server_cert) == 0
    assert openssl_verify(test_ca.ca_file, test_ca.wrong_name_cert) == 0
    assert openssl_verify(test_ca.other_ca_file, test_ca.other_cert) == 0
    assert openssl_verify(test_ca.ca_file, test_ca.other_cert) != 0
    assert openssl_verify(test_ca.other_ca_file, test_ca.server_cert) != 0


# The Duo stand-in -------------------------------------------------------------------------------

def test_duo_preauth_through_duo_client_is_verified(duo):
    duo.script("alice", preauth="auth")
    reply = duo_api(duo).preauth(username="alice")
    assert reply["result"] == "auth"
    assert reply["devices"][0]["device"] == "DP1"
    assert reply["devices"][0]["capabilities"] == ["auto", "push", "sms", "phone", "mobile_otp"]
    request = duo.last()
    assert (request.method, request.path, request.params) == ("POST", "/auth/v2/preauth", {"username": "alice"})
    assert (request.verified, request.sig_version, request.digest, request.status) == (True, 5, "sha512", 200)
    assert request.signed_host == "localhost"
    assert request.headers["Content-type"] == "application/json"


@pytest.mark.parametrize("result", ["allow", "deny", "enroll"])
def test_duo_preauth_results(duo, result):
    duo.script("alice", preauth=result, status_msg="scripted message")
    reply = duo_api(duo).preauth(username="alice")
    assert reply["result"] == result
    assert reply["status_msg"] == "scripted message"
    assert ("enroll_portal_url" in reply) == (result == "enroll")
    assert "devices" not in reply


def test_duo_unscripted_user_must_enroll(duo):
    reply = duo_api(duo).preauth(username="nobody")
    assert reply["result"] == "enroll"
    assert reply["enroll_portal_url"].startswith("https://")


@pytest.mark.parametrize(("factor", "answer"), [("push", "allow"), ("push", "deny"), ("phone", "allow"),
                                                ("phone", "deny"), ("auto", "deny")])
def test_duo_auth_push_and_phone(duo, factor, answer):
    duo.script("alice", push=answer, phone=answer)
    reply = duo_api(duo).auth(factor, username="alice", device="auto")
    assert reply["result"] == answer
    if answer == "deny":
        assert reply["status_msg"] == "Login request denied."
    request = duo.last("/auth/v2/auth")
    assert request.verified and request.params["factor"] == factor and request.params["username"] == "alice"


def test_duo_auth_passcode(duo):
    duo.script("alice", passcodes={"123456"})
    api = duo_api(duo)
    assert api.auth("passcode", username="alice", passcode="123456")["result"] == "allow"
    refused = api.auth("passcode", username="alice", passcode="000000")
    assert refused == {"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."}
    assert [r.params["passcode"] for r in duo.verified_requests("/auth/v2/auth")] == ["123456", "000000"]


def test_duo_sms_then_its_passcodes_work(duo):
    duo.script("alice", sms="sent", sms_passcodes={"777777"})
    api = duo_api(duo)
    assert api.auth("passcode", username="alice", passcode="777777")["result"] == "deny"
    sent = api.auth("sms", username="alice", device="auto")
    assert sent == {"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."}
    assert api.auth("passcode", username="alice", passcode="777777")["result"] == "allow"


def test_duo_async_auth_and_status(duo):
    duo.script("alice", push="allow")
    api = duo_api(duo)
    txid = api.auth("push", username="alice", async_txn=True)["txid"]
    assert api.auth_status(txid)["success"] is True
    assert [r.path for r in duo.verified_requests()] == ["/auth/v2/auth", "/auth/v2/auth_status"]


@pytest.mark.parametrize("digestmod", [hashlib.sha1, hashlib.sha512])
def test_duo_sig_v2_form_requests_are_verified(duo, digestmod):
    duo.script("alice")
    api = duo_api(duo, sig_version=2, digestmod=digestmod)
    assert api.preauth(username="alice")["result"] == "auth"
    assert api.check()["time"] > 0
    preauth, check = duo.requests
    assert (preauth.verified, preauth.sig_version, preauth.digest) == (True, 2, digestmod().name)
    assert preauth.headers["Content-type"] == "application/x-www-form-urlencoded"
    assert preauth.params == {"username": "alice"}
    assert (check.method, check.verified) == ("GET", True)


def test_duo_x_duo_headers_are_signed(duo):
    duo.script("alice")
    response, data = duo_api(duo).api_call("POST", "/auth/v2/preauth", {"username": "alice"},
                                           additional_headers={"X-Duo-Policy-Tests": "yes"})
    assert response.status == 200, data
    assert duo.last().verified and duo.last().headers["X-Duo-Policy-Tests"] == "yes"


def test_duo_hand_rolled_v5_request_signed_for_127_0_0_1_port(duo):
    duo.script("alice", preauth="allow")
    status, reply = duo_request(duo, "POST", "/auth/v2/preauth", {"username": "alice", "ipaddr": "10.0.0.1"})
    assert (status, reply["stat"], reply["response"]["result"]) == (200, "OK", "allow")
    assert duo.last().signed_host == duo.host == "127.0.0.1:%d" % duo.port
    status, reply = duo_request(duo, "GET", "/auth/v2/check", {})
    assert (status, reply["stat"]) == (200, "OK")
    status, reply = duo_request(duo, "POST", "/auth/v2/preauth", {"username": "alice"}, sig_version=2)
    assert (status, duo.last().sig_version, duo.last().digest) == (200, 2, "sha1")


def test_duo_wrong_skey_is_rejected_and_recorded(duo):
    duo.script("alice")
    with pytest.raises(RuntimeError, match="401 Invalid signature in request credentials"):
        duo_client.Auth(duo.ikey, "X" * 40, host="localhost", port=duo.port, ca_certs=duo.ca_file,
                        timeout=5).preauth(username="alice")
    request = duo.last()
    assert (request.verified, request.reason, request.status) == (False, "bad signature", 401)
    assert request.params == {"username": "alice"}
    assert duo.verified_requests() == []


def test_duo_tampered_body_is_rejected(duo):
    status, reply = duo_request(duo, "POST", "/auth/v2/auth", {"username": "alice", "factor": "push"},
                                body='{"factor":"push","username":"mallory"}')
    assert status == 401
    assert reply == {"stat": "FAIL", "code": 40103, "message": "Invalid signature in request credentials"}
    assert duo.last().verified is False and duo.last().username == "mallory"


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_duo_stale_date_is_rejected(duo, offset):
    duo.script("alice")
    status, reply = duo_request(duo, "POST", "/auth/v2/preauth", {"username": "alice"},
                                date=email.utils.formatdate(time.time() + offset))
    assert (status, reply["stat"], reply["code"]) == (401, "FAIL", 40105)
    request = duo.last()
    assert (request.verified, request.date_ok, request.reason) == (True, False, "bad date")


def test_duo_wrong_ikey_and_missing_credentials(duo):
    api = duo_client.Auth("DIWRONGWRONGWRONG000", duo.skey, host="localhost", port=duo.port,
                          ca_certs=duo.ca_file, timeout=5)
    with pytest.raises(RuntimeError, match="401"):
        api.preauth(username="alice")
    assert duo.last().reason == "wrong ikey"
    status, body = fetch(duo.url_for("/auth/v2/check"), cafile=duo.ca_file)
    assert (status, json.loads(body)["code"]) == (401, 40101)


def test_duo_ping_needs_no_signature(duo):
    status, body = fetch(duo.url_for("/auth/v2/ping", host="localhost"), cafile=duo.ca_file)
    assert status == 200 and json.loads(body)["stat"] == "OK"
    assert duo.last().verified is None
    assert duo_api(duo).ping()["time"] > 0


# duo_client leaves its socket open when the read times out (a ResourceWarning when the socket is collected)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning")
def test_duo_timeout_behaviour(duo):
    duo.script("alice", behaviour="timeout", delay=3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        duo_api(duo, timeout=0.3).preauth(username="alice")
    assert time.monotonic() - started < 2
    assert duo.last().verified is True


def test_duo_error500_and_garbage_behaviours(duo):
    duo.script("alice", behaviour="error500")
    duo.script("bob", behaviour="garbage")
    api = duo_api(duo)
    with pytest.raises(RuntimeError, match="Received 500"):
        api.preauth(username="alice")
    with pytest.raises(RuntimeError, match="Received bad response"):
        api.auth("push", username="bob")
    assert api.ping()["time"] > 0
    duo.behave("error500")
    with pytest.raises(RuntimeError, match="Received 500"):
        api.ping()
    duo.behave(None)
    assert api.ping()["time"] > 0


def test_duo_script_rejects_unknown_choices(duo):
    with pytest.raises(ValueError, match="preauth"):
        duo.script("alice", preauth="maybe")
    with pytest.raises(ValueError, match="behaviour"):
        duo.behave("explode")


def test_duo_client_trusting_another_ca_refuses_the_stand_in(duo, test_ca):
    api = duo_client.Auth(duo.ikey, duo.skey, host="localhost", port=duo.port, ca_certs=test_ca.other_ca_file,
                          timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        api.preauth(username="alice")
    assert wait_for(lambda: duo.tls_errors)
    assert duo.requests == []


def test_duo_stand_in_stops(test_ca):
    standin = peers.DuoStandIn(test_ca).start()
    port = standin.port
    assert duo_api(standin).ping()["time"] > 0
    standin.stop()
    assert not standin.running
    with pytest.raises(ConnectionRefusedError), socket.create_connection((peers.LOOPBACK, port), timeout=2):
        pass


# The custom authentication and challenge verification endpoint ------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_http_peer_tls_is_verified_with_the_test_ca(http_peer, test_ca, host):
    status, body = fetch(http_peer.url_for("/auth", host=host), {"username": "alice", "password": "alice-pw"},
                         cafile=test_ca.ca_file)
    assert status == 200
    assert json.loads(body) == {"authenticated": True, "groups": ["vpn-admins", "vpn-users"]}


def test_http_peer_is_not_trusted_without_the_test_ca(http_peer):
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(http_peer.auth_url, timeout=5, context=ssl.create_default_context())
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("nobody", "alice-pw"), ("Alice", "alice-pw")])
def test_http_peer_refuses_wrong_credentials(http_peer, test_ca, username, password):
    status, body = fetch(http_peer.auth_url, {"username": username, "password": password}, cafile=test_ca.ca_file)
    assert (status, json.loads(body)) == (200, {"authenticated": False})
    assert http_peer.last("/auth").json == {"username": username, "password": password}


def test_http_peer_users_are_settable(http_peer, test_ca):
    http_peer.set_user("zed", "zed-pw", ["contractors"])
    status, body = fetch(http_peer.auth_url, {"username": "zed", "password": "zed-pw", "client_ip": "10.0.0.9"},
                         cafile=test_ca.ca_file)
    assert (status, json.loads(body)) == (200, {"authenticated": True, "groups": ["contractors"]})


def test_http_peer_bearer_token(http_peer, test_ca):
    http_peer.token = "s3cret-token"
    document = {"username": "alice", "password": "alice-pw"}
    assert fetch(http_peer.auth_url, document, cafile=test_ca.ca_file)[0] == 401
    assert fetch(http_peer.auth_url, document, cafile=test_ca.ca_file, token="wrong")[0] == 401
    status, body = fetch(http_peer.auth_url, document, cafile=test_ca.ca_file, token="s3cret-token")
    assert (status, json.loads(body)["authenticated"]) == (200, True)
    assert http_peer.last().headers["Authorization"] == "Bearer s3cret-token"


def test_http_peer_verify(http_peer, test_ca):
    http_peer.set_challenge("carol", "424242")
    cases = [("alice", "123456", True), ("alice", "654321", False), ("carol", "424242", True), ("nobody", "1", False)]
    for username, response, valid in cases:
        status, body = fetch(http_peer.verify_url, {"username": username, "response": response},
                             cafile=test_ca.ca_file)
        assert (status, json.loads(body)) == (200, {"valid": valid})
    assert [r.username for r in http_peer.requests] == [case[0] for case in cases]


def test_http_peer_bad_requests(http_peer, test_ca):
    assert fetch(http_peer.auth_url, ["not", "an", "object"], cafile=test_ca.ca_file)[0] == 400
    assert fetch(http_peer.auth_url, {"username": "alice"}, cafile=test_ca.ca_file)[0] == 400
    assert fetch(http_peer.url_for("/elsewhere"), {}, cafile=test_ca.ca_file)[0] == 404
    assert fetch(http_peer.verify_url, cafile=test_ca.ca_file)[0] == 405


def test_http_peer_slow(http_peer, test_ca):
    http_peer.behave("slow", seconds=0.5)
    started = time.monotonic()
    status, body = fetch(http_peer.verify_url, {"username": "alice", "response": "123456"}, cafile=test_ca.ca_file)
    assert time.monotonic() - started >= 0.5
    assert (status, json.loads(body)) == (200, {"valid": True})
    http_peer.behave("slow", seconds=5)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        fetch(http_peer.verify_url, {"username": "alice", "response": "123456"}, cafile=test_ca.ca_file,
              timeout=0.3)


@pytest.mark.parametrize("code", [500, 502, 503])
def test_http_peer_error_status(http_peer, test_ca, code):
    http_peer.behave("status", status=code)
    status, body = fetch(http_peer.auth_url, {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)
    assert status == code
    assert body.startswith(b"%d " % code)
    assert http_peer.last().status == code


def test_http_peer_garbage(http_peer, test_ca):
    http_peer.behave("garbage")
    status, body = fetch(http_peer.auth_url, {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


def test_http_peer_closes_without_reply(http_peer, test_ca):
    http_peer.behave("close")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError, urllib.error.URLError)):
        fetch(http_peer.auth_url, {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)
    assert http_peer.last().status is None


def test_http_peer_behaviour_per_path_and_reset(http_peer, test_ca):
    http_peer.behave("status", status=503, path="/verify")
    assert fetch(http_peer.verify_url, {"username": "alice", "response": "123456"}, cafile=test_ca.ca_file)[0] == 503
    assert fetch(http_peer.auth_url, {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)[0] == 200
    http_peer.reset()
    assert fetch(http_peer.verify_url, {"username": "alice", "response": "123456"}, cafile=test_ca.ca_file)[0] == 200
    assert len(http_peer.requests) == 1


def test_http_peer_prints_no_password(http_peer, test_ca, capfd):
    fetch(http_peer.auth_url, {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)
    fetch(http_peer.auth_url, {"username": "alice", "password": "not-alice-pw"}, cafile=test_ca.ca_file)
    out, err = capfd.readouterr()
    assert "alice-pw" not in out + err
    assert http_peer.requests[1].json["password"] == "not-alice-pw"


def test_plain_http_peer():
    with peers.HttpPeer() as peer:
        assert peer.url.startswith("http://")
        status, body = fetch(peer.auth_url, {"username": "bob", "password": "bob-pw"})
        assert (status, json.loads(body)) == (200, {"authenticated": True, "groups": ["engineering", "vpn-users"]})
    assert not peer.running


# OpenSSL's verify codes: 20 unable to get local issuer certificate, 62 hostname mismatch, 64 IP address mismatch
@pytest.mark.parametrize(("host", "mismatch"), [("127.0.0.1", 64), ("localhost", 62)])
def test_bad_tls_peers_fail_verification(bad_tls_peers, test_ca, host, mismatch):
    for peer, code in ((bad_tls_peers.other_ca, 20), (bad_tls_peers.wrong_name, mismatch)):
        with pytest.raises(urllib.error.URLError) as caught:
            fetch(peer.url_for("/auth", host=host), {"username": "alice", "password": "alice-pw"},
                  cafile=test_ca.ca_file)
        assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)
        assert caught.value.reason.verify_code == code
        assert wait_for(lambda peer=peer: peer.tls_errors)
        assert peer.requests == []


def test_other_ca_peer_works_for_a_client_that_trusts_the_other_ca(bad_tls_peers, test_ca):
    status, body = fetch(bad_tls_peers.other_ca.auth_url, {"username": "alice", "password": "alice-pw"},
                         cafile=test_ca.other_ca_file)
    assert (status, json.loads(body)["authenticated"]) == (200, True)


def test_down_url_refuses_connections(down_url, test_ca):
    assert down_url.startswith("https://127.0.0.1:")
    with pytest.raises(urllib.error.URLError) as caught:
        fetch(down_url + "/auth", {"username": "alice", "password": "alice-pw"}, cafile=test_ca.ca_file)
    assert isinstance(caught.value.reason, ConnectionRefusedError)
