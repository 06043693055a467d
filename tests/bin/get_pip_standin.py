"""Stand-in for pypa's get-pip.py, for ansible-test on machines that reach PyPI only.

ansible-test bootstraps pip in each of its virtual environments with a get-pip.py that it
downloads from ci-files.testing.ansible.com. Where that host is out of reach, this file is
placed in its cache instead: it runs the pip wheel that ensurepip bundles to install the
requested pip from PyPI, taking the same arguments as get-pip.py.
"""

import ensurepip
import glob
import os
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
wheel = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))[-1]
sys.path.insert(0, wheel)

from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", *args]))
