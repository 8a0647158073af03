"""Fixtures of the incident module's tests: the module enabled in D1 and D2, a reporter, and
helpers to report and move a ticket along."""
import re

import pytest

from core.db import db


@pytest.fixture
def inc(app, enable_module, make_user, client, login_as):
    enable_module("D1", "incidents")
    enable_module("D2", "incidents")
    return Helper(app, client, login_as)


class Helper:
    def __init__(self, app, client, login_as):
        self.app, self.client, self.login_as = app, client, login_as

    def as_(self, username, role="sales", dept="D1"):
        self.client.post("/logout")
        return self.login_as(self.client, username, role, dept)

    def report(self, username="reporter", role="sales", dept="D1", title="邮件误发客户清单", **extra):
        client = self.as_(username, role, dept)
        data = {"title": title, "noticed_at": "2026-01-05T09:30", "how_found": "同事提醒",
                "description": "把含客户手机号的表格发给了外部邮箱", "systems": "邮件系统",
                "data_concerned": "姓名、手机号", **extra}
        response = client.post("/incidents/new", data=data)
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        return int(re.search(r"/incidents/(\d+)", response.headers["Location"]).group(1))

    def incident(self, incident_id):
        from modules.incidents.models import Incident
        with self.app.app_context():
            row = db.session.get(Incident, incident_id)
            db.session.expunge(row)
            return row

    def security(self):
        return self.as_("sec", "security", None)
