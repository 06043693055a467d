# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: post_auth_desired
version_added: 0.1.0
short_description: Compose what the post_auth role loads, on the controller
description:
  - Used by the C(compose) entry point of the C(ovpnas.fleet.post_auth) role. Composes the host's C(post_auth_*)
    variables exactly as M(ovpnas.fleet.server_state) with O(ovpnas.fleet.server_state#module:compose) does, with
    the same code. The variables are validated against the role's argument specs (naming the variable on error),
    the script is rendered, its identity filled in, and it is sealed.
  - Returns what M(ovpnas.fleet.server_state) loads.
author:
  - ovpnas.fleet contributors (@ovpnas)
options: {}
"""

EXAMPLES = r"""
- name: Compose the post-auth script on the controller
  ansible.builtin.set_fact:
    post_auth_desired: "{{ lookup('ovpnas.fleet.post_auth_desired') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - One mapping with C(post_auth) (the O(ovpnas.fleet.server_state#module:post_auth) option), C(users),
      C(users_exclusive_prefixes), C(secret_keys) and C(backup).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

from ansible_collections.ovpnas.fleet.plugins.filter.host_checker import host_checker_query_file
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import ComposeError, desired_state


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        renderer = lookup_loader.get("ansible.builtin.template", loader=self._loader, templar=self._templar)

        def render(path, template_vars):
            return renderer.run([path], variables, template_vars=template_vars)[0]

        try:
            return [desired_state(self._loader, self._templar, variables, ["post_auth"], render,
                                  host_checker_query_file)]
        except ComposeError as exc:
            raise AnsibleLookupError(exc.message) from None
