# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller side of ovpnas.fleet.server_state: the ``compose`` option.

Composes what the host_checker and post_auth roles load from their variables, once, on the
controller, and hands it to the module, which runs once. A probe (``probe``, in check mode) sends
the post-auth script's identity alone, which the controller keeps once the script is rendered;
every other run sends the script itself.
"""

from __future__ import annotations

from ansible import context
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import lookup_loader

from ansible_collections.ovpnas.fleet.plugins.filter.host_checker import host_checker_query_file
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.cluster import cluster_members, cluster_writer
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.compose import ROLES, ComposeError, desired_state
from ansible_collections.ovpnas.fleet.plugins.plugin_utils.run import controller_run, live_runs

MODULE = "ovpnas.fleet.server_state"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        compose = args.pop("compose", None) or []
        cluster = args.pop("cluster", None)
        writer = args.pop("cluster_writer", None)
        differs_only = args.pop("probe", False)
        if differs_only and not self._play_context.check_mode:
            raise AnsibleActionFail("probe: run the task in check mode (check_mode: true)")
        if cluster:
            hosts = task_vars.get("ansible_play_hosts_all") or [task_vars["inventory_hostname"]]
            if writer is None:
                writer = cluster_writer(cluster, hosts, task_vars["hostvars"])
            elif writer not in cluster_members(cluster, hosts, task_vars["hostvars"]):
                raise AnsibleActionFail("cluster %s: cluster_writer %s is no node of the cluster in this play"
                                        % (cluster, writer))
            if writer is None:
                raise AnsibleActionFail("cluster %s: ovpnas_cluster_writer names no node of the cluster in this play"
                                        % cluster)
            if writer != task_vars["inventory_hostname"]:
                # the nodes share one configuration: its writer converges it, then starts and gates this node
                result.update(changed=False, skipped=True, cluster=cluster, cluster_writer=writer,
                              msg="node of cluster %s: its configuration is written from %s, which also starts "
                                  "and gates this node" % (cluster, writer))
                if differs_only:
                    # no read, but which database the node uses and whether its services run, for the plan to check
                    # that the cluster's nodes share one database and to hand a standby writer's write to a live node
                    node = self._execute_module(MODULE, module_args=dict(args, identify=True), task_vars=task_vars)
                    if node.get("failed"):
                        return dict(result, **node)
                    result.update(database=node.get("database"), standby=bool(node.get("standby")))
                return result
        if not isinstance(compose, list) or any(role not in ROLES for role in compose):
            raise AnsibleActionFail("compose: a list of %s" % ", ".join(ROLES))
        if compose:
            try:
                desired = desired_state(self._loader, self._templar, task_vars, compose, self._renderer(task_vars),
                                        host_checker_query_file, probe=differs_only)
            except ComposeError as exc:
                raise AnsibleActionFail(exc.message) from None
            # options given explicitly win, except secret_keys, which adds to the composed ones
            for option in ("app_verify", "post_auth", "users", "users_exclusive_prefixes", "backup"):
                if option in desired:
                    args.setdefault(option, desired[option])
            if desired.get("secret_keys"):
                args["secret_keys"] = desired["secret_keys"] + list(args.get("secret_keys") or [])
            earlier = task_vars.get("host_checker_desired")
            if "post_auth" in desired and "host_checker" not in compose and "post_auth" not in self._task.args \
                    and isinstance(earlier, dict):
                # the query file the host_checker role loads (or removes) earlier in the play: check mode
                # then checks the policy against what a real run would have live
                live = "" if earlier.get("state") == "absent" else earlier.get("content")
                if live is not None:
                    args["post_auth"] = dict(args["post_auth"], query_file=live)
        # a change an earlier task of this run recorded is not one that was never applied
        args.pop("run", None)
        args.pop("runs_alive", None)
        run = controller_run()
        if run is not None:
            args["run"] = run
            # which other runs on this controller still go: a change one of them is applying is waited for
            args["runs_alive"] = [token for token in live_runs() if token != run]
        # module files a killed run left hold their arguments; a real run removes them, a check run names them
        args["remove_module_leftovers"] = not context.CLIARGS.get("check", False)

        result.update(self._execute_module(MODULE, module_args=args, task_vars=task_vars))
        if differs_only:
            result["differs"] = bool(result.get("changed"))
        return result

    def _renderer(self, task_vars):
        renderer = lookup_loader.get("ansible.builtin.template", loader=self._loader, templar=self._templar)

        def render(path, template_vars):
            return renderer.run([path], task_vars, template_vars=template_vars)[0]

        return render
