"""Local passwords, kept in the user property ``pvt_password_digest``.

New digests are PBKDF2-SHA256 with a 16-byte random salt, a 32-byte output
and 100,000 iterations, as the server stores them by default.  A bare
SHA-256 hex digest (what older provisioning scripts wrote) is accepted too.
"""

import base64
import hashlib
import hmac
import os

ITERATIONS = 100000
PREFIX = "$PBKDF2-SHA256$"


def make_digest(password, iterations=ITERATIONS):
    salt = os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, 32)
    return "%s%d$%s$%s" % (
        PREFIX,
        iterations,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(derived).decode("ascii"),
    )


def verify(password, digest):
    if not digest:
        return False
    if digest.startswith(PREFIX):
        try:
            iterations, salt, expected = digest[len(PREFIX):].split("$")
            salt = base64.b64decode(salt)
            expected = base64.b64decode(expected)
            iterations = int(iterations)
        except ValueError:
            return False
        derived = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, len(expected))
        return hmac.compare_digest(derived, expected)
    if len(digest) == 64:
        plain = hashlib.sha256(password.encode("utf-8")).hexdigest()
        return hmac.compare_digest(plain, digest.lower())
    return False
