# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-auth script's capabilities: one module each in this folder, found by its name.

A capability ``NAME`` is switched on by the role variable ``post_auth_NAME``; its settings are
the role's variables ``post_auth_NAME_*`` (declared in the role's ``meta/argument_specs.yml``,
which checks their types and choices), and its code is the block
``templates/post_auth/blocks/NAME.py.j2``. Its module holds what only it knows:

``ORDER``
    Its place in the chain (capabilities run in increasing order; the first refusal ends the login).
``TITLE``
    How the script's header names it.
``MESSAGES``
    The messages it shows to users, by key, with their default text (``post_auth_messages`` overrides them).
``build(params, secrets)``
    Its settings from the role's variables (without the ``post_auth_`` prefix), with the checks the
    argument specs cannot express. Inline secrets go to ``secrets``, by name.
``LOCAL`` (default False)
    Its block renders its settings as constants of its own; otherwise they are ``SETTINGS[NAME]``.
``EXCLUDES`` (default none)
    The capabilities that cannot be on with it, each with the reason.
``needs(settings)`` (default none)
    The parts of the frame its block uses: ``http`` (the HTTPS helpers and ``SECRETS``),
    ``questions`` (a dynamic challenge, ``post_auth_cr``), ``answers`` (the user's answer to one),
    ``exemptions`` (``Login.exempt``, for the ``exempt_users`` and ``exempt_groups`` of its settings).
``blocking(settings)`` (default False)
    Whether it waits on the network or on slow work, so that the script must not run synchronously.
``flags(params, settings, messages)`` (default none)
    The module flags it needs (``GROUP_SELECT``, ``AUTH_NULL``...).
``users(params, settings)`` (default none)
    The user properties it relies on, per user, which the role loads with the script.
``required_apps(settings)`` (default none)
    The applications the host-checker query file must list for it, as ``{name, platform}``.
``exclusive_prefixes(params)`` and ``secret_properties(params)`` (default none)
    The user properties it owns whole, and those whose values are secrets; asked of every
    capability, on or off, so that the role cleans up and masks them either way.

What the script imports is found in the rendered code (``compose.with_imports``): a block
uses a standard module of ``compose.IMPORTS`` and the script imports it (a module not yet in that
list is added there).
"""

from __future__ import annotations

import copy
import importlib
import os


def _defaults(module):
    for name, value in (("LOCAL", False), ("EXCLUDES", {})):
        if not hasattr(module, name):
            setattr(module, name, value)
    for name, value in (("needs", set()), ("blocking", False), ("flags", {}), ("users", {}), ("required_apps", []),
                        ("exclusive_prefixes", []), ("secret_properties", [])):
        if not hasattr(module, name):
            setattr(module, name, lambda *args, answer=value: copy.copy(answer))
    return module


def _load():
    folder = os.path.dirname(os.path.abspath(__file__))
    names = sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py") and not name.startswith("_"))
    modules = [_defaults(importlib.import_module(__name__ + "." + name)) for name in names]
    for module in modules:
        module.NAME = module.__name__.rsplit(".", 1)[1]
    return tuple(sorted(modules, key=lambda module: module.ORDER))


# every capability, in the order of the chain
CAPABILITIES = _load()
BY_NAME = {capability.NAME: capability for capability in CAPABILITIES}
CHAIN = tuple(BY_NAME)
FILES = tuple(sorted(os.path.abspath(capability.__file__) for capability in CAPABILITIES))
