# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Python libraries that some module runs need, checked before the run depends on them.

Only sealing and unsealing keys needs ``cryptography`` (``_jceks`` imports it on first use); reading
a keystore, its inventory and its integrity check do not. A module that is about to seal or unseal
calls :func:`require_cryptography`, which fails the task with Ansible's standard
``missing_required_lib`` message (naming the host's interpreter) instead of a failure halfway through.
"""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib


def cryptography_import_error():
    """``None`` when the cipher layer of ``cryptography`` imports; else the traceback of the failed import."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        return traceback.format_exc()
    return None


def require_cryptography(module, reason):
    """Fail ``module`` with ``missing_required_lib('cryptography')`` when the library cannot be imported."""
    error = cryptography_import_error()
    if error is not None:
        module.fail_json(msg=missing_required_lib('cryptography', reason=reason), exception=error)
