# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: post_auth_desired
version_added: 0.1.0
short_description: Compose what the post_auth role loads, once per host, on the controller
description:
  - Used by the C(compose) entry point of the C(ovpnas.fleet.post_auth) role. Reads the role's C(post_auth_*)
    variables of the host, validates them into the script's settings (with the
    C(ovpnas.fleet.post_auth_settings) filter's rules, naming the variable on error), renders the script template
    with those settings, seals it, and returns what M(ovpnas.fleet.server_state) loads.
  - Each variable is read once and only templated where it holds a template, so that a fleet of hundreds of
    hosts pays for the composition once per host and no more.
author:
  - ovpnas.fleet contributors (@ovpnas)
options:
  _terms:
    description: The script template (the frame that includes the capability blocks).
    type: list
    elements: path
    required: true
  harness:
    description: The policy harness file the server runs the policy cases with.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Compose the post-auth script on the controller
  ansible.builtin.set_fact:
    post_auth_desired: "{{ lookup('ovpnas.fleet.post_auth_desired', 'frame.py.j2', harness='policy_harness.py') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - One mapping with C(post_auth) (the O(ovpnas.fleet.server_state#module:post_auth) option), C(users),
      C(users_exclusive_prefixes) and C(secret_keys).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader
from ansible.plugins.lookup import LookupBase

from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import (
    ComposeError,
    PostAuth,
    role_variables,
    unprefixed,
)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        if "__post_auth_version" not in variables:
            raise AnsibleLookupError("__post_auth_version is not defined: apply the ovpnas.fleet.post_auth role")
        template = self.find_file_in_search_path(variables, "templates", terms[0])
        harness = self.find_file_in_search_path(variables, "files", self.get_option("harness"))
        try:
            # the role's variables, checked as the server_state action checks them, without their prefix
            params = unprefixed(role_variables(self._loader, self._templar, variables, ["post_auth"]), "post_auth")
            post_auth = PostAuth(params, self._templar.template(variables["__post_auth_version"]), template, harness)
        except ComposeError as exc:
            raise AnsibleLookupError(exc.message) from None
        desired = post_auth.desired
        if post_auth.settings is not None:
            renderer = lookup_loader.get("ansible.builtin.template", loader=self._loader, templar=self._templar)

            def render(path, template_vars):
                return renderer.run([path], variables, template_vars=template_vars)[0]

            desired["post_auth"]["content"] = post_auth.content(render)
        return [desired]
