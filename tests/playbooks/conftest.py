# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the playbook tests.

``archive``: the stand-in EKM's package (``ekm_server_archive``) and its SHA-256, built once per session with the
JDK; it also makes the collection importable as ``tapecrypt.ekm`` under ``.build`` (the tests run ansible-playbook
with ``ANSIBLE_COLLECTIONS_PATH`` pointing there).
"""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, '.build')

sys.path.insert(0, os.path.join(ROOT, 'tests', 'standin'))
import standin_fixtures  # noqa: E402  pylint: disable=wrong-import-position,import-error


@pytest.fixture(scope='session')
def archive(tmp_path_factory):
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    path = standin_fixtures.build_archive(str(tmp_path_factory.mktemp('dist')))
    with open(str(path) + '.sha256', encoding='utf-8') as f:
        return str(path), f.read().split()[0]
