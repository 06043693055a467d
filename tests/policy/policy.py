"""Helpers of the post_auth policy tests: one role run per scenario, then logins through authcli.

A scenario is one emulated Access Server root on which the post_auth role ran once (through
tests/integration/playbooks/post_auth.yml, its variables in vars.json); every login of the
scenario runs the root's authcli as a separate process, the way Access Server drives the script.
The role runs of a test module's scenarios are started together (``scenarios``) to save time.
"""

import ast
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _fleet_conftest():
    """tests/conftest.py as a module: `import conftest` here finds tests/policy/conftest.py."""
    spec = importlib.util.spec_from_file_location("ovpnas_fleet_tests_conftest", os.path.join(REPO, "tests",
                                                                                              "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fleet = _fleet_conftest()
Server = fleet.Server
recap = fleet.recap

PLAYBOOK = os.path.join(REPO, "tests", "integration", "playbooks", "post_auth.yml")
SCRIPT_KEY = "auth.module.post_auth_script"
PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
# every Python 3 of the machine (3.6 ... 3.13): each must compile every rendered script
PYTHONS = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", "3.*", "bin", "python3")))

ADMINS_DN = "cn=vpn-admins,ou=groups,dc=example,dc=com"
USERS_DN = "cn=vpn-users,ou=groups,dc=example,dc=com"
GROUPS_BASE = "ou=groups,dc=example,dc=com"

# the messages the scenarios give users, all different so that a test sees which check refused
MESSAGES = {
    "internal_error": "MSG internal error",
    "directory_error": "MSG directory could not be asked",
    "group_unmatched": "MSG no group for you",
    "group_denied": "MSG your group is denied",
    "device_missing_address": "MSG send a hardware address",
    "device_invalid_address": "MSG hardware address not valid",
    "device_not_registered": "MSG device not registered",
    "platform_not_allowed": "MSG platform not allowed",
    "client_too_old": "MSG client older than {min_version}",
    "app_missing": "MSG {app} missing",
    "app_outdated": "MSG {app} older than {min_version}",
    "app_unverifiable": "MSG {app} unverifiable",
    "platform_cannot_report": "MSG platform cannot report",
}

# what every scenario passes: the policy cases run with this interpreter, and every Python 3 here compiles
BASE_VARIABLES = {
    "post_auth_python": sys.executable,
    "post_auth_validate_interpreters": PYTHONS,
    "post_auth_messages": MESSAGES,
}


class Scenario:
    """One emulated root with the script the role composed from ``variables``."""

    def __init__(self, folder, variables):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.server = fleet.install_server(os.path.join(self.folder, "as01"))
        self.variables = dict(BASE_VARIABLES, **variables)
        self.inventory = fleet.write_inventory(os.path.join(self.folder, "inventory.json"), {"as01": self.server})
        self.vars_file = os.path.join(self.folder, "vars.json")
        with open(self.vars_file, "w") as handle:
            json.dump(self.variables, handle, indent=2)
        self.first_run = None
        self.running = None

    def start(self):
        """Start the role run in the background (ansible-playbook as tests/conftest.py's run_playbook runs it)."""
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORKS="10",
                   ANSIBLE_NOCOLOR="1", PATH=fleet.ANSIBLE_BIN + os.pathsep + os.environ.get("PATH", ""))
        argv = [os.path.join(fleet.ANSIBLE_BIN, "ansible-playbook"), "-i", self.inventory, PLAYBOOK,
                "-e", "@" + self.vars_file]
        self.running = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait(self):
        """Wait for the role run; fail with its output when the play failed."""
        run, self.running = self.running, None
        try:
            stdout, stderr = run.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            raise
        result = subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        if self.first_run is None:
            self.first_run = result
        return result

    def apply(self):
        """Run the role (again) and wait for it."""
        self.start()
        return self.wait()

    @property
    def script(self):
        return self.server.config()[SCRIPT_KEY]

    def login(self, user, password=None, *options):
        return login(self.server, user, password, *options)


def scenarios(tmp_path_factory, specs):
    """{name: (variables, prepare)} -> {name: Scenario}: each root installed and prepared
    (``prepare(server)`` sets up the directory, users...), then the role runs of all at once."""
    built = {}
    try:
        for name, (variables, prepare) in specs.items():
            sc = built[name] = Scenario(tmp_path_factory.mktemp(name), variables)
            if prepare is not None:
                prepare(sc.server)
            sc.server.reset_calls()
            sc.start()
    except BaseException:
        for sc in built.values():
            if sc.running is not None:
                sc.running.kill()
                sc.running.communicate()
        raise
    errors = []
    for sc in built.values():
        try:
            sc.wait()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, "\n\n".join(errors)
    return built


FIELD = re.compile(r"^  (status|session_id|reason|client_reason|challenge|expire|user|proplist) : (.*)$")


class Outcome(dict):
    """authcli's fields (status, reason, client_reason, user, ...), ``rc`` and the parsed ``proplist``."""

    @property
    def props(self):
        return ast.literal_eval(self["proplist"]) if "proplist" in self else {}

    @property
    def group(self):
        return self.props.get("conn_group")


def parse(stdout):
    """The fields authcli printed; a value with newlines continues on the lines after its own."""
    lines = stdout[:-1].split("\n") if stdout.endswith("\n") else stdout.split("\n")
    assert lines and lines[0] == "API METHOD: authenticate", stdout
    fields = Outcome()
    last = None
    for line in lines[1:]:
        if line == "AUTH_RETURN" and last is None:
            continue
        match = FIELD.match(line)
        if match and match.group(1) not in fields:
            last = match.group(1)
            fields[last] = match.group(2)
        else:
            assert last is not None, stdout
            fields[last] += "\n" + line
    return fields


def login(server, user, password=None, *options):
    """One authcli run: ``login(server, "alice", "pw", "--hw-addr", "00:11:22:33:44:55")``."""
    argv = ["--user", user]
    if password is not None:
        argv += ["--pass", password]
    proc = server.authcli(*argv, *options)
    fields = parse(proc.stdout)
    fields["rc"] = proc.returncode
    fields["stderr"] = proc.stderr
    assert proc.returncode == (0 if fields["status"] == "SUCCEED" else 1), (proc.stdout, proc.stderr)
    return fields


def vpn(hw_addr=None, ip=None, **client_info):
    """authcli options of a VPN client: its hardware address, address and client_info entries."""
    options = []
    if hw_addr is not None:
        options += ["--hw-addr", hw_addr]
    if ip is not None:
        options += ["--client-ip", ip]
    for name, value in sorted(client_info.items()):
        options += ["--client-info", "%s=%s" % (name, value)]
    return options


class Log:
    """The server log from a mark on: ``mark = Log(server)`` ... ``mark.new()``."""

    def __init__(self, server):
        self.path = server.root.log_file
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def new(self):
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            return handle.read()


def user_props(server, user):
    """The properties userprop.db holds for ``user`` (empty when there is no such profile)."""
    return server.userprops().get(user, {})


def hw_slots(props):
    """{slot: address} of the pvt_hw_addr* properties among ``props``."""
    return {k: v for k, v in props.items() if k.startswith("pvt_hw_addr")}
