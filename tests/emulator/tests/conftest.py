"""The emulator's tests: installed servers to run sacli and authcli of, from the installed distribution."""

from asemu.testing import make_server, server  # noqa: F401
