"""The testinfra tests of every scenario (molecule/<scenario>/tests) import from molecule/resources
(hosts.py, runs.py) and from tests/policy (the TOTP codes the policy tests compute too)."""

import os
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(PROJECT, "molecule", "resources"), os.path.join(PROJECT, "tests", "policy")]
