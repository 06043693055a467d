"""last_change: what a restore shows it runs is what it runs, in the same order."""

from ansible_collections.ovpnas.fleet.plugins.module_utils.last_change import read_change, record_change, undo_writes
from ansible_collections.ovpnas.fleet.plugins.module_utils.sacli import SacliError, SacliRunner

UNDO = [
    ["restore_user", "carol", {"type": "user_connect", "pvt_hw_addr": "00:11:22:33:44:55"}],
    ["delete_user", "dave", None],
    ["user_prop", "alice", ["pvt_hw_addr", None]],
    ["user_prop", "alice", ["prop_autologin", "true"]],
    ["key", "host.name", "vpn.example.com"],
    ["key", "auth.module.post_auth_script", None],
]


class Recorder:
    """A runner that records the writes undo_writes makes, described the way SacliRunner describes them."""

    def __init__(self, fail_on=None):
        self.ran = []
        self.fail_on = fail_on

    def describe(self, command, key=None, user=None, pfilt=None, value=False):
        return " ".join(["sacli"] + SacliRunner.options(command, key, user, pfilt, "<private file>" if value else None))

    def _write(self, command, **options):
        if command == self.fail_on:
            raise SacliError("%s failed" % command)
        self.ran.append(self.describe(command, **options))

    def config_put(self, key, value):
        self._write("ConfigPut", key=key, value=True)

    def config_del(self, key):
        self._write("ConfigDel", key=key)

    def userprop_put(self, user, key, value):
        self._write("UserPropPut", key=key, user=user, value=True)

    def userprop_del(self, user, key):
        self._write("UserPropDel", key=key, user=user)

    def userprop_del_all(self, user):
        self._write("UserPropDelAll", user=user)


def test_the_writes_are_undone_the_last_first():
    runner = Recorder()
    done, failed = undo_writes(runner, UNDO, SacliError)
    assert failed == [] and done == ["auth.module.post_auth_script", "host.name", "alice", "alice", "dave", "carol"]
    assert len(runner.ran) == 7
    assert runner.ran[0] == "sacli --key auth.module.post_auth_script ConfigDel"
    # a user taken back whole gets its type first
    assert runner.ran[-2:] == ["sacli --user carol --key type --value_file=<private file> UserPropPut",
                               "sacli --user carol --key pvt_hw_addr --value_file=<private file> UserPropPut"]


def test_a_failed_undo_is_named_and_the_others_still_run():
    runner = Recorder(fail_on="UserPropDelAll")
    done, failed = undo_writes(runner, UNDO, SacliError)
    assert failed == ["dave"] and "carol" in done
    assert len(runner.ran) == 6


def test_an_extended_record_keeps_what_both_runs_left_of_each_user(tmp_path):
    directory = str(tmp_path)
    first = record_change(directory, [["user_prop", "alice", ["pvt_hw_addr", None]]], {"host.name": "h1"},
                          users={"alice": {"pvt_hw_addr": "d1"}, "carol": None, "dave": {"prop_x": "d2"}})
    assert first["users_after"] == {"alice": {"pvt_hw_addr": "d1"}, "carol": None, "dave": {"prop_x": "d2"}}

    second = record_change(directory, [["user_prop", "alice", ["prop_autologin", None]]], {}, extend=True,
                           users={"alice": {"prop_autologin": "d3", "pvt_hw_addr": None}, "carol": {"prop_y": "d4"},
                                  "dave": None})

    assert second == read_change(directory)
    # alice: both runs' properties (the later wins); carol: re-created by the second; dave: deleted by it
    assert second["users_after"] == {"alice": {"pvt_hw_addr": None, "prop_autologin": "d3"},
                                     "carol": {"prop_y": "d4"}, "dave": None}
    assert len(second["undo"]) == 2 and second["after"] == {"host.name": "h1"}
