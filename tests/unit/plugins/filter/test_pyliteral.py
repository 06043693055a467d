"""pyliteral: data in, Python literal source out, nothing else."""

import ast
import math

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ovpnas.fleet.plugins.filter.pyliteral import FilterModule, pyliteral

EVIL = [
    "it's",
    'say "hi"',
    "back\\slash\\",
    "new\nline\r\n",
    "'''; import os; os.system('id') #",
    '"""\nimport os\n"""',
    "\\'); __import__('os').system('id'); ('",
    "{{ lookup('pipe', 'id') }}",
    "\x00nul\x1b[31m",
    "caf\u00e9 \u2603 \U0001f600",
    "\u2028line separator\u2029",
    "",
]


@pytest.mark.parametrize("value", EVIL)
def test_strings_land_as_data_only(value):
    source = pyliteral(value)
    assert ast.literal_eval(source) == value
    assert "\n" not in source and source.isprintable()
    # the literal is one expression: nothing after it runs
    tree = ast.parse("X = " + source)
    assert len(tree.body) == 1 and isinstance(tree.body[0].value, ast.Constant)


def test_printable_text_stays_readable():
    assert pyliteral("caf\u00e9 \u2603 \u65e5\u672c") == "'caf\u00e9 \u2603 \u65e5\u672c'"
    # what is not printable is escaped: a line separator, a right-to-left override, a control
    assert pyliteral("a\u2028b\u202ec\x1b") == "'a\\u2028b\\u202ec\\x1b'"


def test_nested_data_round_trips():
    value = {
        "rules": [{"group": "a'b", "values": ["x\ny", 1, 2.5, True, None]}] * 6,
        "empty": {},
        "none": None,
        2: "int key",
        "tuple": ("one",),
    }
    source = pyliteral(value)
    assert ast.literal_eval(source) == value
    assert "\n" in source, "long containers are spread over lines"
    assert all(len(line) <= 100 for line in source.splitlines())


def test_output_is_stable_whatever_the_key_order():
    assert pyliteral({"b": 1, "a": [2, {"d": 3, "c": 4}]}) == pyliteral({"a": [2, {"c": 4, "d": 3}], "b": 1})
    assert pyliteral({"b": 1, "a": 2}) == "{'a': 2, 'b': 1}"


@pytest.mark.parametrize(
    "value, expected",
    [(None, "None"), (True, "True"), (False, "False"), (0, "0"), (-7, "-7"), (1.5, "1.5"), ([], "[]"), ((), "()")],
)
def test_scalars(value, expected):
    assert pyliteral(value) == expected


@pytest.mark.parametrize(
    "value, where",
    [
        (b"bytes", "value is a bytes"),
        ({"a": {1, 2}}, "value['a'] is a set"),
        ([object()], "value[0] is a object"),
        (math.inf, "value is inf"),
        (math.nan, "value is nan"),
        ({(1, 2): "tuple key"}, "has a key of type tuple"),
        ({True: "bool key"}, "has a key of type bool"),
        ({"f": lambda: 1}, "value['f'] is a function"),
    ],
)
def test_refuses_what_is_not_plain_data(value, where):
    with pytest.raises(AnsibleFilterError, match="pyliteral") as info:
        pyliteral(value)
    assert where in str(info.value)


def test_error_names_the_value():
    with pytest.raises(AnsibleFilterError, match=r"settings\['x'\]\[1\] is a bytes"):
        pyliteral({"x": [1, b"2"]}, "settings")


def test_registered_as_filter():
    assert FilterModule().filters()["pyliteral"] is pyliteral
