"""Issue 10: disclosure at the edges of the access model. Masked values rebuilt from shown fields
and exact search as a yes/no oracle (point 1), the duplicate check across departments (point 2),
archives of a department that disabled them (point 11), and erasing a field re-keys the
customer (point 11)."""
from __future__ import annotations

import csv
import io
import re

import pytest
from seclib import FORM_CONSENT, ID_CANARY, NAME_CANARY, PHONE_A, PHONE_CANARY
from sqlalchemy import func, select

from core import services as core_services
from core.db import db
from core.models import Department
from modules.archives import services as archives
from modules.archives.models import AccessRequest
from modules.customers import io as customer_io
from modules.customers.models import Customer

ELSEWHERE = "customers.customer.duplicate_elsewhere"


def _customers(world):
    with world.app.app_context():
        return db.session.scalar(select(func.count()).select_from(Customer))


def _post_person(client, **fields):
    return client.post("/customers/new?kind=person", data={"name": "探测", **FORM_CONSENT, **fields})


# --- point 2: the duplicate check says no more outside the remit than "may exist" ---------------------

@pytest.mark.parametrize("probe", [{"id_number": ID_CANARY}, {"phone": PHONE_CANARY},
                                   {"name": NAME_CANARY, "phone": PHONE_CANARY}])
def test_a_duplicate_outside_the_remit_names_no_holder_department_or_field(world, probe):
    before, count = world.audit_max(), _customers(world)
    response = _post_person(world.client("a1"), **probe)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="duplicate-elsewhere"' in html
    for leak in ("b1", "销售乙部", "身份证号相同", "电话相同", "姓名和电话相同", f"/customers/{world.ids['cb']}"):
        assert leak not in html
    assert "部门负责人" in re.search(r'id="duplicate-elsewhere">(.*?)</p>', html, re.S).group(1)
    assert _customers(world) == count
    entries = [e for e in world.audit_since(before) if e.action == ELSEWHERE]
    assert [(e.target_id, e.actor) for e in entries] == [(str(world.ids["cb"]), "a1")]


def test_a_duplicate_inside_the_remit_keeps_its_link(world):
    before = world.audit_max()
    html = _post_person(world.client("a1"), phone=PHONE_A).get_data(as_text=True)
    assert f'href="/customers/{world.ids["ca"]}"' in html and 'id="duplicate-elsewhere"' not in html
    assert not [e for e in world.audit_since(before) if e.action == ELSEWHERE]


def test_repeated_probing_outside_the_remit_is_slowed(world):
    world.app.config["CUSTOMERS_DUPLICATE_PROBE_LIMIT"] = 2
    try:
        client, count = world.client("a2"), _customers(world)
        for _ in range(2):
            assert 'id="duplicate-elsewhere"' in _post_person(client, phone=PHONE_CANARY).get_data(as_text=True)
        # over the limit, a probe and a harmless record get the same answer: nothing to compare
        for fields in ({"phone": PHONE_CANARY}, {"phone": "13600136000"}):
            response = _post_person(client, **fields)
            html = response.get_data(as_text=True)
            assert response.status_code == 429 and 'id="duplicate-limit"' in html
            assert 'id="duplicate-elsewhere"' not in html
        assert _customers(world) == count
    finally:
        world.app.config.pop("CUSTOMERS_DUPLICATE_PROBE_LIMIT")


def test_the_import_reports_a_match_outside_the_remit_without_the_field(world):
    out = io.StringIO()
    csv.writer(out).writerows([["类型", "名称", "手机"], ["个人", "探测", PHONE_CANARY]])
    before = world.audit_max()
    with world.app.app_context():
        result = customer_io.import_customers(world.user("ha"), out.getvalue().encode(), "x.csv", dry_run=True)
        (error,) = result.errors
        assert error.column == "" and "电话" not in error.message and "乙" not in error.message
    entries = [e for e in world.audit_since(before) if e.action == ELSEWHERE]
    assert [e.target_id for e in entries] == [str(world.ids["cb"])]

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
