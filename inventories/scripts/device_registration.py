# The lab's own post-auth script, kept in the repository beside the inventory: each user may
# connect from the first device they connect with. The first VPN login saves the device's
# hardware address in the user's properties (proplist_save); any other device is refused.
# Web logins carry no hardware address and pass.
from pyovpn.plugin import FAIL, SUCCEED

PROPERTY = "pvt_hw_addr"


def post_auth(authcred, attributes, authret, info):
    if authret["status"] != SUCCEED or not attributes.get("vpn_auth"):
        return authret
    address = (attributes.get("client_info") or {}).get("IV_HWADDR") or authcred.get("client_hw_addr")
    if not address:
        authret["status"] = FAIL
        authret["client_reason"] = "This client does not report its hardware address."
        return authret
    address = address.lower()
    registered = authret["proplist"].get(PROPERTY)
    if registered is None:
        return authret, {PROPERTY: address}
    if registered.lower() != address:
        authret["status"] = FAIL
        authret["client_reason"] = "This device is not the one registered for you."
    return authret
