"""audit.entries: the read API over the trail that modules use (e.g. incidents' evidence)."""
from __future__ import annotations

from datetime import timedelta

from core import api, audit
from core.db import db
from core.models import User, utcnow


def _write(app, make_user):
    alice, bob = make_user("ae_alice"), make_user("ae_bob")
    with app.test_request_context():
        users = {u.id: u for u in db.session.query(User).filter(User.id.in_([alice, bob]))}
        audit.record("test.details", actor=users[alice], field="phone")
        audit.record("test.filler", actor=users[alice])
        audit.record("test.xss", actor=users[bob])
        audit.record("test.details", actor=users[bob])
        db.session.commit()
    return alice, bob


def test_entries_filter_by_actor_actions_and_window(app, make_user):
    alice, bob = _write(app, make_user)
    with app.app_context():
        found = api.audit.entries(actor=alice, actions=["test.details", "test.xss"])
        assert [e.action for e in found] == ["test.details"]
        assert found[0].details == {"field": "phone"} and found[0].actor == "ae_alice"
        assert [e.actor for e in api.audit.entries(actions=["test.details"])] == ["ae_bob", "ae_alice"]
        assert {e.action for e in api.audit.entries(actor=bob, actions=["test.*"])} == {"test.xss", "test.details"}
        assert api.audit.entries(actor=alice, actions=[]) == []
        now = utcnow()
        assert api.audit.entries(actor=alice, since=now + timedelta(minutes=1)) == []
        assert len(api.audit.entries(actor=alice, since=now - timedelta(hours=1), until=now + timedelta(minutes=1))) == 2
        assert api.audit.entries(actor=alice, until=now - timedelta(hours=1)) == []
        assert len(api.audit.entries(actor=bob, limit=1)) == 1


def test_patterns_match_like_wildcards_only_literally(app, make_user):
    alice, _bob = _write(app, make_user)
    with app.app_context():
        assert api.audit.entries(actor=alice, actions=["test%"]) == []
        assert api.audit.entries(actor=alice, actions=["test_details"]) == []
        assert [e.action for e in api.audit.entries(actor=alice, actions=["*.details"])] == ["test.details"]
