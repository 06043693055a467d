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
  - Used by the C(ovpnas.fleet.post_auth) role. Reads the role's C(post_auth_*) variables of the host, validates
    them into the script's settings (with the C(ovpnas.fleet.post_auth_settings) filter's rules, naming the
    variable on error), renders the script template with those settings, and returns what
    M(ovpnas.fleet.server_state) loads.
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

from ansible_collections.ovpnas.fleet.plugins.filter.post_auth import (
    post_auth_settings,
    post_auth_user_properties,
)

PREFIX = "post_auth_"


class LookupModule(LookupBase):
    def _value(self, variables, name):
        if name not in variables:
            raise AnsibleLookupError("%s is not defined: apply the ovpnas.fleet.post_auth role" % name)
        return self._templar.template(variables[name])

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        state = self._value(variables, "post_auth_state")
        desired = {
            "post_auth": {"state": state},
            "users": {},
            "users_exclusive_prefixes": [],
            "secret_keys": [self._value(variables, "post_auth_challenge_totp_property")],
        }
        if state != "present":
            return [desired]
        # the role's variables without their prefix, as the settings builder reads them
        params = {name[len(PREFIX):]: self._value(variables, name) for name in variables if name.startswith(PREFIX)}
        settings = post_auth_settings(params)
        template = lookup_loader.get("ansible.builtin.template", loader=self._loader, templar=self._templar)
        content = template.run(terms[:1], variables, template_vars={"__post_auth_settings": settings})[0]
        with open(self.find_file_in_search_path(variables, "files", self.get_option("harness")), "rb") as handle:
            harness = handle.read().decode("utf-8")
        desired["post_auth"].update(
            content=content,
            python=params["python"],
            validate_interpreters=params["validate_interpreters"],
            policy_harness=harness,
            policy_cases=params["policy_tests"],
            required_apps=settings["required_apps"],
            secrets=settings["secret_values"],
        )
        desired["users"] = post_auth_user_properties(params)
        if params.get("device_pinning_registry_exclusive"):
            desired["users_exclusive_prefixes"] = ["pvt_hw_addr"]
        return [desired]
