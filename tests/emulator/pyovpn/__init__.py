"""The emulated ``pyovpn`` package: what post-auth scripts may import."""
