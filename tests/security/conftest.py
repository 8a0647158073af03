"""Fixtures of the security suite (security.md Part 5); the helpers live in seclib.py.

A module-scoped "world": departments DA and DB using grading and archives, staff of every role,
and customers carrying canary personal data. The canaries belong to a customer of department B,
so that every request department A makes can be grepped for them. Tests that change data use
their own rows; the shared rows only ever change when a refusal fails (which the tests detect).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))  # test modules import seclib (after tests/)

from seclib import build_app, populate  # noqa: E402

from core.db import db  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The shared world with CSRF off (tests that need it on build their own app)."""
    app = build_app(tmp_path_factory.mktemp("security"))
    yield populate(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
