"""An emulator of the OpenVPN Access Server command-line tools.

The package is installed into a root shaped like ``/usr/local/openvpn_as``
(see the ``install`` script next to it).  It needs only the Python standard
library and runs on Python 3.6 and newer, like the post-auth scripts it loads.
"""

EMULATOR_VERSION = "0.1.0"
