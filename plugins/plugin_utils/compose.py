# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compose, on the controller, what the host_checker and post_auth roles load (``desired_state``).

The post-auth script's identity is what it does (``script_format.script_identity``): the sha256
of its text without the header fields that say which version of the collection wrote it. It is
kept on the controller once the script is rendered (``identity_cache``), so that a server that
already runs the script costs one read and no rendering, and a new collection, ansible-core or
Jinja2 that renders the same script changes nothing on any server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tokenize

import jinja2
import yaml
from ansible.errors import AnsibleError
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

try:
    from ansible.template import trust_as_template
except ImportError:  # before ansible-core 2.19, every string is a template
    trust_as_template = None

from ansible_collections.ovpnas.fleet.plugins.module_utils.script_format import script_identity, with_identity
from ansible_collections.ovpnas.fleet.plugins.plugin_utils import capabilities, identity_cache
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.checks import SHOWN, SettingsError, flag, shown
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.own_script import OwnScript, search_dirs
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.own_script import header as own_header
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.post_auth import (
    build_settings,
    exclusive_prefixes,
    script_parts,
    secret_properties,
)
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.shapes import ShapeError, checked_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "templates", "post_auth", "frame.py.j2")
HARNESS = os.path.join(ROOT, "roles", "post_auth", "files", "policy_harness.py")
# what turns settings into the script's text, besides the templates: the literal renderer, the
# capabilities (their titles, messages and what the frame renders for them), the builder, this file and the
# script format (which fills in the identity)
RENDERERS = tuple(os.path.join(ROOT, "plugins", *parts) for parts in (
    ("filter", "pyliteral.py"), ("plugin_utils", "post_auth.py"), ("plugin_utils", "compose.py"),
    ("module_utils", "script_format.py"))) + capabilities.FILES
ROLES = ("host_checker", "post_auth")
# the rendering engine: another version may render the same templates differently
RENDERER_VERSIONS = {"ansible-core": ansible_version, "jinja2": jinja2.__version__}


class ComposeError(AnsibleError):
    """A variable of a role is invalid; the message names it."""


def sha256_json(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def _files_digest(template):
    """The sha256 of the templates (``*.j2``) next to ``template``, recursively, and of the renderers."""
    digest = hashlib.sha256()
    top = os.path.dirname(template)
    paths = []
    for folder, _dirs, names in os.walk(top):
        paths.extend(os.path.join(folder, name) for name in names if name.endswith(".j2"))
    named = sorted((os.path.relpath(path, top), path) for path in paths)
    named += [(os.path.relpath(path, ROOT), path) for path in RENDERERS]
    for name, path in named:
        digest.update(name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read() + b"\0")
    return digest.hexdigest()


# --- the roles' variables ------------------------------------------------------------------


def role_file(role, *parts):
    return os.path.join(ROOT, "roles", role, *parts)


def _trusted(value):
    """``value`` with its templates trusted, as Ansible trusts those of a role's own files (ansible-core 2.19+)."""
    if trust_as_template is None:
        return value
    if isinstance(value, str):
        return trust_as_template(value) if "{{" in value or "{%" in value else value
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


_ROLE_FILES = {}


def load_role_file(loader, role, *parts):
    """A YAML file of a role, parsed once per process; callers must not change it.

    Plain YAML (the C parser where there is one), not the loader's: Ansible's loader tags every value
    with its origin and hands out deep copies of what it cached, which cost more than a whole read of a
    server on a run that changes nothing (the argument specs are large). ``loader`` is kept for callers.
    """
    path = role_file(role, *parts)
    if path not in _ROLE_FILES:
        with open(path, "rb") as handle:
            _ROLE_FILES[path] = _trusted(yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return _ROLE_FILES[path]


GOT = re.compile(r"(got: )(.*)$", re.DOTALL)
WHOLE_NUMBER = re.compile(r"^\s*-?[0-9]+\s*\Z")
TYPE_NAMES = {str: "a string", bool: "true or false", int: "a whole number", list: "a list", dict: "a mapping"}


def _kind(value):
    if isinstance(value, bool):
        return "a boolean"
    for kind, text in TYPE_NAMES.items():
        if isinstance(value, kind) and kind is not bool:
            return text
    return "null" if value is None else "a %s" % type(value).__name__


def strict_value(name, value, option):
    """``value`` of the variable ``name`` checked against its argument spec ``option``, without coercion.

    Booleans are read the way Ansible reads them (``yes``/``no`` and the like), whole numbers may be
    given as text; a string is never split into a list, nor a list or mapping turned into a string.
    Messages name the variable and never show more than the start of a value.
    """
    kind = option.get("type", "str")
    if value is None:
        return None
    try:
        if kind == "bool":
            value = flag(value, name)
        elif kind == "int":
            if isinstance(value, str) and WHOLE_NUMBER.match(value):
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError("%s: must be a whole number, not %s" % (name, _kind(value)))
        elif kind in ("str", "path"):
            if not isinstance(value, str):
                raise SettingsError("%s: must be a string, not %s" % (name, _kind(value)))
        elif kind in ("list", "dict"):
            wanted = list if kind == "list" else dict
            if not isinstance(value, wanted):
                raise SettingsError("%s: must be %s, not %s" % (name, TYPE_NAMES[wanted], _kind(value)))
            elements = {"str": str, "dict": dict}.get(option.get("elements"))
            for index, item in enumerate(value if kind == "list" else ()):
                if elements is not None and not isinstance(item, elements):
                    wanted_item = TYPE_NAMES[elements]
                    raise SettingsError("%s[%d]: must be %s, not %s" % (name, index, wanted_item, _kind(item)))
                if option.get("options") and any(not isinstance(key, str) for key in item):
                    # Ansible's validator fails on a key that is not text instead of naming it
                    key = next(key for key in item if not isinstance(key, str))
                    raise SettingsError("%s[%d]: the key %s is not text" % (name, index, shown(key)))
    except SettingsError as exc:
        raise ComposeError(str(exc)) from None
    choices = option.get("choices")
    for index, item in enumerate(value if kind == "list" else [value]):
        if choices and item not in choices:
            where = "%s[%d]" % (name, index) if kind == "list" else name
            raise ComposeError("%s: %s is not one of %s" % (where, shown(item), ", ".join(str(c) for c in choices)))
    return value


def _long_strings(value):
    if isinstance(value, str):
        if len(value) > SHOWN:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _long_strings(key)
            yield from _long_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _long_strings(item)


def shortened(message, values=()):
    """A message of the argument-spec validator, which may quote ``values``, with only the start of each."""
    for text in sorted(set(_long_strings(list(values))), key=len, reverse=True):
        for form in (text, repr(text)[1:-1]):
            message = message.replace(form, form[:SHOWN] + "...")
    message = GOT.sub(lambda m: m.group(1) + shown(m.group(2)), message)
    return message if len(message) <= 400 else message[:400] + "..."


def checked(role, spec, provided, defaults):
    """``provided`` (the role's variables, templated) checked against the role's argument ``spec``.

    Each variable is checked without coercion, then the whole the way Ansible checks a role's
    arguments. A variable that is unset or null has the role's default (``defaults``, templated).
    """
    # null is unset (Ansible's validator would refuse it where it wants a list or a mapping)
    values = {name: strict_value(name, value, spec[name]) for name, value in provided.items() if value is not None}
    errors = ArgumentSpecValidator(spec).validate(values, validate_role_argument_spec=True).error_messages
    errors = [shortened(error, values.values()) for error in errors]
    if errors:
        raise ComposeError("Validation of the %s role's variables failed:\n%s" % (role, "\n".join(errors)))
    for name in spec:
        if values.get(name) is None and name in defaults:
            values[name] = defaults[name]
    return values


def role_variables(loader, templar, task_vars, roles, entry="compose"):
    """The variables of ``roles`` as the roles would see them, templated and validated (see ``checked``).

    The roles' defaults sit under the task's variables; the argument specs of entry point ``entry``
    say which variables are the role's.
    """
    defaults = {}
    for role in ROLES:
        defaults.update(load_role_file(loader, role, "defaults", "main.yml") or {})
    variables = dict(defaults)
    variables.update(task_vars)
    templar = templar.copy_with_new_env(available_variables=variables)
    values = {}
    for role in roles:
        specs = load_role_file(loader, role, "meta", "argument_specs.yml")["argument_specs"]
        spec = specs[entry]["options"]
        provided = templar.template({name: variables[name] for name in spec if name in variables})
        unset = [name for name in spec if provided.get(name) is None and name in defaults]
        values.update(checked(role, spec, provided, templar.template({name: defaults[name] for name in unset})))
    return values


def unprefixed(values, role):
    prefix = role + "_"
    return {name[len(prefix):]: value for name, value in values.items() if name.startswith(prefix)}


# --- what each role loads ------------------------------------------------------------------


def app_verify_desired(params, query_file):
    """The ``app_verify`` option from the host_checker role's variables (unprefixed): None leaves it."""
    if params["state"] == "absent":
        return {"state": "absent"}
    if not params["apps"]:
        return None
    return {"state": "present", "content": query_file(params["apps"])}


def desired_state(loader, templar, task_vars, roles, render, query_file, probe=False):
    """What ``roles`` load on a server, composed once from their variables: options of ``server_state``.

    The one composition of the collection: the ``server_state`` action (``compose``) and the
    ``post_auth_desired`` lookup (the post_auth role's ``compose`` entry point) call it. Returns the
    options ``app_verify`` (host_checker; None leaves the query file as it is), ``post_auth``,
    ``users``, ``users_exclusive_prefixes`` and ``secret_keys`` (post_auth), and ``backup`` (the
    post_auth role's choice when both are composed). With ``probe``, the script is given by its
    identity alone, without what tests it (the policy harness and cases), which only a run that
    loads the script needs; otherwise by its text. ``render`` renders the script's template and
    ``query_file`` the query file (the host_checker_query_file filter).
    """
    values = role_variables(loader, templar, task_vars, roles)
    desired = {}
    if "host_checker" in roles:
        params = unprefixed(values, "host_checker")
        desired.update(app_verify=app_verify_desired(params, query_file), backup=params["backup"])
    if "post_auth" in roles:
        params = unprefixed(values, "post_auth")
        version = load_role_file(loader, "post_auth", "vars", "main.yml")["__post_auth_version"]
        post_auth = PostAuth(params, version, render, dirs=search_dirs(task_vars),
                             variable=_variable(templar, task_vars))
        desired.update(post_auth.desired, backup=params["backup"])
        if post_auth.loads:
            if post_auth.own is not None:
                # an own script is read (and a template rendered) in any case: its identity and secrets need its text
                post_auth.content()
            script = desired["post_auth"]
            if probe:
                script = {k: v for k, v in script.items() if k not in ("policy_harness", "policy_cases")}
                script["identity"] = post_auth.identity()
            else:
                script["content"] = post_auth.content()
            desired["post_auth"] = script
    return desired


def _variable(templar, task_vars):
    """A host's variable by name, templated (None where it is not set)."""
    templar = templar.copy_with_new_env(available_variables=task_vars)

    def variable(name):
        return templar.template(task_vars[name]) if name in task_vars else None

    return variable


def _run(builder, params):
    """``builder(params)``, its refusals (each naming its variable) as ComposeError; any other error is a bug."""
    try:
        return builder(params)
    except SettingsError as exc:
        raise ComposeError(str(exc)) from None


def settings_of(params):
    """The script's settings from the post_auth role's checked variables (unprefixed), and what comes with them."""
    result = _run(build_settings, params)
    values = []
    for value in result["secrets"].values():
        values.extend(value.values() if isinstance(value, dict) else [value])
    result.update(script_parts(result["settings"]))
    result.update(features=result["settings"]["features"], secret_values=values)
    return result


# The standard modules a generated script may import. The frame imports none of them itself:
# ``with_imports`` imports those that the rendered script uses, so that a script holds no import
# of a capability that is off.
IMPORTS = ("base64", "email.utils", "hashlib", "hmac", "ipaddress", "json", "re", "ssl", "struct", "time",
           "traceback", "urllib.error", "urllib.request")
IMPORTS_LINE = "# ovpnas.fleet: imports\n"


def dotted_names(text):
    """The dotted names the code of ``text`` refers to (``re.match``, ``self.proplist``), comments and strings aside."""
    names, current, after_dot = [], [], False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME:
            if not (after_dot and current):
                if current:
                    names.append(".".join(current))
                current = []
            current.append(token.string)
            after_dot = False
        elif token.string == "." and current:
            after_dot = True
        else:
            if current:
                names.append(".".join(current))
            current, after_dot = [], False
    return names + ([".".join(current)] if current else [])


def with_imports(text):
    """The rendered script with its imports line replaced by an import of each module its code uses."""
    if text.count(IMPORTS_LINE) != 1:
        raise ComposeError("the post-auth template must hold the line %r once" % IMPORTS_LINE.strip())
    names = set(dotted_names(text.replace(IMPORTS_LINE, "")))
    used = [module for module in IMPORTS if any(n == module or n.startswith(module + ".") for n in names)]
    return text.replace(IMPORTS_LINE, "".join("import %s\n" % module for module in used))


class PostAuth:
    """What the post_auth role loads, from its variables (unprefixed); the script rendered on demand.

    ``render(template, template_vars)`` renders the frame (the template lookup, on the controller); without
    it, only the settings and what comes with them are composed.
    The script's identity (what it does, ``script_identity``) is known once it is rendered; it is
    kept on the controller under ``key``, the digest of everything the rendering depends on, so that
    a script rendered once is not rendered again to find out that a server already runs it.
    """

    def __init__(self, params, version, render=None, template=TEMPLATE, harness=HARNESS, cache=None, dirs=(),
                 variable=None):
        self.params = params
        self.version = version
        self.template = template
        self.render = render
        self.cache = cache
        self.settings = None
        self.own = None
        self.variable = variable
        self._content = None
        self.desired = {
            "post_auth": {"state": params["state"]},
            "users": {},
            "users_exclusive_prefixes": [],
            "secret_keys": secret_properties(params),
        }
        if params["state"] != "present":
            return
        if not isinstance(params.get("python"), str) or not params["python"].strip():
            raise ComposeError("post_auth_python: must name the Python 3 that Access Server runs scripts with, "
                               "for example /usr/bin/python3")
        try:
            checked_cases(params["policy_tests"])
        except ShapeError as exc:
            raise ComposeError(str(exc)) from None
        self.cases_sha256 = sha256_json(params["policy_tests"])
        with open(harness, "rb") as handle:
            policy_harness = handle.read().decode("utf-8")
        if params.get("source"):
            self._own_script(params, dirs, policy_harness)
            return
        self.settings = settings_of(params)
        # what the text of the script (its header fields aside) depends on; not the collection version,
        # not the policy cases: they appear only in header fields
        self.key = sha256_json({"code": _files_digest(template), "renderer": RENDERER_VERSIONS,
                                "settings": self.settings["sha256"]})
        self.desired["post_auth"].update(
            python=params["python"],
            validate_interpreters=params["validate_interpreters"],
            policy_harness=policy_harness,
            policy_cases=params["policy_tests"],
            required_apps=self.settings["required_apps"],
            secrets=self.settings["secret_values"],
        )
        self.desired["users"] = self.settings["users"]
        self.desired["users_exclusive_prefixes"] = exclusive_prefixes(params)

    def _own_script(self, params, dirs, policy_harness):
        """An own script (``post_auth_source``): loaded as it is, with none of the composed capabilities."""
        enabled = [capability.name for capability in capabilities.CAPABILITIES if params.get(capability.name)]
        if enabled:
            raise ComposeError("post_auth_source and %s are both set: an own script is loaded as it is, without the "
                               "capabilities the role composes; set one or the other"
                               % ", ".join("post_auth_" + name for name in enabled))
        self.own = _run(lambda values: OwnScript(values, dirs), params)
        self.desired["post_auth"].update(
            python=params["python"],
            validate_interpreters=params["validate_interpreters"],
            policy_harness=policy_harness,
            policy_cases=params["policy_tests"],
            required_apps=[],
        )

    @property
    def loads(self):
        """Whether there is a script to load (state present)."""
        return self.settings is not None or self.own is not None

    def template_vars(self):
        return {"__post_auth_settings": self.settings, "__post_auth_version": self.version,
                "__post_auth_cases_sha256": self.cases_sha256}

    def content(self):
        """The script, rendered once: its imports filled in, its identity line, its seal."""
        if self._content is None and self.own is not None:
            text = _run(lambda _params: self.own.text(lambda path: self.render(path, {}), self.variable), self.params)
            self._content = with_identity(own_header(self.own.name, self.version, self.cases_sha256) + text)
            self.desired["post_auth"].update(secrets=self.own.secrets, secret_assignments=self.own.secret_names)
        if self._content is None:
            try:
                self._content = with_identity(with_imports(self.render(self.template, self.template_vars())))
            except ValueError as exc:
                raise ComposeError("the post-auth template: %s" % exc) from None
        return self._content

    def identity(self):
        """What the script does (``script_identity``), kept by ``key`` on the controller once rendered; an own
        script's, from its text (reading it costs less than keeping its identity would)."""
        if self.own is not None:
            return script_identity(self.content())
        return identity_cache.identity(self.key, lambda: script_identity(self.content()), self.cache)
