#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sacli_userprop
short_description: Manage OpenVPN Access Server user and group properties with sacli
version_added: 0.1.0
description:
  - Sets or removes properties of users and groups in the Access Server user database, or removes users and
    groups, for example the registered hardware addresses (C(pvt_hw_addr), C(pvt_hw_addr2) ...) that device
    pinning checks.
  - Reads the properties with one C(sacli UserPropGet) per task (narrowed with C(--pfilt) for a single user) and
    writes (C(UserPropPut)) or removes (C(UserPropDel), C(UserPropDelAll)) only what differs.
  - With O(exclusive_prefixes), properties that start with a listed prefix and are not wanted are removed, so
    that stale registrations go away.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ovpnas.fleet.sacli
  - ovpnas.fleet.sacli.ATTRIBUTES
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ovpnas.fleet.sacli.SECRETS
  - ovpnas.fleet.sacli.WRITES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - The user or group. Mutually exclusive with O(users).
    type: str
  properties:
    description:
      - Properties of O(name). Booleans are stored as V(true) or V(false), numbers as their decimal text.
      - With O(state=absent), the named properties are removed (values are ignored); without properties,
        the whole user or group is removed.
    type: dict
  users:
    description:
      - Several users or groups at once, each mapped to its properties (as O(properties)).
      - With O(state=absent), a name mapped to null or to an empty mapping is removed as a whole.
    type: dict
  kind:
    description:
      - What to create when a name does not exist yet. A V(user) gets C(type=user_connect); a V(group) gets
        C(type=group) and C(group_declare=true). Properties given explicitly win.
    type: str
    choices: [user, group]
    default: user
  state:
    description:
      - V(present) sets the properties; V(absent) removes them (or the whole user or group).
    type: str
    choices: [present, absent]
    default: present
  exclusive_prefixes:
    description:
      - With O(state=present), remove every property of the listed users that starts with one of these
        prefixes and is not among the wanted properties, for example V(pvt_hw_addr).
    type: list
    elements: str
    default: []
notes:
  - Changes of private properties (C(pvt_*)) take effect at the next login. Other properties (for example
    access rules or C(conn_group)) may need C(sacli start); RV(restart_required) says so.
seealso:
  - module: ovpnas.fleet.sacli_start
  - module: ovpnas.fleet.sacli_info
"""

EXAMPLES = r"""
# ovpnas_fleet_apply is the handler topic of role ovpnas.fleet.apply (roles: [ovpnas.fleet.apply] in the play):
# each changed server is started, gated and, where the gate fails, restored, once per play
- name: Pin alice to two devices and drop any other registration
  ovpnas.fleet.sacli_userprop:
    name: alice
    properties:
      pvt_hw_addr: "00:11:22:33:44:55"
      pvt_hw_addr2: "66:77:88:99:aa:bb"
    exclusive_prefixes: [pvt_hw_addr]

- name: Declare a group with its properties
  ovpnas.fleet.sacli_userprop:
    name: engineering
    kind: group
    properties:
      prop_autologin: false
      prop_reroute_gw_override: dns_only
  notify: ovpnas_fleet_apply

- name: Registry for many users in one read
  ovpnas.fleet.sacli_userprop:
    users:
      alice: {pvt_hw_addr: "00:11:22:33:44:55"}
      bob: {pvt_hw_addr: "66:77:88:99:aa:bb"}
    exclusive_prefixes: [pvt_hw_addr]

- name: Remove a user
  ovpnas.fleet.sacli_userprop:
    name: mallory
    state: absent
"""

RETURN = r"""
changed_users:
  description: The users and groups that were (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
  sample: [alice]
commands:
  description: The C(sacli) write commands that were run, or in check mode would be run. Values are never shown.
  returned: always
  type: list
  elements: str
  sample: ["sacli --user alice --key pvt_hw_addr --value_file=<private file> UserPropPut"]
restart_required:
  description: Whether a changed property is one that C(sacli start) applies (any property not starting with C(pvt_)).
  returned: always
  type: bool
  sample: false
diff:
  description:
    - The properties of the changed users before and after, secret values masked.
    - Null stands for a user or group that does not exist.
  returned: when diff mode is on
  type: dict
  sample: {before: {alice: {pvt_hw_addr: "00:11:22:33:44:00"}}, after: {alice: {pvt_hw_addr: "00:11:22:33:44:55"}}}
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    SacliError,
    SacliRunner,
    fail_from_error,
    sacli_argument_spec,
    to_sacli_string,
)
from ansible_collections.ovpnas.fleet.plugins.module_utils.secrets import hide_secrets, secret_matcher
from ansible_collections.ovpnas.fleet.plugins.module_utils.server_files import fleet_dir
from ansible_collections.ovpnas.fleet.plugins.module_utils.transaction import (
    Plan,
    commit,
    locked,
    refuse_bad_names,
    write_argument_spec,
)


def wanted(module):
    """{name: {prop: value-or-None}} from name/properties or users."""
    params = module.params
    requested = params["users"] if params["users"] is not None else {params["name"]: params["properties"]}
    result = {}
    for name, props in requested.items():
        if not isinstance(name, str) or not name.strip():
            module.fail_json(msg="user and group names must be non-empty strings, got %r" % (name,))
        if props is None:
            props = {}
        if not isinstance(props, dict):
            module.fail_json(msg="the properties of %s must be a mapping, got %s" % (name, type(props).__name__))
        try:
            result[name] = {
                str(k): to_sacli_string(v, "%s.%s" % (name, k)) if params["state"] == "present" else None
                for k, v in props.items()
            }
        except TypeError as exc:
            module.fail_json(msg=str(exc))
    return result


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        properties=dict(type="dict"),
        users=dict(type="dict"),
        kind=dict(type="str", choices=["user", "group"], default="user"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        exclusive_prefixes=dict(type="list", elements="str", default=[]),
        secret_keys=dict(type="list", elements="str", no_log=False, default=[]),
    )
    argument_spec.update(write_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("name", "users"), ("properties", "users")],
        required_one_of=[("name", "users")],
        required_by=dict(properties=("name",)),
        supports_check_mode=True,
    )
    desired = wanted(module)
    runner = SacliRunner(module)
    directory = module.params["state_dir"] or fleet_dir(runner.path)
    with locked(module, directory):
        converge(module, runner, directory, desired)


def converge(module, runner, directory, desired):
    params = module.params
    is_secret = secret_matcher(params["secret_keys"])
    result = dict(changed=False, changed_users=[], commands=[], restart_required=False)
    try:
        current = runner.userprop_get(pfilt=next(iter(desired)) if len(desired) == 1 else None)
    except SacliError as exc:
        fail_from_error(module, exc, **result)
    for props in [current.get(name) or {} for name in desired] + list(desired.values()):
        hide_secrets(module, props, is_secret)

    plan = Plan(runner, users=current)
    plan.set_users(desired, params["state"] == "present", params["exclusive_prefixes"], params["kind"])
    refuse_bad_names(module, plan, result)
    result.update(changed=not plan.empty, changed_users=sorted(plan.user_writes), commands=plan.commands(),
                  restart_required=plan.restart_required)
    if module._diff:
        result["diff"] = dict(before={name: None if current.get(name) is None else dict(current[name])
                                      for name in sorted(plan.user_writes)},
                              after=plan.users_after())
    if not plan.empty and not module.check_mode:
        commit(module, directory, plan, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
