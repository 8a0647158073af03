"""Issue 10: disclosure at the edges of the access model. Masked values rebuilt from shown fields
and exact search as a yes/no oracle (point 1), the duplicate check across departments (point 2),
archives of a department that disabled them (point 11), and erasing a field re-keys the
customer (point 11)."""
from __future__ import annotations

from seclib import NAME_CANARY

from core import services as core_services
from core.db import db
from core.models import Department
from modules.archives import services as archives
from modules.archives.models import AccessRequest

# --- point 11: an approved request does not outlive the customer's department's archives ------------

def test_a_grant_does_not_open_an_archive_its_department_disabled(world):
    with world.app.app_context():
        req = db.session.get(AccessRequest, world.ids["request_b"])
        archives.approve_request(world.user("hb"), req, "同意")
        db.session.commit()
    a2 = world.client("a2")
    urls = [f"/archives/{world.ids['cb']}", f"/archives/documents/{world.ids['doc_b']}",
            f"/archives/attachments/{world.ids['att_b']}", f"/archives/{world.ids['cb']}/form.pdf"]
    assert a2.get(urls[0]).status_code == 200  # the grant works while department B keeps archives
    with world.app.app_context():
        core_services.disable_module("test", "archives", db.session.get(Department, world.depts["DB"]))
        db.session.commit()
    try:
        for url in urls:
            response = a2.get(url)
            assert response.status_code == 404, url
            assert NAME_CANARY not in response.get_data(as_text=True)
    finally:
        with world.app.app_context():
            core_services.enable_module("test", "archives", db.session.get(Department, world.depts["DB"]))
            db.session.commit()
