# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An administrator's own post-auth script (``post_auth_source``): found, pinned, rendered, checked, on the controller.

The source is a Python file, loaded as it is, or a Jinja template (``.j2``) rendered with the
host's variables, into which values enter only through the ``ovpnas.fleet.pyliteral`` filter. What
is loaded is the source's text under a header of ``# ovpnas.fleet.<field>:`` lines and above a seal:
its identity (what it does) leaves those lines out, so a server that runs the same text, loaded by
hand, is already right. Every problem is a ``SettingsError`` that names the variable.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re

from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import secret_name
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import fail, shown

PYLITERAL = ("ovpnas.fleet.pyliteral", "pyliteral")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# a source larger than this is no post-auth script (Access Server keeps it in one configuration value)
MOST_BYTES = 4 * 1024 * 1024


def search_dirs(task_vars):
    """Where a relative ``post_auth_source`` is looked up: the folders of the inventory sources, then the playbook's."""
    dirs = []
    for source in task_vars.get("ansible_inventory_sources") or []:
        if isinstance(source, str) and os.path.exists(source):
            dirs.append(source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source)))
    if task_vars.get("playbook_dir"):
        dirs.append(task_vars["playbook_dir"])
    return dirs


def source_path(value, dirs):
    """The source file ``value`` names, absolute: as it is, or the first of ``dirs`` that holds it."""
    path = os.path.expanduser(value)
    candidates = [path] if os.path.isabs(path) else [os.path.join(folder, path) for folder in dirs]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    where = "" if os.path.isabs(path) else " (looked in %s)" % (", ".join(dirs) or "no folder")
    fail("post_auth_source", "%s is no file%s" % (shown(value), where))


def _outputs(node):
    from jinja2 import nodes

    for output in node.find_all(nodes.Output):
        for child in output.nodes:
            if not isinstance(child, nodes.TemplateData):
                yield child


class _Any(dict):
    """Filters and tests by any name: a template is read here, not rendered (Ansible's own are not loaded)."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return _nothing

    def get(self, name, default=None):
        return dict.get(self, name, _nothing)


def _nothing(*args, **kwargs):
    return None


def _environment():
    from jinja2 import Environment

    environment = Environment()
    environment.filters = _Any(environment.filters)
    environment.tests = _Any(environment.tests)
    return environment


# what a template may not do: take text from another template, which this check does not see
ELSEWHERE = ("Include", "Import", "FromImport", "Extends")


def check_template(text, name):
    """Refuse a template that writes a value into the script other than through the pyliteral filter."""
    from jinja2 import TemplateSyntaxError, nodes

    if text.startswith("#jinja2:"):
        # Ansible reads this line's overrides; other delimiters would hide expressions from this check
        overrides = text.split("\n", 1)[0]
        if "_string" in overrides:
            fail("post_auth_source", "%s, line 1: a template keeps Jinja's own delimiters ({{ }}, {%% %%}, {# #})"
                 % name)
    try:
        tree = _environment().parse(text)
    except TemplateSyntaxError as exc:
        fail("post_auth_source", "%s, line %s: %s" % (name, exc.lineno, exc.message))
    for kind in ELSEWHERE:
        for node in tree.find_all(getattr(nodes, kind)):
            fail("post_auth_source", "%s, line %d: a template is one file: no include, import or extends"
                 % (name, node.lineno))
    for expression in _outputs(tree):
        if not (isinstance(expression, nodes.Filter) and expression.name in PYLITERAL):
            fail("post_auth_source", "%s, line %d: values enter the script only through the ovpnas.fleet.pyliteral "
                                     "filter ({{ value | ovpnas.fleet.pyliteral }}), as Python literals"
                 % (name, expression.lineno))
    return tree


def template_variables(tree):
    """The variables a template reads (those it does not set itself)."""
    from jinja2.meta import TrackingCodeGenerator

    generator = TrackingCodeGenerator(_environment())
    generator.visit(tree)
    return sorted(generator.undeclared_identifiers)


def secret_values(value, secret=False):
    """The strings of a variable's value that are secrets: all of it where its name looks secret, else those under
    keys that look secret."""
    if isinstance(value, str):
        return [value] if secret and value else []
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(secret_values(item, secret or (isinstance(key, str) and secret_name(key))))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(secret_values(item, secret))
    return found


def assignments(text):
    """The names assigned at any level of a script, with the string each is given where it is a literal."""
    found = {}
    for node in ast.walk(ast.parse(text)):
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name):
                literal = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None
                found.setdefault(target.id, [])
                if literal:
                    found[target.id].append(literal)
    return found


def compiled(text, name):
    """``text`` compiled as Access Server compiles a script; a syntax error names the line."""
    try:
        compile(text, "<string>", "exec")
    except SyntaxError as exc:
        fail("post_auth_source", "%s does not compile: line %s: %s" % (name, exc.lineno, exc.msg))
    except ValueError as exc:
        fail("post_auth_source", "%s does not compile: %s" % (name, exc))


def header(name, version, cases_sha256):
    """The lines above an own script: how it came to be (its identity leaves them out)."""
    return ("# ovpnas.fleet.generator: ovpnas.fleet (own script)\n"
            "# ovpnas.fleet.source: %s\n"
            "# ovpnas.fleet.version: %s\n"
            "# ovpnas.fleet.cases_sha256: %s\n"
            "# ovpnas.fleet.identity:\n" % (name, version, cases_sha256))


class OwnScript:
    """The source of ``post_auth_source``, read and pinned; ``text(render)`` is the script it makes.

    ``params`` are the post_auth role's checked variables (unprefixed), ``dirs`` where a relative source is
    looked up (``search_dirs``).
    """

    def __init__(self, params, dirs):
        self.path = source_path(params["source"], dirs)
        self.name = os.path.basename(self.path)
        self.template = self.path.endswith(".j2")
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MOST_BYTES + 1)
        except OSError as exc:
            fail("post_auth_source", "%s cannot be read: %s" % (self.path, exc.strerror))
        if len(raw) > MOST_BYTES:
            fail("post_auth_source", "%s is larger than %d bytes" % (self.path, MOST_BYTES))
        self.sha256 = hashlib.sha256(raw).hexdigest()
        pinned = params.get("source_sha256") or ""
        if pinned and not SHA256.match(pinned.strip()):
            fail("post_auth_source_sha256", "must be a sha256 (64 hexadecimal digits), not %s" % shown(pinned))
        if pinned and pinned.strip().lower() != self.sha256:
            fail("post_auth_source_sha256", "%s has the sha256 %s, not the pinned %s: nothing was changed"
                 % (self.path, self.sha256, pinned.strip().lower()))
        try:
            self.source = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail("post_auth_source", "%s is not UTF-8 text (byte %d)" % (self.path, exc.start))
        if "\0" in self.source:
            fail("post_auth_source", "%s holds a NUL character" % self.path)
        self.declared = list(params.get("source_secrets") or [])
        for declared in self.declared:
            if not NAME.match(declared):
                fail("post_auth_source_secrets", "%s is no Python name" % shown(declared))
        self.variables = []
        if self.template:
            self.variables = template_variables(check_template(self.source, self.name))
        self.secret_names = []
        self.secrets = []

    def text(self, render=None, variable=None):
        """The script as it is loaded: the source (rendered, for a template); its secrets found.

        ``render(path)`` renders the template with the host's variables; ``variable(name)`` is one of them,
        templated (None where unset): the secrets of those the template reads are masked wherever the script shows.
        """
        if self.template:
            body = render(self.path)
            for name in self.variables:
                value = variable(name) if variable else None
                if value is not None:
                    self.secrets.extend(secret_values(value, secret_name(name)))
        else:
            body = self.source
        if not body.strip():
            fail("post_auth_source", "%s makes an empty script" % self.name)
        compiled(body, self.name)
        assigned = assignments(body)
        missing = [name for name in self.declared if name not in assigned]
        if missing:
            fail("post_auth_source_secrets", "%s assigns no %s" % (self.name, ", ".join(missing)))
        self.secret_names = sorted(name for name in assigned if name in self.declared or secret_name(name))
        for name in self.secret_names:
            self.secrets.extend(assigned[name])
        return body if body.endswith("\n") else body + "\n"
