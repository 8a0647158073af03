"""Handover of a leaving employee: customers, shares and other modules' records move to a
colleague in one audited action, and the leaver's account is deactivated (sessions end)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core import hooks
from core.audit import AuditEntry
from core.db import db
from core.models import User
from modules.customers import services
from modules.customers.models import Customer, Share


@pytest.fixture
def team(make_user):
    ids = {name: make_user(name, role, dept) for name, role, dept in (
        ("head1", "head", "D1"), ("leaver", "sales", "D1"), ("taker", "sales", "D1"),
        ("other", "service", "D1"), ("gone", "sales", "D1"), ("head2", "head", "D2"), ("far", "sales", "D2"))}
    return ids


@pytest.fixture
def holdings(app, team):
    """The leaver owns three customers and holds a share of a colleague's; the taker already has a
    share of one of the leaver's customers. A hook of "another module" records its calls."""
    calls = []

    def other_module(from_user, to_user, actor):
        calls.append((from_user.username, to_user.username, actor.username))
        return 4

    with app.app_context():
        users = {u.username: u for u in db.session.execute(select(User)).scalars()}
        mine = [services.create_customer(users["leaver"], {"kind": "person", "name": f"客户{i}"})
                for i in range(3)]
        theirs = services.create_customer(users["other"], {"kind": "person", "name": "别人的客户"})
        db.session.flush()
        db.session.add_all([
            Share(customer_id=theirs.id, user_id=users["leaver"].id, granted_by=users["other"].id),
            Share(customer_id=mine[0].id, user_id=users["taker"].id, granted_by=users["leaver"].id)])
        users["gone"].active = False
        db.session.commit()
        ids = {"mine": [c.id for c in mine], "theirs": theirs.id}
    hooks.add(app, "customers.handover", "customers", other_module)
    return ids, calls


def test_handover_moves_everything_and_deactivates_the_leaver(app, client, login_as, team, holdings):
    ids, calls = holdings
    leaver_client = login_as(app.test_client(), "leaver")
    assert leaver_client.get("/customers/").status_code == 200
    login_as(client, "head1")
    page = client.get("/customers/handover")
    assert page.status_code == 200 and "leaver" in page.get_data(as_text=True)
    response = client.post("/customers/handover",
                           data={"from_user": team["leaver"], "to_user": team["taker"]})
    assert response.status_code == 302
    with app.app_context():
        owners = {c.id: c.owner_id for c in db.session.execute(select(Customer)).scalars()}
        assert [owners[i] for i in ids["mine"]] == [team["taker"]] * 3
        assert owners[ids["theirs"]] == team["other"]
        shares = {(s.customer_id, s.user_id) for s in db.session.execute(select(Share)).scalars()}
        assert shares == {(ids["theirs"], team["taker"])}  # moved; the redundant one dropped
        assert db.session.get(User, team["leaver"]).active is False
        (entry,) = db.session.execute(select(AuditEntry).where(
            AuditEntry.action == "customers.handover.completed")).scalars().all()
        details = entry.details_dict
        assert (details["customers"], details["shares_moved"], details["other"]) == (3, 1, 4)
        assert entry.target_id == str(team["leaver"]) and details["to_user"] == team["taker"]
        versions = {c.version for c in db.session.execute(select(Customer).where(
            Customer.id.in_(ids["mine"]))).scalars()}
        assert versions == {2}  # an edit form opened before the handover is now stale
    assert calls == [("leaver", "taker", "head1")]
    # the leaver's open session is over
    response = leaver_client.get("/customers/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("pair, message", [
    (("leaver", "far"), "department"),
    (("far", "taker"), "department"),
    (("leaver", "leaver"), "different"),
    (("leaver", "gone"), "deactivated"),
    (("head1", "taker"), "own account"),
])
def test_handover_refusals(app, client, login_as, team, holdings, pair, message):
    login_as(client, "head1")
    client.post("/language", data={"locale": "en"})  # the messages' own words, whatever is translated
    response = client.post("/customers/handover", data={"from_user": team[pair[0]], "to_user": team[pair[1]]})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="handover-problem"' in html and message in html
    with app.app_context():
        assert db.session.get(User, team["leaver"]).active is True
        assert {c.owner_id for c in db.session.execute(select(Customer).where(
            Customer.id.in_(holdings[0]["mine"]))).scalars()} == {team["leaver"]}
        assert not db.session.execute(select(AuditEntry).where(
            AuditEntry.action == "customers.handover.completed")).first()
    assert holdings[1] == []


def test_handover_needs_the_permission(client, login_as, team):
    login_as(client, "taker")
    assert client.get("/customers/handover").status_code == 403
    assert client.post("/customers/handover", data={"from_user": team["leaver"],
                                                    "to_user": team["taker"]}).status_code == 403


def test_handover_from_the_command_line(app, runner, team, holdings):
    result = runner("customers", "handover", "--from", "leaver", "--to", "taker", "--as", "head1")
    assert result.exit_code == 0, result.output
    assert "3 customers" in result.stdout and "4 records" in result.stdout
    result = runner("customers", "handover", "--from", "taker", "--to", "far", "--as", "head1")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
