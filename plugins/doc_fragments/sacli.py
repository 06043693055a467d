# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options every sacli module takes.
    DOCUMENTATION = r"""
options:
  sacli_path:
    description:
      - Path of C(sacli) on the managed host.
      - Set it once for all modules of the collection with C(module_defaults) and the
        C(group/ovpnas.fleet.sacli) action group.
    type: path
    default: /usr/local/openvpn_as/scripts/sacli
  sacli_timeout:
    description:
      - Seconds each C(sacli) call may run before it is killed (with C(timeout) from coreutils).
      - V(0) lets calls run without a limit.
    type: int
    default: 60
notes:
  - Values never appear on a C(sacli) command line, where the process list would show them. They are
    written to a private (mode 0600) temporary file passed with C(--value_file) and removed afterwards.
  - C(sacli) runs without a shell and with C(LC_ALL=C).
  - Run the module as root (C(become=true)); C(sacli) then needs no administrator credentials.
requirements:
  - OpenVPN Access Server with C(sacli) on the managed host.
"""

    # What the collection adds to ansible.builtin.action_common_attributes, which the modules list after this
    # fragment (where two fragments describe one attribute, the first listed wins); the modules add their support.
    ATTRIBUTES = r"""
options: {}
attributes:
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled or queried by the module has not changed in a relevant way.
  action_group:
    description: Use C(group/ovpnas.fleet.sacli) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - ovpnas.fleet.sacli
  platform:
    platforms: posix
"""

    # The secret_keys option of every module: one list of patterns, extended per task.
    SECRETS = r"""
options:
  secret_keys:
    description:
      - More configuration keys and user properties whose values are secrets (shell-style patterns). Their values
        are registered as C(no_log) values, so that Ansible masks them in the diff and in every result of the task
        (a value as V(VALUE_SPECIFIED_IN_NO_LOG_PARAMETER), a value inside a longer text as V(********)).
        Flags (V(true), V(false), V(yes), V(no), V(on), V(off)) are not secrets and are shown.
      - These come on top of the patterns every module of the collection masks, V(auth.ldap.*.bind_pw),
        V(auth.radius.*.secret), V(*password*), V(*passwd*), V(*_pw), V(*secret*), V(*token*), V(*priv_key*),
        V(*private_key*), V(*.sp_key*), V(pvt_*_digest), V(pvt_google_auth_secret*), V(pvt_totp_secret*),
        V(*skey*), V(*api_key*) and V(*apikey*).
    type: list
    elements: str
    default: []
"""

    # The options and rules of every module that writes (module_utils/transaction.py).
    WRITES = r"""
options:
  backup:
    description:
      - Save the live script (C(auth.module.post_auth_script)) and query file (C(vpn.client.app_verify)) in
        O(backup_dir) before replacing or removing them.
    type: bool
    default: true
  backup_dir:
    description:
      - Folder for backups (mode 0700; backups are mode 0600 because scripts may hold secrets).
      - Defaults to C(backups) in O(state_dir).
    type: path
  state_dir:
    description:
      - The collection's root-only folder on the server (mode 0700) that holds the lock, the pending-apply record,
        the record of the last change and the staging folders.
      - Defaults to C(etc/ovpnas_fleet) under the Access Server folder, found from the real path of O(sacli_path)
        (a link to C(sacli) elsewhere names the same folder, and so the same lock).
        M(ovpnas.fleet.sacli_start) must be given the same folder.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another run on the same server to release the lock before failing.
    type: int
    default: 300
notes:
  - Every module of the collection that writes follows the same rules. A run that may write holds an exclusive
    lock on O(state_dir) from its read to its last write, so two runs at once never mix their changes; a check-mode
    run holds it shared.
  - A change that needs C(sacli start) leaves a pending-apply record in O(state_dir) before its first write.
    Only M(ovpnas.fleet.sacli_start) with every service up removes it, or, in the collection's handler, the gate
    after that start (M(ovpnas.fleet.auth_check) with O(ovpnas.fleet.auth_check#module:settle=true)); until then,
    every run of M(ovpnas.fleet.server_state) reports the server as changed, so a failed, skipped or ungated start
    (a run killed between the start and the gate) is never forgotten.
  - When a write fails, the writes made before it are undone, the last first, and the failure says so; the
    pending-apply record is then left as it was before the run.
  - Before the first write, C(last_change.json) in O(state_dir) (mode 0600) records what takes the writes back,
    for M(ovpnas.fleet.server_restore); a change whose undo cannot be recorded is not made, nor one the disks
    have no room for (with its undo, records, backups and value files).
"""
