#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: adopt
short_description: Write what a fleet runs today as a folder that deploys it again without a write
version_added: 0.1.0
description:
  - Runs on the controller only (an action plugin). Takes what M(ovpnas.fleet.sacli_info) read on each server
    (O(ovpnas.fleet.sacli_info#module:include_script) and
    O(ovpnas.fleet.sacli_info#module:reveal_script_secrets)), registered under O(read) in each host's variables, and
    writes O(dest), a folder whose C(hosts.yml) is an extra inventory source (C(-i INVENTORY -i DEST/hosts.yml)); its
    C(host_vars) and C(group_vars) come with it.
  - C(files/) holds each distinct post-auth script once (servers whose scripts do the same share it) and each
    host-checker query file; C(host_vars/) points each server at its script (C(post_auth_source), pinned with
    C(post_auth_source_sha256)), or sets C(post_auth_state=absent) where none is loaded; C(hosts.yml) groups the
    servers by script; C(REPORT.md) says which servers run what, which scripts the collection wrote (header and
    seal), which copies drifted from a script more servers run, and what could not be adopted.
  - The configuration keys the inventory manages (C(ovpnas_config_settings)) that a server holds otherwise are
    adopted as the server holds them, in its C(host_vars) (the report lists each, with the inventory's value), so
    that the first deploy writes none of them; a key the server does not hold is left out of them.
  - A string assigned to a name that looks secret (the collection's secret patterns, for example Duo's C(SKEY)) never
    lands in the clear. The script becomes a template that reads it with C(ovpnas.fleet.pyliteral), in the quotes the
    script used, and the values go into C(group_vars/all/adopted_secrets.yml), encrypted with ansible-vault with the
    vault password of the run (C(ANSIBLE_VAULT_PASSWORD_FILE), C(--vault-id) and the other usual ways). Each
    template is rendered on the controller and must give back the captured script byte for byte.
  - Without a vault password, a fleet whose scripts hold secrets is refused, naming the scripts, servers and names,
    and nothing is written.
  - O(dest) is replaced whole. A folder that exists, is not empty and was not written by this module is refused.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  hosts:
    description: The servers to adopt (inventory host names).
    type: list
    elements: str
    required: true
  read:
    description: The name of the variable each host registered the read of M(ovpnas.fleet.sacli_info) under.
    type: str
    default: ovpnas_adopt_read
  dest:
    description: The folder to write.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing; reports what it would write, and refuses what it would refuse.
  diff_mode:
    support: none
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    platforms: posix
seealso:
  - module: ovpnas.fleet.sacli_info
notes:
  - C(playbooks/adopt_postauth.yml) runs the read and this module.
  - Adopting again writes the folder whole; its files hold what they held, the vault file aside (encrypted with a new
    salt each time).
"""

EXAMPLES = r"""
- name: Write what the servers run into the adopt folder
  ovpnas.fleet.adopt:
    hosts: "{{ ansible_play_hosts_all }}"
    dest: adopted
"""

RETURN = r"""
dest:
  description: The folder written.
  returned: always
  type: str
  sample: /srv/gitops/adopted
scripts:
  description: Each distinct script by group, with its file, servers and the names of the secrets taken out of it.
  returned: always
  type: dict
  sample: {script_5f1c2a3b4d5e: {file: files/script-5f1c2a3b4d5e.py.j2, hosts: [as01, as02], secrets: [SKEY]}}
settings_kept:
  description: The servers whose configuration keys were adopted as they hold them, and those keys.
  returned: always
  type: dict
  sample: {as03: [vpn.client.routing.reroute_gw]}
without_script:
  description: The servers that load no post-auth script.
  returned: always
  type: list
  elements: str
drift:
  description: The scripts that are drifted copies of one more servers run, by group, and that script's group.
  returned: always
  type: dict
refused:
  description: The scripts that could not be adopted, by group, and why.
  returned: always
  type: dict
unread:
  description: The servers that could not be read, and why.
  returned: always
  type: dict
"""
