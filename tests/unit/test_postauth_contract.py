"""How Access Server calls a post-auth script: one table of cases, run against both runners.

The emulator's script runner (``asemu.postauth``: what ``authcli`` and ``start`` use) and the
post_auth role's policy harness (``roles/post_auth/files/policy_harness.py``: what proves a script
on the server before it is loaded) each implement the call; every case gives the script and what
goes in (authcred, attributes, authret, info) and says what must come out: the status, a part of
the reason, what ``proplist_save`` holds, whether a challenge was issued and whether its state is
kept for the answering login.
"""

import importlib.util
import os
import textwrap

import pytest

from asemu import postauth
from pyovpn.plugin import SUCCEED

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HARNESS = os.path.join(REPO, "roles", "post_auth", "files", "policy_harness.py")

AUTHCRED = {"username": "alice", "client_ip_addr": "203.0.113.10", "client_hw_addr": "00:11:22:33:44:55"}
ATTRIBUTES = {"client_info": {"IV_PLAT": "win", "IV_HWADDR": "00:11:22:33:44:55"}, "vpn_auth": True, "reauth": False}
AUTHRET = {"status": SUCCEED, "user": "alice", "reason": "local auth succeeded", "proplist": {"type": "user_connect"}}
INFO = {"auth_method": "local"}

CASES = [
    dict(name="authret as it came", script="""
        def post_auth(authcred, attributes, authret, info):
            return authret
        """, status="SUCCEED", reason="local auth succeeded"),
    dict(name="a refusal with its reason", script="""
        def post_auth(authcred, attributes, authret, info):
            authret['status'] = FAIL
            authret['reason'] = 'device not registered'
            return authret
        """, status="FAIL", reason="device not registered"),
    dict(name="what goes in", script="""
        def post_auth(authcred, attributes, authret, info):
            authret['reason'] = '%s %s %s %s %s' % (authcred['username'], authcred['client_hw_addr'],
                attributes['client_info']['IV_PLAT'], attributes['vpn_auth'], info['auth_method'])
            return authret
        """, status="SUCCEED", reason="alice 00:11:22:33:44:55 win True local"),
    dict(name="an exception fails the login", script="""
        def post_auth(authcred, attributes, authret, info):
            return 1 / 0
        """, status="FAIL", reason="ZeroDivisionError"),
    dict(name="authret and proplist_save", script="""
        def post_auth(authcred, attributes, authret, info):
            return authret, {'pvt_hw_addr': authcred['client_hw_addr']}
        """, status="SUCCEED", saved={"pvt_hw_addr": "00:11:22:33:44:55"}),
    dict(name="no authret returned", script="""
        def post_auth(authcred, attributes, authret, info):
            authret['status'] = SUCCEED
        """, status="FAIL", reason="NoneType instead of authret"),
    dict(name="a proplist_save that is not a dict", script="""
        def post_auth(authcred, attributes, authret, info):
            return authret, ['pvt_hw_addr']
        """, status="FAIL", reason="list as proplist_save"),
    dict(name="authret takes attributes", script="""
        def post_auth(authcred, attributes, authret, info):
            authret.state = 'checked'
            if not hasattr(authret, 'state'):
                authret['status'] = FAIL
            authret['reason'] = authret.state
            return authret
        """, status="SUCCEED", reason="checked"),
    dict(name="a dynamic challenge", script="""
        def post_auth_cr(authcred, attributes, authret, info, crstate):
            crstate['step'] = 'code'
            return crstate.challenge_post_auth(authret, 'Code from your app?')
        """, status="FAIL", challenge=True, kept=True),
    dict(name="an expired state stays readable until the script returns", script="""
        def post_auth_cr(authcred, attributes, authret, info, crstate):
            crstate['step'] = 'done'
            crstate.expire()
            crstate.challenge_post_auth(authret, 'never asked')
            authret['reason'] = 'step %s' % crstate['step']
            authret['status'] = SUCCEED
            return authret
        """, status="SUCCEED", reason="step done", challenge=True, kept=False),
    dict(name="SYNCHRONOUS runs in the calling thread", script="""
        import threading
        SYNCHRONOUS = True
        def post_auth(authcred, attributes, authret, info):
            return authret, {'main': str(threading.current_thread() is threading.main_thread())}
        """, status="SUCCEED", saved={"main": "True"}),
    dict(name="without SYNCHRONOUS, a worker thread", script="""
        import threading
        def post_auth(authcred, attributes, authret, info):
            return authret, {'main': str(threading.current_thread() is threading.main_thread())}
        """, status="SUCCEED", saved={"main": "False"}),
]


def decision(authret, save, crstate):
    return dict(status="SUCCEED" if authret.get("status") == SUCCEED else "FAIL", reason=str(authret.get("reason")),
                saved=dict(save or {}), challenge=bool(crstate.challenge),
                kept=bool(crstate.challenge) and not crstate.expired)


def inputs():
    return dict(AUTHCRED), {k: (dict(v) if isinstance(v, dict) else v) for k, v in ATTRIBUTES.items()}, \
        dict(AUTHRET, proplist=dict(AUTHRET["proplist"])), dict(INFO)


def emulator(text, server):
    script = postauth.load(text, server.root)
    crstate = postauth.CRState()
    authret, save = postauth.call(script, server.root, *inputs(), crstate=crstate)
    return decision(authret, save, crstate)


def harness_module():
    spec = importlib.util.spec_from_file_location("policy_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install_pyovpn()
    return module


def harness(text, _server):
    module = harness_module()
    namespace = {"__name__": "post_auth_script", "SUCCEED": module.SUCCEED, "FAIL": module.FAIL}
    exec(compile(text, "<string>", "exec"), namespace)
    authret, save, crstate = module.call(namespace, inputs(), module.CRState())
    return decision(authret, save, crstate)


@pytest.mark.parametrize("runner", [emulator, harness], ids=["emulator", "harness"])
@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_both_runners_call_a_script_as_access_server_does(case, runner, server):
    got = runner(textwrap.dedent(case["script"]), server)
    assert got["status"] == case["status"], got
    assert case.get("reason", "") in got["reason"], got
    assert got["saved"] == case.get("saved", {}), got
    assert got["challenge"] is case.get("challenge", False), got
    assert got["kept"] is case.get("kept", False), got
