# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline replacement for the get-pip.py script that ansible-test downloads.

ansible-test bootstraps pip in each virtual environment it creates (``sanity``, ``--venv``)
with a get-pip.py fetched from ci-files.testing.ansible.com, a host an offline CI cannot
reach. It looks in its cache first, so tests/run_all.py copies this file there (under its isolated
HOME, .build/home) with the name of the pip version each ansible-test pins: get_pip_23_1_2.py for
ansible-core 2.17, get_pip_24_2.py for 2.18 and 2.19, get_pip_25_2.py for 2.20 and 2.21::

    ~/.ansible/test/cache/get_pip_24_2.py

ansible-test runs it as ``get_pip.py --disable-pip-version-check pip==X.Y [...]
[--no-setuptools] [--no-wheel]``. This stand-in installs the pip that ships with CPython
(``ensurepip``), then lets that pip install the requested packages from the configured
package index.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip.py options that say what *not* to install besides pip; "pip install" knows
# neither and would stop, while leaving them out installs nothing extra anyway.
_GET_PIP_ONLY_OPTIONS = frozenset(('--no-setuptools', '--no-wheel'))


def pip_install_args(argv: list[str]) -> list[str]:
    """Return the arguments for ``pip install`` that stand for get-pip.py's ``argv``."""
    return [arg for arg in argv if arg not in _GET_PIP_ONLY_OPTIONS]


def main(argv: list[str]) -> int:
    """Bootstrap pip with ensurepip, then install what get-pip.py was asked for."""
    subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'], check=True)
    subprocess.run([sys.executable, '-m', 'pip', 'install'] + pip_install_args(argv), check=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
