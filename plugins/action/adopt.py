# -*- coding: utf-8 -*-
# Copyright (c) ovpnas.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ovpnas.fleet.adopt: write what the servers' reads found as the adopt folder (see plugin_utils/adopt.py)."""

from __future__ import annotations

import os
import shutil
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.parsing.vault import VaultLib, match_encrypt_secret
from ansible.plugins.action import ActionBase

from ansible_collections.ovpnas.fleet.plugins.plugin_utils import adopt

MARKER = ".ovpnas-adopt"
VAULT_FILE = os.path.join("group_vars", "all", "adopted_secrets.yml")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("hosts", "read", "dest"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        hosts, dest = args.get("hosts"), args.get("dest")
        if not isinstance(hosts, list) or not isinstance(dest, str) or not dest:
            raise AnsibleActionFail("hosts (a list of inventory host names) and dest (a folder) are required")
        if not hosts:
            raise AnsibleActionFail("no server to adopt: the host pattern matches none")
        name = args.get("read") or "ovpnas_adopt_read"
        hostvars = task_vars.get("hostvars") or {}
        reads, settings = {}, {}
        for host in hosts:
            variables = hostvars.get(host) or {}
            reads[host] = variables.get(name)
            # the keys the inventory manages on the server, as a deploy would write them
            settings[host] = (variables.get("ovpnas_config_settings") or {},
                              variables.get("ovpnas_secret_keys") or [])
        adopted = adopt.adoption(reads, settings)
        secrets = adopt.secrets(adopted)
        dest = os.path.abspath(os.path.expanduser(dest))
        result.update(
            dest=dest,
            scripts={group: dict(file=s.file, hosts=s.hosts, secrets=s.names)
                     for group, s in adopted["scripts"].items()},
            without_script=sorted(host for host, group in adopted["hosts"].items() if group is None),
            settings_kept={host: [key for key, *_rest in kept["differs"]]
                           for host, kept in adopted["settings"].items()},
            drift={group: wider for group, (wider, _lines) in adopted["drift"].items()},
            refused=adopted["refused"], unread=adopted["unread"], changed=True)
        if adopted["refused"]:
            raise AnsibleActionFail("cannot adopt: %s; nothing was written" % "; ".join(
                "%s (%s) %s" % (group, ", ".join(adopted["scripts"][group].hosts), why)
                for group, why in sorted(adopted["refused"].items())), result=result)
        vault = self._vault()
        if secrets and vault is None:
            holders = {h for s in adopted["scripts"].values() if s.secrets for h in s.hosts}
            holders |= {group[len("settings_"):] for group in secrets if group.startswith("settings_")}
            raise AnsibleActionFail(
                "cannot adopt without a vault password: %s hold secrets (%s), which are kept only encrypted; give one "
                "the usual ways (ANSIBLE_VAULT_PASSWORD_FILE, --vault-id); nothing was written"
                % (", ".join(sorted(holders)), ", ".join(sorted({n for values in secrets.values() for n in values}))),
                result=result)
        existing = os.path.isdir(dest) and os.listdir(dest)
        if existing and not os.path.exists(os.path.join(dest, MARKER)):
            raise AnsibleActionFail("%s is not empty and was not written by ovpnas.fleet.adopt; nothing was written"
                                    % dest, result=result)
        if adopted["unread"]:
            result["warnings"] = ["not read, so not adopted: %s; a deploy gives them what the inventory says, not "
                                  "what they run" % ", ".join(sorted(adopted["unread"]))]
        if self._play_context.check_mode:
            return result
        files = adopt.folder(adopted, ", ".join(task_vars.get("ansible_inventory_sources") or []))
        files[MARKER] = "This folder is written whole by playbooks/adopt_postauth.yml.\n"
        if secrets:
            files[VAULT_FILE] = vault(adopt.secrets_yaml(secrets))
        self._write(dest, files)
        return result

    def _vault(self):
        """An encrypt function with the run's vault password, or None where the run has none."""
        secrets = getattr(getattr(self._loader, "_vault", None), "secrets", None) or []
        if not secrets:
            return None
        vault_id, secret = match_encrypt_secret(secrets)

        def encrypt(text):
            return to_text(VaultLib(secrets).encrypt(text, secret, vault_id=vault_id))

        return encrypt

    @staticmethod
    def _write(dest, files):
        """Write ``files`` into a new folder beside ``dest``, then put it in ``dest``'s place."""
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        fresh = tempfile.mkdtemp(prefix=".adopt-", dir=parent)
        try:
            for relative, text in files.items():
                path = os.path.join(fresh, relative)
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
                # scripts may hold what is not a secret by name and still private: the folder is the owner's
                os.chmod(path, 0o600 if relative.startswith("files/") or relative == VAULT_FILE else 0o644)
            os.chmod(fresh, 0o755)
            old = None
            if os.path.exists(dest):
                old = dest + ".old-%d" % os.getpid()
                os.rename(dest, old)
            os.rename(fresh, dest)
            if old:
                shutil.rmtree(old)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
