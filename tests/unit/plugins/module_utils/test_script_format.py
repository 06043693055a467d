"""The formats of what the collection loads: the script's header, seal and secret marker, the query file."""

import pytest

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import (
    mask_secret_lines,
    parse_script_header,
    query_file_entries,
    script_identity,
    sealed,
    secret_lines,
    sha256_text,
    with_identity,
)


def test_script_header():
    text = (
        "#!/usr/bin/env python3\n# ovpnas.fleet.version: 0.1.0\n#ovpnas.fleet.features: a, b\n\n"
        "x = 1\n# ovpnas.fleet.late: no\n"
    )
    assert parse_script_header(text) == {"version": "0.1.0", "features": "a, b"}
    assert parse_script_header(None) == {}


def test_marked_lines_are_found_and_masked_whole():
    text = "A = 1\n    B = 'x'  # ovpnas.fleet.secret\n# ovpnas.fleet.secret\nC = 2"
    assert secret_lines(text) == ["B = 'x'"]
    assert mask_secret_lines(text) == "A = 1\n    ******** # ovpnas.fleet.secret\n******** # ovpnas.fleet.secret\nC = 2"
    assert mask_secret_lines("A = 1") == "A = 1" and mask_secret_lines(None) is None


def test_query_file_entries():
    text = "# a comment\nFIREFOX=^mozilla firefox\nwin:OFFICE=^microsoft office\nbad line\nmac:X_1=a=b\n"
    assert query_file_entries(text) == [
        dict(platform="all", name="FIREFOX", regex="^mozilla firefox"),
        dict(platform="win", name="OFFICE", regex="^microsoft office"),
        dict(platform="mac", name="X_1", regex="a=b"),
    ]
    assert query_file_entries(None) == []


def test_seal_and_identity():
    text = with_identity("# ovpnas.fleet.version: 0.1.0\n# ovpnas.fleet.identity:\nx = 1\n")
    assert sealed(text) and text.endswith("\n")
    assert "\n# ovpnas.fleet.identity: %s\n" % script_identity(text) in text
    assert not sealed(text.replace("x = 1", "x = 2"))
    assert not sealed("# ovpnas.fleet.identity: abc\n")
    with pytest.raises(ValueError, match="identity"):
        with_identity("x = 1\n")


def test_sha256_ignores_trailing_newlines_only():
    assert sha256_text("a\n\n") == sha256_text("a") != sha256_text(" a")
    assert sha256_text(None) is None


def test_the_differing_lines_leave_out_the_header_fields_and_mask_secrets():
    from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import script_diff

    wanted = with_identity("# ovpnas.fleet.version: 0.2.0\n# ovpnas.fleet.identity:\nA = 1\nB = 2\n"
                           "KEY = 'new-secret'  # ovpnas.fleet.secret\nC = 3\n")
    live = with_identity("# ovpnas.fleet.version: 0.1.0\n# ovpnas.fleet.identity:\nA = 1\nB = 9\n"
                         "KEY = 'old-secret'  # ovpnas.fleet.secret\nC = 3\n")
    lines = script_diff(live, wanted)
    assert "-B = 9" in lines and "+B = 2" in lines
    assert not any("ovpnas.fleet.version" in line or "ovpnas.fleet.sha256" in line for line in lines), lines
    assert not any("secret'" in line for line in lines), "secrets are masked"
    assert script_diff(wanted, wanted) == []
    many = script_diff("\n".join("x%d = 1" % i for i in range(200)), "y = 1", limit=10)
    assert len(many) == 11 and many[-1].endswith("more lines")
