# LDAP group mapping: the user's groups decide their Access Server group, read through the
# connection Access Server hands the script (info["ldap_context"], ldap3 or python-ldap) and the
# LDAP method's settings (authldap.parms). Users in no mapped group are refused.
from pyovpn.plugin import FAIL, SUCCEED

GROUPS = [
    ("cn=vpn-admins,ou=groups,dc=example,dc=com", "admins"),
    ("cn=vpn-users,ou=groups,dc=example,dc=com", "users"),
]


def member_of(context, user_dn):
    if hasattr(context, "search_s"):  # python-ldap
        found = context.search_s(user_dn, 0, "(objectClass=*)", ["memberOf"])
        values = found[0][1].get("memberOf", []) if found else []
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    context.search(user_dn, "(objectClass=*)", search_scope="BASE", attributes=["memberOf"])
    if not context.response:
        return []
    return list(context.response[0]["attributes"].get("memberOf", []))


def post_auth(authcred, attributes, authret, info):
    if authret["status"] != SUCCEED or info.get("auth_method") != "ldap":
        return authret
    context, user_dn = info.get("ldap_context"), info.get("user_dn")
    if context is None or not user_dn:
        authret["status"] = FAIL
        authret["client_reason"] = "Your directory groups could not be read."
        return authret
    groups = {dn.lower() for dn in member_of(context, user_dn)}
    for dn, group in GROUPS:
        if dn.lower() in groups:
            authret["proplist"]["conn_group"] = group
            return authret
    authret["status"] = FAIL
    authret["client_reason"] = "You are in no group that may use the VPN."
    return authret
