"""The emulator's tests: installed servers to run sacli and authcli of, from the installed distribution."""

from asemu.testing import make_server, server

# the fixtures pytest finds here
__all__ = ["make_server", "server"]
