"""How the templates lay out the literals of pyliteral: at their indentation, within the width of their lines.

A template passes the indentation of the line a literal starts on (``level``) and, where it adds text
at the end of each line (the secret marker), a smaller ``width``; the literal then spreads its containers
over lines so that no line it makes is longer, unless a single value is (a string is never split).
"""

import ast

import pytest

from ansible_collections.ovpnas.fleet.plugins.filter.pyliteral import WIDTH, pyliteral

RULE_GROUPS = ["cn=vpn administrators,ou=groups,dc=example,dc=com", "cn=network operators,ou=groups,dc=example,dc=com"]
SECRETS = {"custom_auth_hashes": {"svc": "pbkdf2_sha256$100000$c2FsdA$" + "A" * 20, "ops": "x" * 40},
           "duo_secret_key": "s" * 40}
SETTINGS = {"challenge": {"totp": {"algorithm": "sha1", "digits": 6, "period": 30, "property": "pvt_totp_secret",
                                   "window": 1}, "text": "Enter your one-time code"}}


@pytest.mark.parametrize("value, level, width", [
    (RULE_GROUPS, 3, WIDTH),
    (SECRETS, 0, 87),
    (SETTINGS, 0, WIDTH),
    ([SETTINGS, RULE_GROUPS, SECRETS], 2, 90),
])
def test_a_literal_keeps_to_its_indentation_and_width(value, level, width):
    source = pyliteral(value, "value", level, width)
    assert ast.literal_eval(source) == value
    lines = source.splitlines()
    assert len(lines) > 1
    # the first line follows the template's text; the others are indented from the template's level on
    assert all(line.startswith("    " * level) for line in lines[1:])
    assert lines[-1] == "    " * level + source[0].translate(str.maketrans("[{(", "]})"))
    assert all(len(line) <= width for line in lines)


def test_a_short_literal_stays_on_one_line_and_a_long_string_whole():
    assert pyliteral(["staff"], "value", 3) == "['staff']"
    text = "x " * 80
    source = pyliteral({"key": text}, "value", 1, 60)
    assert source == "{\n        'key': %r,\n    }" % text


def test_a_key_counts_in_the_width_of_its_line():
    # {'svc': ...} fits in 100 characters, but not after the key in front of it
    inner = {"svc": "pbkdf2_sha256$100000$c2FsdA$" + "A" * 43 + "="}
    assert "\n" not in pyliteral(inner)
    assert pyliteral({"custom_auth_hashes": inner}).splitlines()[1] == "    'custom_auth_hashes': {"
