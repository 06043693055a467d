import os
import sys

# molecule/resources (hosts.py) and tests/policy (the TOTP codes the policy tests compute too)
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
sys.path[:0] = [os.path.join(PROJECT, "molecule", "resources"), os.path.join(PROJECT, "tests", "policy")]
