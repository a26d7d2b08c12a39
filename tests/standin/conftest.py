# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in EKM built and installed once per session, and servers that are always stopped afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(HERE))

import standin_fixtures as sf  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope='session')
def archive(tmp_path_factory):
    return sf.build_archive(tmp_path_factory.mktemp('standin-build'))


@pytest.fixture(scope='session')
def home(archive, tmp_path_factory):
    return sf.install_archive(archive, tmp_path_factory.mktemp('standin-install'))


@pytest.fixture
def start(home):
    """Starts stand-ins that are always stopped afterwards, whatever the test did."""
    servers = []

    def run(config):
        server = sf.StandinServer(home, config)
        servers.append(server)
        return server.start()
    yield run
    for server in servers:
        server.stop()
