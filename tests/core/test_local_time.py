"""One time zone on screen: stored times are UTC, every page shows the company's time
(KEHU_TIMEZONE, default Asia/Shanghai) and never says UTC."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.db import db
from core.i18n import local_date, local_datetime


def test_the_filters_convert_stored_utc_to_the_company_zone(app):
    with app.app_context():
        assert local_datetime(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == "2027-01-01 00:30"
        assert local_datetime(datetime(2026, 12, 31, 16, 30)) == "2027-01-01 00:30"  # naive means UTC
        assert local_date(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == "2027-01-01"
        # the default format, over the years and the change of day in the company's zone
        from core.i18n import to_local
        moment = datetime(1999, 12, 31, 15, 59, tzinfo=UTC)
        for _ in range(400):
            assert local_datetime(moment) == to_local(moment).strftime("%Y-%m-%d %H:%M")
            moment += timedelta(days=97, hours=5, minutes=7)


def test_customer_and_grading_pages_show_beijing_time_not_utc(app, client, login_as, make_customer, enable_module):
    from modules.customers.models import Consent
    customer_id = make_customer("sales1", name="张三")
    enable_module("D1", "grading")
    login_as(client, "head1", role="head", dept="D1")
    with app.app_context():
        consent = db.session.execute(select(Consent).where(Consent.customer_id == customer_id)).scalar_one()
        recorded = consent.recorded_at
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    expected = (recorded.astimezone(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")
    assert expected in page and "UTC" not in page
    client.post("/grading/recompute")
    for url in (f"/customers/{customer_id}", "/grading/", "/grading/rules"):
        assert "UTC" not in client.get(url).get_data(as_text=True), url
