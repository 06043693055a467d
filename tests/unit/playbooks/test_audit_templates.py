"""The drift audit's report templates (playbooks/templates/audit_report.{md,html}.j2).

Rendered as ansible.builtin.template renders them: by plain jinja2 (trim_blocks, no autoescape: the
templates use builtin Jinja filters only), by Ansible's Templar, and once through ansible-playbook.

    python tests/unit/playbooks/test_audit_templates.py OUT.html [OUT.md]

writes the sample report, for a look in a browser.
"""

import copy
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import jinja2
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEMPLATES = os.path.join(REPO, "playbooks", "templates")
MD = "audit_report.md.j2"
HTML = "audit_report.html.j2"

SHA_A = "e2afc5d1a2b3" + "4" * 52
SHA_B = "9b1f00c4d2e7" + "a" * 52
SHA_C = "77d0e1f2a3b4" + "c" * 52
IDENTITY = "5f1c0a9e7d3b" + "0" * 52
SCRIPT = "<script>alert(1)</script>"
HOSTILE = "evil|" + SCRIPT
MD_COLUMNS = 8


def _header(version="0.1.0"):
    return {"generator": "ovpnas.fleet", "version": version, "features": "device_pinning, host_checker",
            "identity": IDENTITY}


def _in_sync(name, cluster=None):
    return {
        "host": name, "cluster": cluster, "status": "in_sync", "error": None,
        "post_auth": {"live_sha256": SHA_A, "expected_sha256": SHA_A, "match": True, "live_header": _header(),
                      "sealed": True, "applied": "2026-12-01T12:00:03Z"},
        "app_verify": {"live_sha256": SHA_C, "expected_sha256": SHA_C, "match": True},
        "differs": [], "users_differ": [],
    }


SAMPLE = {
    "generated": "2026-12-01T13:45:00Z",
    "inventory": "inventories/example",
    "collection_version": "0.1.0",
    "totals": {"hosts": 7, "in_sync": 2, "drift": 3, "unreachable": 1, "standby": 1},
    "hosts": [
        _in_sync("as1"),
        {   # a hand-edited script: no header, no seal, never applied by the collection
            "host": "as2", "cluster": "c1", "status": "drift", "error": None,
            "post_auth": {"live_sha256": SHA_B, "expected_sha256": SHA_A, "match": False, "live_header": {},
                          "sealed": False, "applied": None,
                          "differing_lines": ["@@ -3,2 +3,2 @@", "-    return %s" % SCRIPT, "+    return authret",
                                              "     pass"]},
            "app_verify": {"live_sha256": None, "expected_sha256": SHA_C, "match": False},
            "differs": ["auth.module.post_auth_script", "host.name"], "users_differ": ["alice"],
        },
        _in_sync("as3", cluster="c1"),
        {   # the script is right, configuration keys and a user are not
            "host": "as4", "cluster": None, "status": "drift", "error": None,
            "post_auth": {"live_sha256": SHA_A, "expected_sha256": SHA_A, "match": True, "live_header": _header(),
                          "sealed": True, "applied": "2026-11-30T09:12:44Z"},
            "app_verify": {"live_sha256": SHA_C, "expected_sha256": SHA_C, "match": True},
            "differs": ["vpn.client.routing.reroute_dns"], "users_differ": ["bob", "carol"],
        },
        {   # every value hostile: markup, pipes, backslashes, backticks, quotes, newlines
            "host": HOSTILE, "cluster": 'c|"2"&amp;', "status": "drift", "error": None,
            "post_auth": {"live_sha256": '"><b>x</b>' + SHA_B, "expected_sha256": None, "match": False,
                          "live_header": {"generator": "ovpnas.fleet", "version": "0.0.9 | *old*",
                                          "features": "<i>all</i>", "identity": "`id`"},
                          "sealed": True, "applied": "2026-11-01T00:00:00Z"},
            "app_verify": {"live_sha256": SHA_C, "expected_sha256": SHA_C, "match": True},
            "differs": [SCRIPT, "a|b", "back\\slash|pipe", "tick`s", "_x_ *y* [z](http://example.com)"],
            "users_differ": ["carol|ops", "line\nbreak"],
        },
        {
            "host": "as6", "cluster": None, "status": "unreachable",
            "error": "ssh: connect to host as6 port 22: Connection timed out\n<b>boom</b> | `x`",
            "post_auth": {"live_sha256": None, "expected_sha256": SHA_A, "match": False, "live_header": {},
                          "sealed": False, "applied": None},
            "app_verify": {"live_sha256": None, "expected_sha256": None, "match": True},
            "differs": [], "users_differ": [],
        },
        {
            "host": "as7", "cluster": "c2", "status": "standby",
            "error": "standby node of cluster c2: configuration is read from the active node",
            "post_auth": {}, "app_verify": {}, "differs": [], "users_differ": [],
        },
    ],
}


def sample():
    return copy.deepcopy(SAMPLE)


def render_jinja(name, report):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, trim_blocks=True,
                             keep_trailing_newline=True)
    return env.get_template(name).render(audit_report=report)


def render_ansible(name, report):
    """As the template action does it: the file trusted as a template, the data not."""
    templating = pytest.importorskip("ansible.template")
    if not hasattr(templating, "trust_as_template"):
        pytest.skip("ansible-core before 2.19")
    from ansible.parsing.dataloader import DataLoader

    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as handle:
        source = handle.read()
    templar = templating.Templar(loader=DataLoader(), variables={"audit_report": report})
    return templar.template(templating.trust_as_template(source), escape_backslashes=False,
                            overrides=dict(trim_blocks=True, lstrip_blocks=False))


@pytest.fixture(params=[render_jinja, render_ansible], ids=["jinja2", "templar"])
def render(request):
    return request.param


# Markdown helpers -------------------------------------------------------------------------------

def table_lines(md):
    return [line for line in md.splitlines() if line.startswith("|")]


def unescaped_pipes(line):
    """Cell delimiters as GFM (cmark-gfm and markdown-it alike) sees them: a pipe not after a backslash."""
    return len(re.findall(r"(?<!\\)\|", line))


def md_tables(md):
    """[[cell text, ...] for each body row] of the first table, through a GFM parser with HTML enabled."""
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").parse(md)
    rows, row, in_body = [], None, False
    for token in tokens:
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            break
        elif in_body and token.type == "tr_open":
            row = []
        elif in_body and token.type == "tr_close":
            rows.append(row)
        elif in_body and token.type == "inline":
            row.append(inline_text(token))
    return rows


def inline_text(token):
    return "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))


def md_inline_types(md):
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").parse(md)
    found = {token.type for token in tokens}
    for token in tokens:
        found.update(child.type for child in token.children or [])
    return found


def md_row(md, host):
    rows = [line for line in table_lines(md) if "`%s`" % host in line.split(" | ")[0]]
    assert len(rows) == 1, (host, table_lines(md))
    return rows[0]


def md_section(md, host):
    """The lines of the host's entry under "What differs"."""
    lines = md.split("\n## What differs\n", 1)[1].splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("### `%s`" % host)]
    assert len(start) == 1, (host, lines)
    section = []
    for line in lines[start[0]:]:
        if line.startswith("### ") and section:
            break
        section.append(line)
    return "\n".join(section).strip()


# HTML helpers -----------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}


class Page(HTMLParser):
    """Rows of the hosts table (cell texts, classes, sha titles), detail sections and tag balance."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors = [], []
        self.rows, self.row, self.cell = [], None, None
        self.sections, self.section = {}, None
        self.texts = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "tr" and "tbody" in self.stack:
            self.row = {"class": attrs.get("class", ""), "cells": [], "titles": []}
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag == "section" and "detail" in attrs.get("class", ""):
            self.section = {"id": attrs.get("id"), "class": attrs["class"], "text": []}
        if self.row is not None and "title" in attrs:
            self.row["titles"].append(attrs["title"])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:]))
        else:
            self.stack.pop()
        if tag in ("td", "th") and self.cell is not None:
            self.row["cells"].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        elif tag == "section" and self.section is not None:
            self.section["text"] = " ".join("".join(self.section["text"]).split())
            self.sections[self.section["id"]] = self.section
            self.section = None

    def handle_data(self, data):
        self.texts.append(data)
        if self.cell is not None:
            self.cell.append(data)
        if self.section is not None:
            self.section["text"].append(data)

    def row_of(self, host):
        found = [row for row in self.rows if row["cells"] and row["cells"][0] == host]
        assert len(found) == 1, (host, [row["cells"][:1] for row in self.rows])
        return found[0]


# Both templates ---------------------------------------------------------------------------------

def test_the_renderers_agree(render):
    for name in (MD, HTML):
        assert render(name, sample()).rstrip("\n") == render_jinja(name, sample()).rstrip("\n")


def test_every_host_appears(render):
    report = sample()
    md, page = render(MD, report), Page(render(HTML, report))
    rows = md_tables(md)
    assert len(rows) == len(report["hosts"]) == len(page.rows)
    for index, host in enumerate(report["hosts"]):
        assert rows[index][0] == host["host"]
        assert page.rows[index]["cells"][0] == host["host"]


def test_a_drifting_row_carries_its_status_and_what_differs(render):
    report = sample()
    md, page = render(MD, report), Page(render(HTML, report))

    row = md_row(md, "as2")
    assert row.startswith("| **`as2`** | `c1` | ❌ **DRIFT** |")
    for value in ("auth.module.post_auth_script", "host.name", "alice", "seal broken", "hand-written"):
        assert value in row
    cells = md_tables(md)[1]
    assert cells[3] == "%s ≠ %s, seal broken" % (SHA_B[:12], SHA_A[:12])
    assert cells[7] == "keys: auth.module.post_auth_script, host.name; users: alice"

    html_row = page.row_of("as2")
    assert html_row["class"] == "drift"
    assert html_row["cells"][1:3] == ["c1", "✗ Drift"]
    assert "auth.module.post_auth_script" in html_row["cells"][-1]
    assert "host.name" in html_row["cells"][-1]
    assert "alice" in html_row["cells"][-1]
    assert "seal broken" in html_row["cells"][3]

    # in sync: plain, green
    assert md_row(md, "as1").startswith("| `as1` | - | ✅ in sync |")
    assert page.row_of("as1")["class"] == "in_sync"
    assert page.row_of("as1")["cells"][2] == "✓ In sync"


def test_hosts_not_in_sync_are_listed_up_front_and_detailed(render):
    report = sample()
    md, html = render(MD, report), render(HTML, report)
    page = Page(html)
    summary = md.split("\n\n")[1]
    assert summary.startswith("❌ **5 of 7 hosts not in sync**")
    not_in_sync = [(i + 1, h) for i, h in enumerate(report["hosts"]) if h["status"] != "in_sync"]
    for index, host in not_in_sync:
        assert "host-%d" % index in page.sections
        assert 'href="#host-%d"' % index in html
        assert md_section(md, host["host"])  # one entry each
    assert set(page.sections) == {"host-%d" % index for index, _host in not_in_sync}
    assert "verdict bad" in html

    details = md_section(md, "as2")
    assert "(cluster `c1`): ❌ **DRIFT**" in details
    assert "- Post-auth script: live `%s`, expected `%s`" % (SHA_B, SHA_A) in details
    assert "header: **none**" in details
    assert "seal: **missing or broken**" in details
    assert "- Applied: unknown (not applied by ovpnas.fleet)" in details
    assert "- Host-checker file (`vpn.client.app_verify`): live none, expected `%s`" % SHA_C in details
    assert "- Configuration keys that differ (2): `auth.module.post_auth_script`, `host.name`" in details
    assert "- Users whose managed properties differ (1): `alice`" in details
    assert "Not read" not in details

    assert md_section(md, "as6").endswith(
        "- Not read: ssh: connect to host as6 port 22: Connection timed out \\<b\\>boom\\</b\\> \\| \\`x\\`")
    assert "Post-auth" not in md_section(md, "as6")   # not read: nothing compared
    assert "- Not read: standby node of cluster c2" in md_section(md, "as7")

    section = page.sections["host-2"]["text"]
    assert SHA_B in section and SHA_A in section and SHA_C in section
    assert "missing or broken" in section
    assert "auth.module.post_auth_script" in section
    assert page.row_of("as6")["class"] == "unreachable"
    assert page.row_of("as6")["cells"][3].startswith("Not read: ssh: connect to host as6")
    assert page.row_of("as7")["class"] == "standby"
    assert page.row_of("as7")["cells"][1:3] == ["c2", "‖ Standby"]


def test_totals_appear(render):
    report = sample()
    md, html = render(MD, report), render(HTML, report)
    summary = md.split("\n\n")[1]
    assert "\n" not in summary
    assert "of 7 hosts not in sync** (drift: 3, unreachable: 1, standby: 1; in sync: 2)." in summary
    assert "Inventory `inventories/example`, generated 2026-12-01T13:45:00Z by ovpnas.fleet `0.1.0`." in summary
    for number, label in ((7, "Hosts"), (2, "In sync"), (3, "Drift"), (1, "Unreachable"), (1, "Standby")):
        assert '<span class="n">%d</span><span class="k">%s</span>' % (number, label) in html
    assert "inventories/example" in html
    assert '<time datetime="2026-12-01T13:45:00Z">2026-12-01T13:45:00Z</time>' in html


def test_sha256_values_are_shortened_in_the_tables(render):
    report = sample()
    md, html = render(MD, report), render(HTML, report)
    table = "\n".join(table_lines(md))
    assert "`%s` ✓" % SHA_A[:12] in md_row(md, "as1")
    assert "`%s` ✓" % SHA_C[:12] in md_row(md, "as1")
    for full in (SHA_A, SHA_B, SHA_C):
        assert full not in table
    assert SHA_B in md_section(md, "as2")   # the details have them whole

    page = Page(html)
    row = page.row_of("as2")
    assert row["cells"][3] == "live %s want %s seal broken" % (SHA_B[:12], SHA_A[:12])
    assert SHA_B in row["titles"] and SHA_A in row["titles"] and SHA_C in row["titles"]
    assert '<code class="sha" title="%s">%s</code>' % (SHA_A, SHA_A[:12]) in html
    assert all(full not in " ".join(r["cells"]) for r in page.rows for full in (SHA_A, SHA_B, SHA_C))

    report["hosts"][1]["post_auth"]["live_sha256"] = "`" + SHA_B   # not a code span, still shortened
    cells = md_tables(render(MD, report))[1]
    assert cells[3].startswith("`%s ≠ %s" % (SHA_B[:11], SHA_A[:12]))


def test_nulls_render_as_a_dash(render):
    report = sample()
    report["inventory"] = ""
    md, html = render(MD, report), render(HTML, report)
    for text in (md, html):
        assert "None" not in text
    cells = md_tables(md)
    assert cells[0][1] == "-"                       # as1: no cluster
    assert cells[1][5] == "-"                       # as2: applied unknown
    assert cells[1][6].startswith("- ≠ ")           # as2: no host-checker file live
    assert "Inventory -," in md
    page = Page(html)
    assert page.row_of("as1")["cells"][1] == "—"
    assert page.row_of("as2")["cells"][5] == "—"
    assert page.row_of("as1")["cells"][-1] == "—"   # nothing differs
    assert "Inventory —" in " ".join("".join(page.texts).split())


def test_values_are_escaped(render):
    report = sample()
    md, html = render(MD, report), render(HTML, report)

    # HTML: no markup from the data survives, in text or attributes, and it reads back as it was
    assert "<script" not in html.lower()
    assert "<b>x" not in html and "<b>boom" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'title="&#34;&gt;&lt;b&gt;x&lt;/b&gt;%s"' % SHA_B in html
    page = Page(html)
    row = page.row_of(HOSTILE)
    assert row["cells"][1] == 'c|"2"&amp;'
    assert '"><b>x</b>' + SHA_B in row["titles"]
    assert '"><b>x</b' in row["cells"][3]            # the first 12 characters
    for value in report["hosts"][4]["differs"]:
        assert value in row["cells"][-1]
    assert "line break" in row["cells"][-1]
    assert "ovpnas.fleet 0.0.9 | *old*" in row["cells"][4] and "<i>all</i>" in row["cells"][4]
    assert "<b>boom</b> | `x`" in page.row_of("as6")["cells"][3]

    # Markdown: a valid table whatever the values, no HTML, no emphasis, no link from the data
    lines = table_lines(md)
    assert len(lines) == 2 + len(report["hosts"])
    for line in lines:
        assert unescaped_pipes(line) == MD_COLUMNS + 1, line
    assert "evil\\|<script>" in md_row(md, "evil\\|" + SCRIPT)
    types = md_inline_types(md)
    assert not types & {"html_inline", "html_block", "em_open", "link_open", "s_open"}, types
    cells = md_tables(md)[4]
    assert cells[0] == HOSTILE
    assert cells[1] == 'c|"2"&amp;'
    assert cells[3].startswith('"><b>x</b')
    assert cells[4] == "ovpnas.fleet 0.0.9 | *old*"
    assert cells[7] == ("keys: " + ", ".join(report["hosts"][4]["differs"]) + "; users: carol|ops, line break")

    section = md_section(md, "evil|" + SCRIPT)
    assert "`%s`" % SCRIPT in section                 # a code span: shown, not run
    assert "`back\\slash|pipe`" in section           # outside a table a pipe needs no escape
    assert "tick\\`s" in section


def test_template_expressions_in_the_data_are_not_evaluated():
    report = sample()
    report["hosts"][0]["host"] = "{{ 7 * 7 }}"
    report["inventory"] = "{% raw %}{{ lookup('pipe', 'id') }}"
    for name in (MD, HTML):
        out = render_ansible(name, copy.deepcopy(report))
        assert "{{ 7 * 7 }}" in out
        assert "lookup(&#39;pipe&#39;" in out or "lookup('pipe'" in out


def test_all_in_sync(render):
    report = sample()
    report["hosts"] = [_in_sync("as1"), _in_sync("as2", cluster="c1")]
    report["totals"] = {"hosts": 2, "in_sync": 2, "drift": 0, "unreachable": 0, "standby": 0}
    md, html = render(MD, report), render(HTML, report)
    assert md.split("\n\n")[1].startswith("✅ **All 2 hosts in sync** (drift: 0, unreachable: 0, standby: 0;")
    assert md.rstrip("\n").endswith("## What differs\n\nEvery host is in sync: nothing differs.")
    assert "**" not in "\n".join(table_lines(md))
    page = Page(html)
    assert "verdict good" in html and "verdict bad" not in html
    assert page.sections == {}
    assert [row["class"] for row in page.rows] == ["in_sync", "in_sync"]
    assert "Every host is in sync" in html
    assert "<title>✓ in sync" in html.replace("&#10003;", "✓")


def test_an_empty_or_partial_report_renders(render):
    md, html = render(MD, {}), render(HTML, {})
    assert "None" not in md + html
    assert "⚠️ **No hosts in this report**" in md
    assert len(table_lines(md)) == 3
    assert all(unescaped_pipes(line) == MD_COLUMNS + 1 for line in table_lines(md))
    assert "No hosts in this report." in html

    nulls = {"host": "nulls", "cluster": None, "status": "drift", "error": None, "post_auth": None,
             "app_verify": None, "differs": None, "users_differ": None}
    report = {"hosts": [{"host": "odd", "status": "weird"}, {"host": "bare", "status": "drift"}, nulls],
              "totals": None, "generated": None, "inventory": None, "collection_version": None}
    md, html = render(MD, report), render(HTML, report)
    assert "None" not in md + html
    assert "❓ **WEIRD**" in md_row(md, "odd")
    assert "3 of 3 hosts not in sync" in md
    assert "- Nothing recorded for this host." in md_section(md, "bare")
    page = Page(html)
    assert page.row_of("odd")["class"] == "other"
    assert page.row_of("odd")["cells"][2] == "? weird"
    assert len(page.sections) == 3
    assert "- Nothing recorded for this host." in md_section(md, "nulls")
    assert page.row_of("nulls")["cells"][1:] == ["—", "✗ Drift", "—", "—", "—", "—", "—"]


def test_the_page_is_self_contained_and_well_formed(render):
    html = render(HTML, sample())
    assert html.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    lowered = html.lower()
    for needle in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "<form", " src=", "url(", "@import"):
        assert needle not in lowered, needle
    assert not re.search(r"<[^>]*\son\w+=", lowered)            # no event handler attributes
    links = re.findall(r'href="([^"]*)"', html)
    assert links and all(link.startswith("#") for link in links)  # only anchors within the page
    assert "<style>" in html
    assert "default-src 'none'; style-src 'unsafe-inline'" in html
    page = Page(html)
    assert page.errors == [] and page.stack == []


def test_the_template_module_renders_them(tmp_path):
    """ansible.builtin.template itself, from a playbook, into drift.md and drift.html."""
    playbook_bin = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook_bin):
        pytest.skip("no ansible-playbook next to %s" % sys.executable)
    report = sample()
    (tmp_path / "vars.json").write_text(json.dumps({"audit_report": report}))
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.template: {src: %s, dest: %s, mode: '0644'}\n"
        "    - ansible.builtin.template: {src: %s, dest: %s, mode: '0644'}\n"
        % (os.path.join(TEMPLATES, MD), tmp_path / "drift.md", os.path.join(TEMPLATES, HTML), tmp_path / "drift.html")
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run(
        [playbook_bin, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
         "-e", "@" + str(tmp_path / "vars.json"), str(tmp_path / "play.yml")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "drift.md").read_text(encoding="utf-8") == render_jinja(MD, sample())
    assert (tmp_path / "drift.html").read_text(encoding="utf-8") == render_jinja(HTML, sample())


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        out.write(render_jinja(HTML, sample()))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w", encoding="utf-8") as out:
            out.write(render_jinja(MD, sample()))


def test_the_lines_of_a_script_that_differ_are_shown(render):
    report = sample()
    md, html = render(MD, report), render(HTML, report)
    section = md_section(md, "as2")
    fenced = "````diff\n  @@ -3,2 +3,2 @@\n  -    return %s\n  +    return authret\n       pass\n  ````" % SCRIPT
    assert fenced in section
    assert "<pre class=\"diff\">@@ -3,2 +3,2 @@\n-    return &lt;script&gt;alert(1)&lt;/script&gt;\n" in html
    # only where there are any
    assert md.count("````diff") == 1 and html.count('<pre class="diff">') == 1
