"""Anomaly alerts: each rule fires on a prepared sequence of events, evaluated as the entries are
written (no cron run needed) or by `kehu alerts run`; ordinary office work raises none."""
from datetime import UTC, datetime, timedelta

from core import audit
from core.db import db
from core.models import User
from modules.oversight import alerts
from modules.oversight.models import Alert
from tests.conftest import captured_statements

TUESDAY_NIGHT = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)  # Wednesday 02:30 in Beijing


def _alerts(app, rule=None):
    with app.app_context():
        stmt = db.session.query(Alert)
        if rule:
            stmt = stmt.filter_by(rule=rule)
        return [(a.rule, a.actor, a.count, a.status) for a in stmt.order_by(Alert.id)]


def _run(app):
    with app.app_context():
        return alerts.run_all()


def test_normal_office_work_raises_no_alert(app, ov, clock, make_customer, login_as):
    """A day like the demo's: sign-ins (one mistyped password), the customer list and pages, a few
    reveals with reasons, an export, new customers, one wrong link to another department's
    customer, the security officer reading the audit trail."""
    others = [make_customer("sales1", name=f"客户{i}", phone=f"1380013800{i}") for i in range(5)]
    with_address = make_customer("sales1", name="有地址", home_address="北京市朝阳区某路1号")
    other_dept = make_customer("sales2", dept="D2", name="外部客户")
    sales = app.test_client()
    sales.post("/login", data={"username": "sales1", "password": "wrong-password"})
    sales = ov.client("sales1")
    head = ov.client("head1")
    for customer_id in [ov.customer, *others]:
        assert sales.get(f"/customers/{customer_id}").status_code == 200
        assert head.get(f"/customers/{customer_id}").status_code == 200
        clock.advance(minutes=3)
    assert sales.get("/customers/?q=客户").status_code == 200
    for _i in range(3):
        assert head.post(f"/customers/{ov.customer}/reveal/id_number").status_code == 200
        clock.advance(minutes=5)
    assert head.post(f"/customers/{with_address}/reveal/home_address", data={"reason": "寄送合同"}).status_code == 200
    response = head.post("/customers/export", data={"reason": "季度客户回访", "fmt": "csv"})
    assert response.status_code == 200
    assert sales.get(f"/customers/{other_dept}").status_code == 404
    make_customer("sales1", name="新客户", phone="13900139000")
    security = ov.client("security1")
    assert security.get("/audit/").status_code == 200
    assert security.get("/oversight/alerts").status_code == 200
    _run(app)
    with app.app_context():
        from core.watch import head_id
        from modules.oversight.models import Cursor
        assert db.session.get(Cursor, 1).last_entry_id == head_id() > 40  # everything was read
    assert _alerts(app) == []


def test_many_reveals_in_a_short_time_raise_an_alert_as_they_are_written(app, ov, clock):
    head = ov.client("head1")
    for _i in range(29):
        assert head.post(f"/customers/{ov.customer}/reveal/id_number").status_code == 200
    assert _alerts(app) == []
    assert head.post(f"/customers/{ov.customer}/reveal/id_number").status_code == 200
    assert _alerts(app) == [("burst", "head1", 30, "open")]  # no cron run: evaluated after the request
    head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert _alerts(app) == [("burst", "head1", 31, "open")]  # the same alert grows
    # spread over more than the window, as many reveals stay quiet
    clock.advance(hours=2)
    for _i in range(29):
        clock.advance(minutes=1)
        head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert len(_alerts(app)) == 1


def test_many_exports_count_too(app, ov, clock):
    app.config["OVERSIGHT_BURST_COUNT"] = 3
    head = ov.client("head1")
    for _i in range(3):
        assert head.post("/customers/export", data={"reason": "季度回访", "fmt": "csv"}).status_code == 200
    assert [a[0] for a in _alerts(app)] == ["burst"]


def test_activity_outside_working_hours(app, ov, clock):
    clock.set(TUESDAY_NIGHT)
    head = ov.client("head1")
    head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert _alerts(app) == [("off_hours", "head1", 2, "open")]  # the sign-in and the reveal, one alert
    clock.set(TUESDAY_NIGHT + timedelta(days=1))
    ov.client("head1")
    assert [a[:2] for a in _alerts(app)] == [("off_hours", "head1"), ("off_hours", "head1")]  # one per night
    # a Sunday at ten in the morning is outside the working week
    clock.set(datetime(2026, 12, 6, 2, 0, tzinfo=UTC))
    ov.client("sales1")
    assert ("off_hours", "sales1", 1, "open") in _alerts(app)


def test_repeated_refusals_on_another_departments_records(app, ov, clock, make_customer, login_as):
    other = make_customer("sales2", dept="D2", name="外部客户")
    prober = ov.client("sales1")
    for _i in range(9):
        assert prober.get(f"/customers/{other}").status_code == 404
    assert _alerts(app) == []
    assert prober.get(f"/customers/{other}/edit").status_code == 404
    assert _alerts(app) == [("denied_rows", "sales1", 10, "open")]
    with app.app_context():
        entry = audit.entries(actions=["core.access.row_denied"], limit=1)[0]
        assert entry.details["exists"] is True and entry.details["row_department"] != ov.user("sales1").department_id


def test_refusals_within_the_own_department_or_on_missing_rows_stay_quiet(app, ov, clock, login_as):
    colleague = login_as(app.test_client(), "sales1b", "sales", "D1")
    for _i in range(12):
        assert colleague.get(f"/customers/{ov.customer}").status_code == 404  # sales1's, same department
        assert colleague.get("/customers/999999").status_code == 404
    assert _alerts(app) == []


def test_sign_in_from_a_new_address_after_many_failures(app, ov, clock):
    ov.client("head1")  # usually from 127.0.0.1
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    for _i in range(5):
        attacker.post("/login", data={"username": "head1", "password": "guess-guess-1"})
    with app.app_context():
        db.session.query(User).filter_by(username="head1").update({"locked_until": None, "failed_logins": 0})
        db.session.commit()
    clock.advance(minutes=5)
    assert attacker.post("/login", data={"username": "head1", "password": "Correct-horse-42"}).status_code == 302
    found = _alerts(app)
    assert found == [("new_address", "head1", 6, "open")]
    with app.app_context():
        assert db.session.query(Alert).one().address == "203.0.113.7"


def test_a_known_address_or_few_failures_stay_quiet(app, ov, clock):
    user = app.test_client()
    for _i in range(5):
        user.post("/login", data={"username": "head1", "password": "forgot-it-again"})
    with app.app_context():
        db.session.query(User).filter_by(username="head1").update({"locked_until": None, "failed_logins": 0})
        db.session.commit()
    ov.client("head1")  # the first sign-in ever is from a new address: then the account's own office
    first = _alerts(app)
    assert [a[0] for a in first] == ["new_address"]
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    other.post("/login", data={"username": "head1", "password": "typo-typo-1"})
    ov.client("head1")
    other.post("/logout")
    assert len(_alerts(app)) == 1


def test_kehu_alerts_run_reads_what_was_written_outside_requests(app, ov, runner, clock):
    clock.set(TUESDAY_NIGHT)
    with app.app_context():
        head = db.session.query(User).filter_by(username="head1").one()
        audit.record("customers.export.completed", actor=head, format="csv", marketing=False, rows=3)
        db.session.commit()
    result = runner("alerts", "run")
    assert result.exit_code == 0 and "1 alerts raised or extended, 1 open" in result.output
    again = runner("alerts", "run")
    assert "0 audit entries read" in again.output
    assert _alerts(app, "off_hours") == [("off_hours", "head1", 1, "open")]


def test_entries_no_rule_watches_are_skipped_at_once_and_a_watched_one_among_them_still_counts(app, ov, clock):
    """After a bulk import (two entries a customer) the cursor moves past the entries no rule
    reads in one evaluation, instead of decoding them 500 per request."""
    from core.watch import head_id
    from modules.oversight.models import Cursor
    clock.set(TUESDAY_NIGHT)
    with app.app_context():
        head = db.session.query(User).filter_by(username="head1").one()
        bulk = [{"target_type": "customers_customer", "target_id": i, "kind": "person"} for i in range(700)]
        audit.record_many("customers.customer.created", bulk, actor=head)
        audit.record("customers.export.completed", actor=head, format="csv", marketing=False, rows=3)
        audit.record_many("customers.customer.created", bulk, actor=head)
        db.session.commit()
        read, touched = alerts.evaluate(limit=500)
        db.session.commit()
        assert (read, len(touched)) == (1, 1)  # the export, at night
        assert db.session.get(Cursor, 1).last_entry_id == head_id() > 1400
        assert alerts.evaluate(limit=500) == (0, [])
        seen = head_id()
        audit.record("customers.customer.created", actor=head, target_type="customers_customer", target_id=1)
        db.session.commit()
        # what a request does after it wrote nothing watched: read, and leave the cursor alone
        # without locking it (on SQLite, without the database's write lock)
        with captured_statements(app) as statements:
            assert alerts.evaluate(limit=500, lag=1000) == (0, [])
            mode = db.session.connection().info.get("kehu_sqlite_mode")
        assert not any("FOR UPDATE" in sql or sql.startswith("UPDATE") for sql, _params in statements)
        assert mode in (None, "read")  # SQLite's transaction stayed a reader (PostgreSQL has no mode)
        assert db.session.get(Cursor, 1).last_entry_id == seen == head_id() - 1
    assert _alerts(app, "off_hours") == [("off_hours", "head1", 1, "open")]


def test_thresholds_are_settings(app, ov, clock):
    app.config["OVERSIGHT_BURST_COUNT"] = 2
    app.config["OVERSIGHT_RULES"] = ("burst",)
    head = ov.client("head1")
    head.post(f"/customers/{ov.customer}/reveal/id_number")
    head.post(f"/customers/{ov.customer}/reveal/id_number")
    assert [a[0] for a in _alerts(app)] == ["burst"]


def test_security_lists_acknowledges_and_opens_an_incident(app, ov, clock):
    clock.set(TUESDAY_NIGHT)
    ov.client("head1")
    security = ov.client("security1")
    home = security.get("/").get_data(as_text=True)
    assert 'id="menu-oversight-alerts"' in home
    page = security.get("/oversight/alerts").get_data(as_text=True)
    assert "非工作时间操作" in page and "head1" in page
    with app.app_context():
        first = db.session.query(Alert).filter_by(actor="head1").one().id
        assert alerts.open_count() >= 1
    # a note is required
    refused = security.post(f"/oversight/alerts/{first}", data={"note": "  "})
    assert refused.status_code == 200 and "请填写对此告警的核查情况与处理" in refused.get_data(as_text=True)
    assert security.post(f"/oversight/alerts/{first}", data={"note": "已电话核实：加班处理投诉。"}).status_code == 302
    with app.app_context():
        alert = db.session.get(Alert, first)
        assert alert.status == "acknowledged" and alert.acknowledged_by == ov.user("security1").id
    # staff see nothing of it
    assert ov.client("sales1").get("/oversight/alerts").status_code in (302, 403)
    # another alert becomes an incident, with its entries as evidence
    clock.set(TUESDAY_NIGHT + timedelta(days=2))
    ov.client("head1")
    with app.app_context():
        second = db.session.query(Alert).filter_by(status="open", actor="head1").one().id
    assert security.post(f"/oversight/alerts/{second}/incident").status_code == 302
    detail = security.get(f"/oversight/alerts/{second}").get_data(as_text=True)
    assert 'id="oversight-alert-incident"' in detail
    with app.app_context():
        from modules.incidents.models import Incident
        incident = db.session.query(Incident).one()
        alert = db.session.get(Alert, second)
        assert alert.incident_number == incident.number and alert.status == "acknowledged"
        assert {e.entry_id for e in incident.evidence} == set(alert.entries)
    again = security.post(f"/oversight/alerts/{second}/incident", follow_redirects=True)
    assert "已从此告警创建过信息安全事件" in again.get_data(as_text=True)


def test_the_menu_badge_counts_open_alerts(app, ov, clock):
    from core import menus
    clock.set(TUESDAY_NIGHT)
    ov.client("head1")
    with app.test_request_context():
        from flask_login import login_user
        login_user(ov.user("security1"))
        item = next(i for i in menus.visible() if i["id"] == "oversight.alerts")
        assert item["badge"] == 1
