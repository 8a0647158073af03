"""The weekly review (客户信息梳理): its figures match known data, per department, on the page, in
the PDF and from `kehu review report --week`."""
from __future__ import annotations

import subprocess
from datetime import timedelta

from sqlalchemy import update

from core.api import local_today
from core.db import db
from core.models import utcnow
from tests.core.test_backup import invoke


def week_of(day):
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def test_review_figures_match_known_data(app, client, login_as, make_customer, make_user, enable_module, tmp_path):
    from modules.customers import Customer
    from modules.lifecycle import requests, services
    make_user("sales2", "sales", "D2")
    new1 = make_customer(name="甲")
    make_customer(name="乙")
    make_customer("sales2", dept="D2", name="丙")
    old = make_customer(name="丁")
    held = make_customer(name="戊")
    long_ago = utcnow() - timedelta(days=5 * 366)
    with app.test_request_context():
        for cid in (old, held):
            db.session.execute(update(Customer).where(Customer.id == cid).values(
                status="lost", status_changed_at=long_ago, updated_at=long_ago, created_at=long_ago))
        db.session.commit()
        services.set_hold("test", db.session.get(Customer, held), "诉讼")
        requests.create("test", db.session.get(Customer, new1), "copy")
        db.session.commit()
        week = week_of(local_today())

    result = invoke(app, "review", "report", "--week", week, "--pdf", str(tmp_path / "r.pdf"))
    assert result.exit_code == 0, result.output
    lines = {line.split("\t")[0]: dict(kv.split("=") for kv in line.split("\t")[1:])
             for line in result.output.splitlines()[1:] if "\t" in line}
    assert lines["D1"]["customers"] == "4" and lines["D1"]["new"] == "2"
    assert lines["D1"]["due"] == "1" and lines["D1"]["held"] == "1"
    assert lines["D1"]["requests_open"] == "1" and lines["D1"]["requests_overdue"] == "0"
    assert lines["D2"]["customers"] == "1" and lines["D2"]["new"] == "1" and lines["D2"]["due"] == "0"
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    assert "客户信息梳理报告" in text and week in text

    bad = invoke(app, "review", "report", "--week", "2026-49")
    assert bad.exit_code != 0 and "YYYY-Www" in bad.output

    enable_module("D1", "lifecycle")
    login_as(client, "sec9", role="security")
    page = client.get(f"/lifecycle/review?week={week}").get_data(as_text=True)
    assert "新增客户" in page and 'data-department="D1"' in page and 'data-department="D2"' in page
    response = client.get(f"/lifecycle/review.pdf?week={week}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert client.get("/lifecycle/review?week=nonsense").status_code == 400
