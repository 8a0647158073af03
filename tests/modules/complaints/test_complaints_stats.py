"""Statistics on known data: counts per month, category, channel, severity and handler, medians,
share overdue, satisfaction; the SVG charts; the formula-safe CSV; heads only."""
import csv
import io
from datetime import UTC, datetime, timedelta

from core.db import db
from core.models import User


def _make(app, cdept, customer, created, category, channel, severity, respond_h=None, resolve_h=None,
          satisfaction=None):
    from modules.complaints import services
    from modules.customers import Customer
    actor = db.session.get(User, cdept.service)
    c = services.create_complaint(actor, db.session.get(Customer, customer),
                                  {"channel": channel, "category": category, "severity": severity,
                                   "description": "d"}, now=created)
    if respond_h is not None:
        c.responded_at, c.status = created + timedelta(hours=respond_h), "accepted"
    if resolve_h is not None:
        c.resolved_at, c.status = created + timedelta(hours=resolve_h), "follow_up"
    if satisfaction is not None:
        c.satisfaction, c.status, c.closed_at = satisfaction, "closed", c.resolved_at
    return c


def test_statistics_figures_on_known_data(app, cdept, customer):
    from modules.complaints import services
    jan = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
    feb = datetime(2026, 2, 10, 2, 0, tzinfo=UTC)
    with app.test_request_context():
        _make(app, cdept, customer, jan, "产品质量", "phone", "normal", 2, 48, 5)
        _make(app, cdept, customer, jan, "服务态度", "wechat", "serious", 10, 100, 3)  # both late
        _make(app, cdept, customer, feb, "产品质量", "phone", "urgent", 1, 20, 4)
        _make(app, cdept, customer, feb, "产品质量", "email", "normal", 4)
        _make(app, cdept, customer, datetime(2025, 12, 31, 15, 30, tzinfo=UTC), "其他", "web", "normal")  # Jan 1 Beijing
        db.session.commit()
        figures = services.stats(cdept.id, datetime(2025, 12, 31, 16, 0, tzinfo=UTC),
                                 datetime(2026, 2, 28, 16, 0, tzinfo=UTC), now=datetime(2026, 3, 1, tzinfo=UTC))
    assert figures["total"] == 4
    assert figures["by"]["month"] == {"2026-01": 2, "2026-02": 2}
    assert figures["by"]["category"] == {"产品质量": 3, "服务态度": 1}
    assert figures["by"]["channel"] == {"电话": 2, "微信": 1, "邮件": 1}
    assert figures["by"]["severity"] == {"一般": 2, "严重": 1, "紧急": 1}
    assert figures["by"]["handler"] == {"c_service": 4}
    assert figures["median_response_hours"] == 3.0  # 1, 2, 4, 10
    assert figures["median_resolution_hours"] == 48.0  # 20, 48, 100
    # late: the serious one (10 h > 8 h, 100 h > 72 h) and the open one past its 168 h resolution
    assert figures["overdue"] == 2 and figures["overdue_share"] == 50.0
    assert figures["satisfaction"] == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1} and figures["satisfaction_mean"] == 4.0


def test_statistics_page_draws_svg_charts_and_csv_is_formula_safe(app, client, login_as, cdept, customer):
    now = datetime.now(UTC)
    with app.test_request_context():
        from modules.complaints.models import Policy
        db.session.add(Policy(department_id=cdept.id, categories="=HYPERLINK(\"http://x\")\n产品质量",
                              normal_response=24, normal_resolution=168, serious_response=8, serious_resolution=72,
                              urgent_response=2, urgent_resolution=24, important_percent=50, working_days=False))
        db.session.flush()
        _make(app, cdept, customer, now - timedelta(hours=1), '=HYPERLINK("http://x")', "phone", "normal")
        _make(app, cdept, customer, now - timedelta(hours=1), "产品质量", "phone", "normal")
        db.session.commit()
    login_as(client, "c_head", role="head")
    html = client.get("/complaints/stats").get_data(as_text=True)
    assert "<svg" in html and "complaints-chart-category" in html and "cdn" not in html.lower()
    assert 'id="stat-total">2<' in html
    r = client.get("/complaints/stats.csv")
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    cells = [cell for row in rows for cell in row]
    assert "'=HYPERLINK(\"http://x\")" in cells and '=HYPERLINK("http://x")' not in cells
    assert ["投诉总数", "", "2"] in rows
    from .conftest import audit_actions
    assert audit_actions(app, "complaints.stats.exported")
    client.post("/logout")
    login_as(client, "c_sales", role="sales")
    assert client.get("/complaints/stats.csv").status_code == 403


def test_a_chosen_period_limits_the_figures(app, client, login_as, cdept, customer):
    with app.test_request_context():
        _make(app, cdept, customer, datetime(2026, 1, 10, tzinfo=UTC), "产品质量", "phone", "normal")
        db.session.commit()
    login_as(client, "c_head", role="head")
    assert 'id="stat-total">1<' in client.get("/complaints/stats?start=2026-01&end=2026-01").get_data(as_text=True)
    assert 'id="stat-total">0<' in client.get("/complaints/stats?start=2026-02&end=2026-03").get_data(as_text=True)
