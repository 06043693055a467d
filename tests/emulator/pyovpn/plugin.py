"""The part of Access Server's plugin API that post-auth scripts import.

Scripts do ``from pyovpn.plugin import *``; the public samples use only these
two names.  The server also places them in the script's namespace.
"""

__all__ = ["FAIL", "SUCCEED"]

SUCCEED = 0
FAIL = 1
