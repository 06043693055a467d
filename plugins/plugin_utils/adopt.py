# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Adopt a fleet as it runs: what each server's read found, as a folder that deploys it again without a write.

``adoption(reads)`` groups the servers by what their post-auth script does (its identity), and
returns the folder's files: ``files/`` (each distinct script; a template where the script holds
secrets), ``host_vars/`` (each server pointed at its script, pinned by sha256), ``hosts.yml`` (a group
per script), ``REPORT.md``, and the secrets found (assignments whose names look secret), which the
caller writes encrypted with ansible-vault. A template renders back to the captured text, byte for
byte, or the script is refused: deploying the folder must find every server already right.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json

from ansible_collections.ovpnas.fleet.plugins.filter.pyliteral import pyliteral
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import to_sacli_string
from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import (
    SECRET_MARKER,
    mask_secret_lines,
    parse_script_header,
    script_identity,
    sealed,
    sha256_text,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import secret_matcher, secret_name

SECRETS_VARIABLE = "ovpnas_adopt_secrets"
# the template of a script with secrets: rendered as it is, line breaks and all
JINJA_HEADER = "#jinja2: trim_blocks: False, lstrip_blocks: False, keep_trailing_newline: True\n"
# how alike two scripts must be (difflib's ratio of their lines) for one to count as a drifted copy of the other
DRIFT_RATIO = 0.8


class AdoptError(ValueError):
    """A script cannot be adopted as it is; the message says which and why."""


def secret_literals(text):
    """The string literals assigned to names that look secret: (name, value, line, start, end) (columns in bytes).

    Raises AdoptError where a secret cannot be taken out of the text and written back the same way.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        if any(secret_name(word) for word in _words(text)):
            raise AdoptError("does not compile (%s), so its secrets cannot be told apart" % exc) from None
        return []
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AnnAssign) and node.value is not None else []
        for target in targets:
            if not (isinstance(target, ast.Name) and secret_name(target.id)):
                continue
            value = node.value
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                raise AdoptError("%s (line %d) holds a secret that is not a plain string" % (target.id, node.lineno))
            if not value.value:
                continue
            if value.end_lineno != value.lineno:
                raise AdoptError("%s (line %d) holds a secret over several lines" % (target.id, node.lineno))
            line = text.split("\n")[value.lineno - 1].encode("utf-8")
            segment = line[value.col_offset:value.end_col_offset].decode("utf-8")
            quote = segment[:1] if segment[:1] in ("'", '"') and not segment.startswith(("'''", '"""')) else None
            if quote is None or pyliteral(value.value, quote=quote) != segment:
                raise AdoptError("%s (line %d) holds a secret written in a way adopt cannot write back the same"
                                 % (target.id, node.lineno))
            found.append((target.id, value.value, value.lineno, value.col_offset, value.end_col_offset))
    return sorted(found, key=lambda item: (item[2], item[3]))


def _words(text):
    word = []
    for char in text + " ":
        if char.isalnum() or char == "_":
            word.append(char)
        elif word:
            yield "".join(word)
            word = []


def _raw(text):
    if "{% endraw %}" in text or "{%endraw%}" in text.replace(" ", ""):
        raise AdoptError("holds the text {% endraw %}, which a template cannot carry")
    return "{%% raw %%}%s{%% endraw %%}" % text if text else ""


def as_template(text, group, secrets):
    """The template that renders back to ``text``, its secrets read from ``ovpnas_adopt_secrets[group]``."""
    data = text.encode("utf-8")
    starts, offset = [], 0
    for line in data.split(b"\n"):
        starts.append(offset)
        offset += len(line) + 1
    parts, position = [], 0
    for name, _value, line, begin, end in secrets:
        begin, end = starts[line - 1] + begin, starts[line - 1] + end
        quote = data[begin:begin + 1].decode("utf-8")
        parts.append(_raw(data[position:begin].decode("utf-8")))
        parts.append("{{ %s[%r][%r] | ovpnas.fleet.pyliteral(quote=%r) }}" % (SECRETS_VARIABLE, group, name, quote))
        position = end
    parts.append(_raw(data[position:].decode("utf-8")))
    return JINJA_HEADER + "".join(parts)


def render(template, variables):
    """``template`` rendered as the deploy renders it (the pyliteral filter, no trimming), to check a round trip."""
    from jinja2 import Environment, StrictUndefined

    environment = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    environment.filters["ovpnas.fleet.pyliteral"] = pyliteral
    return environment.from_string(template[len(JINJA_HEADER):]).render(**variables)


class Script:
    """One distinct script (by identity) and the servers that run it."""

    def __init__(self, text):
        self.text = text
        self.identity = script_identity(text)
        self.group = "script_" + self.identity[:12]
        self.hosts = []
        self.header = parse_script_header(text)
        self.collections_own = self.header.get("generator", "").startswith("ovpnas.fleet") and sealed(text)
        self.problem = None
        self.secrets = []
        self.names = []
        try:
            if SECRET_MARKER in text:
                raise AdoptError("holds secrets on lines marked %s, as a script the collection composed does: "
                                 "deploy it from the inventory that composed it" % SECRET_MARKER)
            self.secrets = secret_literals(text)
        except AdoptError as exc:
            self.problem = str(exc)
        self.names = sorted({name for name, *_rest in self.secrets})
        self.file = "files/%s.py%s" % (self.group.replace("_", "-"), ".j2" if self.secrets else "")
        self.source = as_template(text, self.group, self.secrets) if self.secrets and not self.problem else text
        if self.secrets and not self.problem:
            values = {SECRETS_VARIABLE: {self.group: {name: value for name, value, *_rest in self.secrets}}}
            if render(self.source, values) != text:
                self.problem = "its template does not render back to the script"

    @property
    def secret_values(self):
        return {name: value for name, value, *_rest in self.secrets}

    def shown(self):
        """The script as the report may show it: its secrets masked."""
        return mask_secret_lines(self.text, self.names)


def drifted(scripts):
    """{group: (the group it is a drifted copy of, the differing lines)} for scripts close to one run more widely."""
    found = {}
    for script in scripts:
        wider = [other for other in scripts if len(other.hosts) > len(script.hosts)]
        best = None
        for other in wider:
            ratio = difflib.SequenceMatcher(None, other.text.split("\n"), script.text.split("\n")).ratio()
            if ratio >= DRIFT_RATIO and (best is None or ratio > best[0]):
                best = (ratio, other)
        if best:
            lines = [line for line in difflib.unified_diff(best[1].shown().split("\n"), script.shown().split("\n"),
                                                           lineterm="", n=0)
                     if not line.startswith(("---", "+++", "@@"))]
            found[script.group] = (best[1].group, lines[:20])
    return found


def managed_keys(read, wanted, secret_keys=()):
    """The configuration keys the inventory manages (``wanted``, ``ovpnas_config_settings``) where the server holds
    something else: {"keep": what a deploy must write for the server to stay as it is, "differs": [(key, inventory,
    live, secret)]}, or None where every key holds what the inventory says."""
    live = read.get("config") or {}
    is_secret = secret_matcher(secret_keys)
    keep, differs = {}, []
    for key, value in sorted((wanted or {}).items()):
        try:
            value = to_sacli_string(value, key)
        except TypeError:
            value = None
        have = live.get(key)
        if have is not None:
            keep[key] = have
        if have != value:
            differs.append((key, value, have, is_secret(key)))
    return {"keep": keep, "differs": differs} if differs else None


def adoption(reads, settings=None):
    """What the adopt folder holds, from each server's read (``sacli_info`` with the script and the query file).

    ``reads`` maps each host to its read, or to None where it could not be read; ``settings`` maps hosts to the
    configuration keys the inventory manages for them and the secret key patterns (``ovpnas_config_settings``,
    ``ovpnas_secret_keys``). Returns a dict: ``scripts`` (Script, by group), ``hosts`` ({host: group, or None where
    no script is loaded}), ``query_files`` ({sha256: {text, hosts}}), ``settings`` ({host: see ``managed_keys``}),
    ``unread`` ({host: why}), ``drift`` (see ``drifted``) and ``refused`` ({group: why}).
    """
    scripts, hosts, query_files, unread, kept = {}, {}, {}, {}, {}
    for host in sorted(reads):
        read = reads[host]
        if not isinstance(read, dict) or read.get("failed") or read.get("unreachable") or "post_auth" not in read:
            unread[host] = (read or {}).get("msg") or "not read"
            continue
        live = read["post_auth"]
        text = live.get("content") if live.get("present") else None
        if text is None:
            hosts[host] = None
        else:
            script = Script(text)
            script = scripts.setdefault(script.identity, script)
            script.hosts.append(host)
            hosts[host] = script.group
        wanted, secret_keys = (settings or {}).get(host) or ({}, ())
        differs = managed_keys(read, wanted, secret_keys)
        if differs:
            kept[host] = differs
        query = read.get("app_verify") or {}
        if query.get("present"):
            entry = query_files.setdefault(sha256_text(query["content"]), {"text": query["content"], "hosts": []})
            entry["hosts"].append(host)
    by_group = {script.group: script for script in scripts.values()}
    return {
        "scripts": by_group,
        "hosts": hosts,
        "query_files": query_files,
        "settings": kept,
        "unread": unread,
        "drift": drifted(list(by_group.values())),
        "refused": {group: script.problem for group, script in by_group.items() if script.problem},
    }


def sha256_of(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unsafe(value):
    """A YAML string that Ansible reads as it is, never as a template (JSON strings are YAML strings)."""
    return "!unsafe %s" % json.dumps(value)


def host_vars(adopted, host):
    """The variables that point ``host`` at what it ran when it was adopted."""
    group = adopted["hosts"][host]
    lines = ["---", "# Written by playbooks/adopt_postauth.yml: what this server ran when it was adopted."]
    if group is None:
        lines.append("post_auth_state: absent")
    else:
        script = adopted["scripts"][group]
        lines += ["post_auth_source: %s" % script.file, "post_auth_source_sha256: %s" % sha256_of(script.source)]
    kept = adopted["settings"].get(host)
    if kept:
        secret = {key for key, _want, _have, is_secret in kept["differs"] if is_secret}
        lines += ["# the keys the inventory manages, as this server holds them (see REPORT.md: remove to let the "
                  "inventory's values be written)", "ovpnas_config_settings:" + ("" if kept["keep"] else " {}")]
        for key, value in sorted(kept["keep"].items()):
            # a secret's value is read from the vault file; the others are as they are
            value = json.dumps("{{ %s[%r][%r] }}" % (SECRETS_VARIABLE, "settings_" + host, key)) if key in secret \
                else _unsafe(value)
            lines.append("  %s: %s" % (json.dumps(key), value))
    return "\n".join(lines) + "\n"


def inventory(adopted):
    """hosts.yml: a group per distinct script (``script_<identity>``), and ``no_script``."""
    groups = {}
    for host, group in sorted(adopted["hosts"].items()):
        groups.setdefault(group or "no_script", []).append(host)
    lines = ["---", "# Written by playbooks/adopt_postauth.yml: the servers grouped by the script they run.", "all:",
             "  children:"]
    for group in sorted(groups):
        lines += ["    %s:" % group, "      hosts:"] + ["        %s: {}" % host for host in groups[group]]
    return "\n".join(lines) + "\n"


def report(adopted, inventory_sources=""):
    """REPORT.md: which servers run what, which scripts are the collection's own, which copies drifted."""
    scripts = sorted(adopted["scripts"].values(), key=lambda s: (-len(s.hosts), s.group))
    out = ["# Adopted post-auth scripts", ""]
    if inventory_sources:
        out += ["Inventory: %s" % inventory_sources, ""]
    out += ["%d servers read, %d distinct scripts, %d servers without a script, %d not read." % (
        len(adopted["hosts"]), len(scripts), sum(1 for g in adopted["hosts"].values() if g is None),
        len(adopted["unread"])), "", "| group | file | servers | written by | secrets (in the vault) | drift |",
        "|---|---|---|---|---|---|"]
    for script in scripts:
        if script.collections_own:
            author = "ovpnas.fleet %s (sealed)" % script.header.get("version", "?")
        elif script.header.get("generator"):
            author = "ovpnas.fleet header, edited since (seal broken)"
        else:
            author = "by hand"
        drift = adopted["drift"].get(script.group)
        out.append("| `%s` | `%s` | %s | %s | %s | %s |" % (
            script.group, script.file, ", ".join(script.hosts), author, ", ".join(script.names) or "none",
            "drifted copy of `%s`" % drift[0] if drift else ""))
    for group, (wider, lines) in sorted(adopted["drift"].items()):
        out += ["", "## `%s` drifted from `%s`" % (group, wider), "", "```diff"] + lines + ["```"]
    if adopted["refused"]:
        out += ["", "## Not adopted", ""]
        out += ["- `%s` (%s): %s" % (group, ", ".join(adopted["scripts"][group].hosts), why)
                for group, why in sorted(adopted["refused"].items())]
    if adopted["settings"]:
        out += ["", "## Configuration keys the servers hold otherwise than the inventory says", "",
                "Adopted as the servers hold them (`ovpnas_config_settings` in `host_vars`): remove a server's to let "
                "the inventory's values be written by the next deploy.", "",
                "| server | key | inventory | server |", "|---|---|---|---|"]
        for host, kept in sorted(adopted["settings"].items()):
            for key, want, have, secret in kept["differs"]:
                shown = ["********" if secret and v is not None else "(none)" if v is None else "`%s`" % v
                         for v in (want, have)]
                out.append("| %s | `%s` | %s | %s |" % (host, key, shown[0], shown[1]))
    if adopted["query_files"]:
        out += ["", "## Host-checker query files (vpn.client.app_verify)", "",
                "Captured for reference; the deploy leaves them as they are until `host_checker_apps` is set.", ""]
        for digest, entry in sorted(adopted["query_files"].items()):
            out.append("- `files/appver-%s.txt`: %s" % (digest[:12], ", ".join(entry["hosts"])))
    if adopted["unread"]:
        out += ["", "## Not read", ""] + ["- %s: %s" % (host, why) for host, why in sorted(adopted["unread"].items())]
    return "\n".join(out) + "\n"


def folder(adopted, inventory_sources=""):
    """{relative path: text} of the adopt folder, the vault file aside (see ``secrets``)."""
    files = {"hosts.yml": inventory(adopted), "REPORT.md": report(adopted, inventory_sources)}
    for script in adopted["scripts"].values():
        files[script.file] = script.source
    for host in adopted["hosts"]:
        files["host_vars/%s.yml" % host] = host_vars(adopted, host)
    for digest, entry in adopted["query_files"].items():
        files["files/appver-%s.txt" % digest[:12]] = entry["text"].rstrip("\r\n") + "\n"
    return files


def secrets(adopted):
    """{group: {name: value}} of the scripts that hold secrets, and {settings_<host>: {key: value}} of the secret
    configuration keys adopted."""
    found = {script.group: script.secret_values for script in adopted["scripts"].values() if script.secrets}
    for host, kept in adopted["settings"].items():
        values = {key: kept["keep"][key] for key, _want, _have, secret in kept["differs"]
                  if secret and key in kept["keep"]}
        if values:
            found["settings_" + host] = values
    return found


def secrets_yaml(found):
    """The vault file's text (before encryption): ``ovpnas_adopt_secrets`` by group and name."""
    lines = ["---", "# Written by playbooks/adopt_postauth.yml: the secrets taken out of the adopted scripts.",
             "%s:" % SECRETS_VARIABLE]
    for group in sorted(found):
        lines.append("  %s:" % group)
        # JSON strings are YAML strings: every value is read back exactly, and never as a template
        lines += ["    %s: %s" % (json.dumps(name), _unsafe(value)) for name, value in sorted(found[group].items())]
    return "\n".join(lines) + "\n"
