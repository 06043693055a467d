# Hardware-address registration: each user may connect from the first device they connect with.
# An administrator's own post-auth script, as Access Server's documentation describes them: it saves
# the address in the user's properties (proplist_save) on the first VPN login and refuses any other
# device afterwards. Web logins carry no hardware address and pass.
from pyovpn.plugin import FAIL, SUCCEED

PROPERTY = "pvt_hw_addr"


def post_auth(authcred, attributes, authret, info):
    if authret["status"] != SUCCEED or not attributes.get("vpn_auth"):
        return authret
    address = (attributes.get("client_info") or {}).get("IV_HWADDR")
    if not address:
        authret["status"] = FAIL
        authret["client_reason"] = "This client does not report its hardware address."
        return authret
    address = address.lower()
    registered = authret["proplist"].get(PROPERTY)
    if registered is None:
        authret["proplist"]["conn_group"] = "registered"
        return authret, {PROPERTY: address}
    if registered.lower() != address:
        authret["status"] = FAIL
        authret["client_reason"] = "This device is not the one registered for you."
    return authret
