# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a capability module declares: ``CAPABILITY = Capability(__name__, ...)``.

The fields are described in the package's docstring (``capabilities/__init__.py``). What a
capability leaves out has the answer of a capability that needs nothing: the functions below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping


def nothing_needed(settings):
    return set()


def never_blocking(settings):
    return False


def no_flags(params, settings, messages):
    return {}


def no_users(params, settings):
    return {}


def no_apps(settings):
    return []


def no_properties(params):
    return []


# the fields that are functions of the capability's settings or of the role's variables
FUNCTIONS = ("build", "needs", "blocking", "flags", "users", "required_apps", "exclusive_prefixes", "secret_properties")


@dataclasses.dataclass(frozen=True, eq=False)
class Capability:
    """One capability of the post-auth script; its name is the name of the module that declares it."""

    module: str
    order: int
    title: str
    messages: Mapping[str, str]
    build: Callable[[dict, dict], dict]
    local: bool = False
    excludes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    needs: Callable[[dict], set] = nothing_needed
    blocking: Callable[[dict], bool] = never_blocking
    flags: Callable[[dict, dict, dict], dict] = no_flags
    users: Callable[[dict, dict], dict] = no_users
    required_apps: Callable[[dict], list] = no_apps
    exclusive_prefixes: Callable[[dict], list] = no_properties
    secret_properties: Callable[[dict], list] = no_properties

    def __post_init__(self):
        # a mistake in a capability module shows when the registry loads it, not at the first login
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise TypeError("%s: order must be a whole number" % self.module)
        if not isinstance(self.title, str) or not self.title:
            raise TypeError("%s: title must be a non-empty string" % self.module)
        if not all(isinstance(key, str) and isinstance(text, str) for key, text in self.messages.items()):
            raise TypeError("%s: messages must map keys to texts" % self.module)
        for name in FUNCTIONS:
            if not callable(getattr(self, name)):
                raise TypeError("%s: %s must be a function" % (self.module, name))

    @property
    def name(self):
        """``NAME``: the role variable ``post_auth_NAME`` switches it on; its block is ``blocks/NAME.py.j2``."""
        return self.module.rsplit(".", 1)[-1]
