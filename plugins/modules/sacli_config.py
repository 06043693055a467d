#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sacli_config
short_description: Manage OpenVPN Access Server configuration keys with sacli
version_added: 0.1.0
description:
  - Sets or removes keys of the active (C(Default)) configuration profile of OpenVPN Access Server.
  - Reads the whole configuration with one C(sacli ConfigQuery) per task, compares, and writes
    (C(ConfigPut)) or deletes (C(ConfigDel)) only the keys that differ. A task whose keys are already
    right makes exactly one C(sacli) call.
  - Does not apply the configuration. Notify a handler that runs M(ovpnas.fleet.sacli_start) when
    RV(restart_required) is true, so the server restarts once per play, and only when something changed.
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
  settings:
    description:
      - Keys and their values, as a mapping.
      - Booleans are stored as V(true) or V(false), numbers as their decimal text.
      - With O(state=absent), the keys of the mapping are removed and the values are ignored.
      - Mutually exclusive with O(key) and O(keys).
    type: dict
  key:
    description:
      - One key to set (with O(value) or O(value_file)) or remove.
    type: str
  value:
    description:
      - The value of O(key). Booleans are stored as V(true) or V(false), numbers as their decimal text.
    type: raw
  value_file:
    description:
      - A file on the managed host whose content is the value of O(key), for long values such as
        C(vpn.client.app_verify).
      - Its content is compared with the live value and written like any other value.
    type: path
  keys:
    description:
      - Keys to remove, with O(state=absent).
    type: list
    elements: str
  state:
    description:
      - V(present) sets the keys to the given values; V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Whether C(sacli) keeps trailing newlines of C(--value_file) content is not known; values that
    differ only in trailing newlines are treated as equal.
  - The post-auth script and the query file can be set here like any key, with the same backups; the
    post-auth script is better loaded with M(ovpnas.fleet.server_state), which tests it first.
seealso:
  - module: ovpnas.fleet.sacli_start
  - module: ovpnas.fleet.sacli_info
  - module: ovpnas.fleet.post_auth_script
"""

EXAMPLES = r"""
# ovpnas_fleet_apply is the handler topic of role ovpnas.fleet.apply (roles: [ovpnas.fleet.apply] in the play):
# each changed server is started, gated and, where the gate fails, restored, once per play
- name: Set several keys with one read of the configuration
  ovpnas.fleet.sacli_config:
    settings:
      vpn.client.routing.reroute_dns: true
      vpn.server.daemon.tcp.n_daemons: 2
      cs.https.port: 943
  notify: ovpnas_fleet_apply

- name: Load the host-checker query file that is already on the server
  ovpnas.fleet.sacli_config:
    key: vpn.client.app_verify
    value_file: /etc/openvpn_as/appver.txt
  notify: ovpnas_fleet_apply

- name: Set an LDAP bind password, masked in results
  ovpnas.fleet.sacli_config:
    settings:
      auth.ldap.0.bind_pw: "{{ vault_ldap_bind_pw }}"
    secret_keys:
      - auth.ldap.*.bind_pw
  no_log: true
  notify: ovpnas_fleet_apply

- name: Remove keys
  ovpnas.fleet.sacli_config:
    keys:
      - vpn.client.app_verify
      - auth.ldap.0.add_req
    state: absent
  notify: ovpnas_fleet_apply

- name: Set the sacli path once for every module of the collection
  module_defaults:
    group/ovpnas.fleet.sacli:
      sacli_path: /opt/openvpn_as/scripts/sacli
  ovpnas.fleet.sacli_config:
    key: host.name
    value: vpn.example.com
"""

RETURN = r"""
changed_keys:
  description: The keys that were (or, in check mode, would be) written or removed.
  returned: always
  type: list
  elements: str
  sample: [vpn.client.routing.reroute_dns]
commands:
  description:
    - The C(sacli) write commands that were run, or in check mode would be run. The read is not listed.
    - Values are never shown; C(<private file>) stands for the temporary value file.
  returned: always
  type: list
  elements: str
  sample: ["sacli --key vpn.client.routing.reroute_dns --value_file=<private file> ConfigPut"]
restart_required:
  description: Whether the configuration changed, so that C(sacli start) is needed to apply it.
  returned: always
  type: bool
  sample: true
backup_files:
  description: Where the live script and query file were saved before they were replaced or removed, by key.
  returned: when O(backup=true) and the script or the query file changed
  type: dict
  sample:
    vpn.client.app_verify: /usr/local/openvpn_as/etc/ovpnas_fleet/backups/app_verify.20261201T080000Z.0c2d5e7f.txt
diff:
  description: The changed keys before and after, secret values masked.
  returned: when diff mode is on
  type: dict
  sample: {before: {vpn.client.routing.reroute_dns: "false"}, after: {vpn.client.routing.reroute_dns: "true"}}
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    SacliError,
    SacliRunner,
    fail_from_error,
    key_problem,
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


def desired_state(module):
    """The keys and values the task asks for (values None for state=absent)."""
    params = module.params
    present = params["state"] == "present"
    if params["settings"] is not None:
        if present:
            try:
                return {str(k): to_sacli_string(v, "settings.%s" % k) for k, v in params["settings"].items()}
            except TypeError as exc:
                module.fail_json(msg=str(exc))
        return dict.fromkeys(str(k) for k in params["settings"])
    if params["keys"] is not None:
        if present:
            module.fail_json(msg="keys is used with state=absent; use settings or key and value to set keys")
        return dict.fromkeys(params["keys"])
    key = params["key"]
    if not present:
        if params["value"] is not None or params["value_file"] is not None:
            module.fail_json(msg="value and value_file are not used with state=absent")
        return {key: None}
    if params["value_file"] is not None:
        try:
            with open(params["value_file"], "rb") as handle:
                return {key: handle.read().decode("utf-8")}
        except OSError as exc:
            module.fail_json(msg="cannot read value_file %s: %s" % (params["value_file"], exc))
        except UnicodeDecodeError:
            module.fail_json(msg="value_file %s is not UTF-8 text" % params["value_file"])
    if params["value"] is None:
        module.fail_json(msg="key needs value or value_file with state=present")
    try:
        return {key: to_sacli_string(params["value"], "value")}
    except TypeError as exc:
        module.fail_json(msg=str(exc))


def check_keys(module, keys):
    for key in keys:
        if key_problem(key):
            module.fail_json(msg=key_problem(key))


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        settings=dict(type="dict"),
        key=dict(type="str", no_log=False),
        value=dict(type="raw"),
        value_file=dict(type="path"),
        keys=dict(type="list", elements="str", no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        secret_keys=dict(type="list", elements="str", default=[], no_log=False),
    )
    argument_spec.update(write_argument_spec())
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("settings", "key", "keys"), ("value", "value_file")],
        required_one_of=[("settings", "key", "keys")],
        required_by=dict(value=("key",), value_file=("key",)),
        supports_check_mode=True,
    )
    desired = desired_state(module)
    check_keys(module, desired)
    is_secret = secret_matcher(module.params["secret_keys"])
    hide_secrets(module, desired, is_secret)
    runner = SacliRunner(module)
    directory = module.params["state_dir"] or fleet_dir(runner.path)
    with locked(module, directory):
        converge(module, runner, directory, desired, is_secret)


def converge(module, runner, directory, desired, is_secret):
    result = dict(changed=False, changed_keys=[], commands=[], restart_required=False)
    try:
        current = runner.config_query()
    except SacliError as exc:
        fail_from_error(module, exc, **result)
    hide_secrets(module, current, is_secret)

    plan = Plan(runner, current)
    for key, value in desired.items():
        plan.set_key(key, value)
    refuse_bad_names(module, plan, result)
    changed = sorted(plan.keys)
    result.update(changed=bool(changed), changed_keys=changed, restart_required=bool(changed), commands=plan.commands())
    if module._diff:
        result["diff"] = dict(before={k: current.get(k) for k in changed}, after={k: plan.keys[k] for k in changed})
    if changed and not module.check_mode:
        backups = commit(module, directory, plan, result)
        if backups:
            result["backup_files"] = backups
    module.exit_json(**result)


if __name__ == "__main__":
    main()
