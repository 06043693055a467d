# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of ovpnas.fleet.server_state: the ``compose`` option.

Composes what the host_checker and post_auth roles load from their variables, then runs the
module once. The post-auth script goes first by its identity alone; only a server whose live
script is another one gets the rendered script, in a second run of the module.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import lookup_loader

from ansible_collections.ovpnas.fleet.plugins.filter.host_checker import host_checker_query_file
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.cluster import cluster_writer
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import (
    ROLES,
    ComposeError,
    PostAuth,
    app_verify_desired,
    load_role_file,
    role_variables,
    unprefixed,
)
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.run import controller_run

MODULE = "ovpnas.fleet.server_state"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        compose = args.pop("compose", None) or []
        cluster = args.pop("cluster", None)
        differs_only = args.pop("probe", False)
        if differs_only and not self._play_context.check_mode:
            raise AnsibleActionFail("probe: run the task in check mode (check_mode: true)")
        if cluster:
            hosts = task_vars.get("ansible_play_hosts_all") or [task_vars["inventory_hostname"]]
            writer = cluster_writer(cluster, hosts, task_vars["hostvars"])
            if writer is None:
                raise AnsibleActionFail("cluster %s: ovpnas_cluster_writer names no node of the cluster in this play"
                                        % cluster)
            if writer != task_vars["inventory_hostname"]:
                # the nodes share one configuration: its writer converges it, then starts and gates this node
                result.update(changed=False, skipped=True, cluster=cluster, cluster_writer=writer,
                              msg="node of cluster %s: its configuration is written from %s, which also starts "
                                  "and gates this node" % (cluster, writer))
                return result
        if not isinstance(compose, list) or any(role not in ROLES for role in compose):
            raise AnsibleActionFail("compose: a list of %s" % ", ".join(ROLES))
        post_auth = backup = None
        try:
            values = role_variables(self._loader, self._templar, task_vars, compose) if compose else {}
            if "host_checker" in compose:
                params = unprefixed(values, "host_checker")
                if "app_verify" not in args:
                    args["app_verify"] = app_verify_desired(params, host_checker_query_file)
                backup = params["backup"]
            if "post_auth" in compose:
                params = unprefixed(values, "post_auth")
                version = load_role_file(self._loader, "post_auth", "vars", "main.yml")["__post_auth_version"]
                post_auth = PostAuth(params, version)
                desired = post_auth.desired
                for option in ("post_auth", "users", "users_exclusive_prefixes"):
                    args.setdefault(option, desired[option])
                earlier = task_vars.get("host_checker_desired")
                if "host_checker" not in compose and "post_auth" not in self._task.args and isinstance(earlier, dict):
                    # the query file the host_checker role loads (or removes) earlier in the play: check mode
                    # then checks the policy against what a real run would have live
                    live = "" if earlier.get("state") == "absent" else earlier.get("content")
                    if live is not None:
                        args["post_auth"] = dict(args["post_auth"], query_file=live)
                args["secret_keys"] = desired["secret_keys"] + list(args.get("secret_keys") or [])
                backup = params["backup"]
        except ComposeError as exc:
            raise AnsibleActionFail(exc.message) from None
        if backup is not None:
            # the post_auth role's choice when both are composed
            args.setdefault("backup", backup)
        # a change an earlier task of this run recorded is not one that was never applied
        args.pop("run", None)
        run = controller_run()
        if run is not None:
            args["run"] = run

        # a report wants the wanted script's sha256: render it at once (one read)
        by_identity = post_auth is not None and post_auth.settings is not None and "content" not in args["post_auth"]
        if by_identity and args.get("report"):
            args["post_auth"] = dict(args["post_auth"], content=post_auth.content(self._renderer(task_vars)))
            by_identity = False
        probe_args = args
        if by_identity:
            # what tests a new script is needed only with one
            probe_args = dict(args, post_auth={k: v for k, v in args["post_auth"].items()
                                               if k not in ("policy_harness", "policy_cases")})
        probe = self._execute_module(MODULE, module_args=probe_args, task_vars=task_vars)
        if differs_only and probe.get("failed") and probe.get("content_required"):
            # the live script is another one: that is all a probe wants to know
            result.update(changed=True, differs=True, reads=probe.get("reads", []),
                          msg="the live post-auth script is not the one the inventory composes")
            return result
        if not (by_identity and probe.get("failed") and probe.get("content_required")):
            result.update(probe)
            if differs_only:
                result["differs"] = bool(probe.get("changed"))
            return result
        # the live script is another one: render the wanted one and converge with it
        args["post_auth"] = dict(args["post_auth"], content=post_auth.content(self._renderer(task_vars)))
        converged = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
        converged["reads"] = probe.get("reads", []) + converged.get("reads", [])
        result.update(converged)
        return result

    def _renderer(self, task_vars):
        renderer = lookup_loader.get("ansible.builtin.template", loader=self._loader, templar=self._templar)

        def render(path, template_vars):
            return renderer.run([path], task_vars, template_vars=template_vars)[0]

        return render
