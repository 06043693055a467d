#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: post_auth_script
short_description: Load or remove the OpenVPN Access Server post-auth script
version_added: 0.1.0
description:
  - Loads THE post-auth script of OpenVPN Access Server (the config key C(auth.module.post_auth_script)),
    or removes it.
  - Compares the wanted script with the live one from a single C(sacli ConfigQuery) and writes only when they
    differ. Before writing, the script is compiled with a chosen Python interpreter on the managed host and
    must define C(post_auth) or C(post_auth_cr); a script that fails this check is not loaded and nothing changes.
  - Optionally saves the live script to a private backup file before replacing or removing it.
  - Does not apply the change. Notify a handler that runs M(ovpnas.fleet.sacli_start) when
    RV(restart_required) is true.
author:
  - ovpnas.fleet contributors (@ovpnas)
extends_documentation_fragment:
  - ovpnas.fleet.sacli
  - ovpnas.fleet.sacli.ATTRIBUTES
attributes:
  check_mode:
    support: full
    details:
      - Validation runs in check mode too, so check mode fails where a real run would.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  content:
    description:
      - The script text. Mutually exclusive with O(src).
    type: str
  src:
    description:
      - A file on the managed host that holds the script, for example one rendered by a role.
    type: path
  state:
    description:
      - V(present) loads the script; V(absent) removes the key so that no post-auth script runs.
    type: str
    choices: [present, absent]
    default: present
  validate:
    description:
      - Compile the script with O(validate_interpreter) and check that it defines C(post_auth) or
        C(post_auth_cr) before loading it.
    type: bool
    default: true
  validate_interpreter:
    description:
      - The Python interpreter that compiles the script, ideally the one Access Server runs scripts with.
      - Defaults to C(python3) from the managed host's E(PATH).
    type: path
  backup:
    description:
      - Save the live script to a file in O(backup_dir) before replacing or removing it.
    type: bool
    default: false
  backup_dir:
    description:
      - Folder for backups (created with mode 0700; backups are mode 0600 because scripts may hold secrets).
      - Defaults to C(etc/ovpnas_fleet/backups) under the Access Server folder, found from O(sacli_path).
    type: path
notes:
  - Whether C(sacli) keeps trailing newlines of C(--value_file) content is not known; scripts that differ only
    in trailing newlines are treated as equal, and the sha256 values are computed without trailing newlines.
  - C(sacli ConfigQuery) prints the live script, secrets included, to anyone who may run it on the server.
seealso:
  - module: ovpnas.fleet.sacli_start
  - module: ovpnas.fleet.sacli_info
"""

EXAMPLES = r"""
- name: Load a script rendered on the server, keeping a backup of the previous one
  ovpnas.fleet.post_auth_script:
    src: /root/.ovpnas_fleet/post_auth.py
    validate_interpreter: /usr/bin/python3
    backup: true
  register: loaded
  notify: Apply Access Server configuration

- name: Load a small script given inline
  ovpnas.fleet.post_auth_script:
    content: |
      from pyovpn.plugin import SUCCEED, FAIL
      SYNCHRONOUS = True

      def post_auth(authcred, attributes, authret, info):
          return authret
  notify: Apply Access Server configuration

- name: Remove the post-auth script
  ovpnas.fleet.post_auth_script:
    state: absent
    backup: true
  notify: Apply Access Server configuration
"""

RETURN = r"""
sha256_before:
  description: sha256 of the live script before the task (without trailing newlines); null when none was loaded.
  returned: always
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b3f3b9fd0b4a62d5a1f52bd3a
sha256_after:
  description: sha256 of the script after the task (or after a real run, in check mode); null when removed.
  returned: always
  type: str
  sample: 89e6c98d92887913cadf06b2adb97f26cde4849b0c9d7b9c5db4d5b0b6a1a7ef
restart_required:
  description: Whether the script changed, so that C(sacli start) is needed to apply it.
  returned: always
  type: bool
  sample: true
backup_file:
  description: Where the previous script was saved.
  returned: when O(backup=true) and a live script was replaced or removed (not in check mode)
  type: str
  sample: /usr/local/openvpn_as/etc/ovpnas_fleet/backups/post_auth_script.20261128T101500Z.3f786850e387.py
commands:
  description: The C(sacli) write commands that were run, or in check mode would be run.
  returned: always
  type: list
  elements: str
  sample: ["sacli --key auth.module.post_auth_script --value_file=<private file> ConfigPut"]
validation:
  description: The interpreter that compiled the script and its version.
  returned: when the script was validated
  type: dict
  sample: {interpreter: /usr/bin/python3, python_version: "3.11.2"}
"""

import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import (
    POST_AUTH_KEY,
    SacliError,
    SacliRunner,
    fail_from_error,
    sacli_argument_spec,
    same_value,
    sha256_text,
)

# Runs in the validating interpreter, which may be as old as Python 3.6:
# compile as AS does (file name <string>) and look for an entry point.
VALIDATOR = r"""
import ast, json, sys
result = {"python_version": "%d.%d.%d" % sys.version_info[:3]}
try:
    with open(sys.argv[1], "rb") as handle:
        text = handle.read().decode("utf-8")
    tree = compile(text, "<string>", "exec", ast.PyCF_ONLY_AST)
    compile(tree, "<string>", "exec")
except (SyntaxError, ValueError, UnicodeDecodeError) as exc:
    result["error"] = "%s: %s" % (type(exc).__name__, exc)
else:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if not names & {"post_auth", "post_auth_cr"}:
        result["error"] = "the script defines neither post_auth nor post_auth_cr"
print(json.dumps(result))
"""


def validate(module, path):
    interpreter = module.params["validate_interpreter"] or module.get_bin_path("python3", required=True)
    rc, out, err = module.run_command([interpreter, "-I", "-c", VALIDATOR, path], check_rc=False)
    try:
        report = json.loads(out)
    except ValueError:
        module.fail_json(
            msg="could not validate the script with %s" % interpreter, rc=rc, stdout=out, stderr=err, changed=False
        )
    if "error" in report:
        module.fail_json(
            msg="the post-auth script is not valid for %s (Python %s): %s; nothing was loaded"
            % (interpreter, report.get("python_version"), report["error"]),
            changed=False,
        )
    return dict(interpreter=interpreter, python_version=report.get("python_version"))


def default_backup_dir(sacli_path):
    as_root = os.path.dirname(os.path.dirname(os.path.abspath(sacli_path)))
    return os.path.join(as_root, "etc", "ovpnas_fleet", "backups")


def write_backup(module, directory, text):
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        name = "post_auth_script.%s.%s.py" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), sha256_text(text)[:12])
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
    except OSError as exc:
        module.fail_json(msg="cannot write the backup in %s: %s; nothing was changed" % (directory, exc), changed=False)
    return path


def read_src(module, path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except OSError as exc:
        module.fail_json(msg="cannot read src %s: %s" % (path, exc))
    except UnicodeDecodeError:
        module.fail_json(msg="src %s is not UTF-8 text" % path)


def main():
    argument_spec = sacli_argument_spec()
    argument_spec.update(
        content=dict(type="str"),
        src=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        validate=dict(type="bool", default=True),
        validate_interpreter=dict(type="path"),
        backup=dict(type="bool", default=False),
        backup_dir=dict(type="path"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("content", "src")],
        required_if=[("state", "present", ("content", "src"), True)],
        supports_check_mode=True,
    )
    params = module.params
    present = params["state"] == "present"
    desired = None
    if present:
        desired = params["content"] if params["src"] is None else read_src(module, params["src"])
        if not desired.strip():
            module.fail_json(msg="the post-auth script is empty; use state=absent to remove the script")

    result = dict(changed=False, commands=[], restart_required=False)
    staged = None
    try:
        value_path = params["src"]
        if present and (params["validate"] or value_path is None):
            # one private copy serves both the validation and the load
            fd, staged = tempfile.mkstemp(prefix="post-auth-", suffix=".py", dir=module.tmpdir)
            with os.fdopen(fd, "wb") as handle:
                handle.write(desired.encode("utf-8"))
            value_path = staged
        if present and params["validate"]:
            result["validation"] = validate(module, staged)

        runner = SacliRunner(module)
        try:
            current = runner.config_query().get(POST_AUTH_KEY)
        except SacliError as exc:
            fail_from_error(module, exc, **result)

        changed = not same_value(current, desired)
        result.update(
            changed=changed,
            restart_required=changed,
            sha256_before=sha256_text(current),
            sha256_after=sha256_text(desired) if changed else sha256_text(current),
        )
        if changed:
            if present:
                result["commands"] = [runner.describe("ConfigPut", key=POST_AUTH_KEY, value=True)]
            else:
                result["commands"] = [runner.describe("ConfigDel", key=POST_AUTH_KEY)]
        if module._diff:
            result["diff"] = dict(
                before=current or "",
                after=desired or "",
                before_header="%s (live)" % POST_AUTH_KEY,
                after_header="%s (%s)" % (POST_AUTH_KEY, "wanted" if present else "removed"),
            )

        if changed and not module.check_mode:
            if params["backup"] and current is not None:
                result["backup_file"] = write_backup(
                    module, params["backup_dir"] or default_backup_dir(runner.path), current
                )
            try:
                if present:
                    runner.config_put(POST_AUTH_KEY, value_path=value_path)
                else:
                    runner.config_del(POST_AUTH_KEY)
            except SacliError as exc:
                result.update(changed=False, restart_required=False, commands=runner.commands)
                fail_from_error(module, exc, **result)
            result["commands"] = runner.commands
    finally:
        if staged is not None and os.path.exists(staged):
            os.unlink(staged)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
