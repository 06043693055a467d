# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The post-auth script's capabilities: one module each in this folder, found by its name.

A capability ``NAME`` is switched on by the role variable ``post_auth_NAME``; its settings are
the role's variables ``post_auth_NAME_*`` (declared in the role's ``meta/argument_specs.yml``,
which checks their types and choices), and its code is the block
``templates/post_auth/blocks/NAME.py.j2``. Its module ``NAME.py`` declares what only it knows as
``CAPABILITY = Capability(__name__, ...)`` (``_base.Capability``), with these fields:

``order``
    Its place in the chain (capabilities run in increasing order; the first refusal ends the login).
``title``
    How the script's header names it.
``messages``
    The messages it shows to users, by key, with their default text (``post_auth_messages`` overrides them).
    These are the only list of its message keys: the role's argument specs name them in the description
    of ``post_auth_messages``, which a unit test compares with this registry.
``build(params, secrets)``
    Its settings from the role's variables (without the ``post_auth_`` prefix), with the checks the
    argument specs cannot express. Inline secrets go to ``secrets``, by name. A value of the wrong
    shape is refused with ``checks.fail`` (a ``SettingsError`` naming the variable), never left to
    raise another error: any other exception is a bug of the capability.
``local`` (default False)
    Its block renders its settings as constants of its own; otherwise they are ``SETTINGS[NAME]``.
``excludes`` (default none)
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

Its ``name`` is its module's. The script's own messages (shown whatever capabilities are on) are
``FRAME_MESSAGES`` below; ``MESSAGES`` is every message a script may show, with its default text.

What the script imports is found in the rendered code (``compose.with_imports``): a block
uses a standard module of ``compose.IMPORTS`` and the script imports it (a module not yet in that
list is added there).
"""

from __future__ import annotations

import importlib
import os

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.capabilities._base import Capability

FOLDER = os.path.dirname(os.path.abspath(__file__))
# the messages of the script itself, shown whatever capabilities are on
FRAME_MESSAGES = {"internal_error": "Authentication failed. Please contact your administrator."}


def _load():
    """Every capability of the folder (each module whose name does not start with ``_``), in the order of the chain."""
    names = sorted(name[:-3] for name in os.listdir(FOLDER) if name.endswith(".py") and not name.startswith("_"))
    found = []
    for name in names:
        module = importlib.import_module(__name__ + "." + name)
        capability = getattr(module, "CAPABILITY", None)
        if not isinstance(capability, Capability) or capability.module != module.__name__:
            raise ImportError("%s must declare CAPABILITY = Capability(__name__, ...)" % module.__name__)
        found.append(capability)
    return tuple(sorted(found, key=lambda capability: capability.order))


def _messages(capabilities):
    messages = dict(FRAME_MESSAGES)
    for capability in capabilities:
        for key in capability.messages:
            if key in messages:
                raise ImportError("%s: the message %s is already another capability's" % (capability.module, key))
        messages.update(capability.messages)
    return messages


# every capability, in the order of the chain
CAPABILITIES = _load()
BY_NAME = {capability.name: capability for capability in CAPABILITIES}
CHAIN = tuple(BY_NAME)
# every message a script may show, by key, with its default text
MESSAGES = _messages(CAPABILITIES)
# the files of the registry (the capabilities and what declares them): what the script's text depends on
FILES = tuple(sorted(os.path.join(FOLDER, name) for name in os.listdir(FOLDER) if name.endswith(".py")))
