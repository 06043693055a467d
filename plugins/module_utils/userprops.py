# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What it takes to bring user and group properties from what `UserPropGet` shows to what is wanted.

Shared by the modules that write user properties: the plan is computed from one read and
lists, per user, the properties to put and to delete, or that the whole user goes.
"""

from __future__ import annotations

# What a user or group gets when a property is put for a name that does not exist yet.
CREATE_DEFAULTS = dict(user=dict(type="user_connect"), group=dict(type="group", group_declare="true"))


def plan_users(desired, current, present=True, prefixes=(), kind="user"):
    """The writes per user: {name: (puts {k: v}, deletes [k], delete_all)}.

    ``desired`` maps names to {property: value} (values are ignored when not ``present``; an
    empty mapping then removes the whole user). With ``present``, properties of a listed user
    that start with one of ``prefixes`` and are not wanted are deleted.
    """
    plans = {}
    for name, props in desired.items():
        have = current.get(name)
        if present:
            target = dict(props)
            if have is None:
                for key, value in CREATE_DEFAULTS[kind].items():
                    target.setdefault(key, value)
            have = have or {}
            puts = {k: v for k, v in target.items() if have.get(k) != v}
            deletes = sorted(k for k in have if k not in target and any(k.startswith(p) for p in prefixes))
            if puts or deletes:
                plans[name] = (puts, deletes, False)
        elif have is not None:
            if not props:
                plans[name] = ({}, [], True)
            else:
                deletes = sorted(k for k in props if k in have)
                if deletes:
                    plans[name] = ({}, deletes, False)
    return plans


def put_order(puts):
    """`type` first, so that a new profile is created with its kind."""
    return sorted(puts, key=lambda k: (k != "type", k))


def needs_restart(puts, deletes):
    """Private properties (pvt_*) take effect at the next login; any other may need `start`."""
    return any(not k.startswith("pvt_") for k in list(puts) + list(deletes))
