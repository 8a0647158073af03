"""Issue 10: disclosure at the edges of the access model. Masked values rebuilt from shown fields
and exact search as a yes/no oracle (point 1), the duplicate check across departments (point 2),
archives of a department that disabled them (point 11), and erasing a field re-keys the
customer (point 11)."""
from __future__ import annotations

import csv
import datetime
import io
import re

import pytest
from seclib import FORM_CONSENT, ID_A, ID_CANARY, NAME_CANARY, PHONE_A, PHONE_CANARY
from sqlalchemy import func, select

from core import services as core_services
from core.db import db
from core.models import Department
from modules.archives import services as archives
from modules.archives.models import AccessRequest
from modules.customers import io as customer_io
from modules.customers.api import masked_fields
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


# --- point 1: a value derived from an L2 field is masked like it; exact L2 search is an oracle -------

BORN_A = "1990-03-07"  # inside ID_A


def _value_cell(html, name):
    return re.search(rf'<td id="field-{name}">(.*?)</td>', html, re.S).group(1)


def test_the_birth_date_from_the_id_number_shows_only_the_year_on_the_page(world):
    html = world.client("a1").get(f"/customers/{world.ids['ca']}").get_data(as_text=True)
    assert BORN_A not in html and "19900307" not in html and "03-07" not in html
    assert "1990" in _value_cell(html, "birth_date")
    assert "110101" in _value_cell(html, "id_number")  # the masked ID number, as before


def test_the_birth_date_is_revealed_like_the_id_number(world):
    before = world.audit_max()
    sales = world.client("a1").post(f"/customers/{world.ids['ca']}/reveal/birth_date")
    assert sales.status_code == 403
    head = world.client("ha").post(f"/customers/{world.ids['ca']}/reveal/birth_date")
    assert head.status_code == 200 and BORN_A in _value_cell(head.get_data(as_text=True), "birth_date")
    revealed = [e for e in world.audit_since(before) if e.action == "customers.field.revealed"]
    assert [(e.actor, e.details_dict["field"], e.details_dict["level"]) for e in revealed] == [
        ("ha", "birth_date", "L2")]


def test_the_edit_form_does_not_carry_the_birth_date_either(world):
    html = world.client("a1").get(f"/customers/{world.ids['ca']}/edit").get_data(as_text=True)
    assert BORN_A not in html and "03-07" not in html


def test_the_archive_form_and_other_modules_get_the_year_only(world):
    with world.app.app_context():
        customer = db.session.get(Customer, world.ids["ca"])
        shown = dict((name, value) for name, _label, value in masked_fields(customer, world.user("a1")))
        assert shown["birth_date"].startswith("1990") and BORN_A not in shown["birth_date"]
        basic = archives.form_context(customer, world.user("a1"))["basic"]
        assert not [value for _label, value in basic if BORN_A in value or "03-07" in value]


def test_the_export_masks_the_birth_date_with_the_id_number(world):
    """Sales export their own customers (a default grant), masked: the birth date too."""
    before = world.audit_max()
    response = world.client("a1").post("/customers/export", data={"reason": "核对", "fmt": "csv"})
    assert response.status_code == 200
    text = response.get_data().decode("utf-8-sig")
    assert "110101********4477" in text and BORN_A not in text and "1990" in text
    (entry,) = [e for e in world.audit_since(before) if e.action == "customers.export.completed"]
    assert "birth_date" in entry.details_dict["masked"]


def test_exact_search_by_id_number_is_counted_and_slowed(world):
    world.app.config["CUSTOMERS_SENSITIVE_SEARCH_LIMIT"] = 3
    try:
        client, before = world.client("sa"), world.audit_max()
        for _ in range(3):
            response = client.get("/customers/", query_string={"q": ID_A})
            assert response.status_code == 200
        counted = [e for e in world.audit_since(before) if e.action == "customers.customer.searched_sensitive"]
        assert [e.details_dict["count"] for e in counted] == [1, 2, 3]
        # the fourth exact L2 search is refused, whatever its value: no answer to compare
        for q in (ID_A, ID_CANARY):
            response = client.get("/customers/", query_string={"q": q})
            assert response.status_code == 429
            assert 'id="search-limit"' in response.get_data(as_text=True)
        refused = [e for e in world.audit_since(before) if e.action == "customers.customer.searched"
                   and e.result == "refused"]
        assert len(refused) == 2
        # other searches still work
        assert client.get("/customers/", query_string={"q": "甲部客户"}).status_code == 200
    finally:
        world.app.config.pop("CUSTOMERS_SENSITIVE_SEARCH_LIMIT")


# --- point 11: erasing a field re-keys the customer ----------------------------------------------------

def test_withdrawing_consent_rekeys_the_customer_and_destroys_the_old_key(world):
    from seclib import SEPARATE_CONSENT, pdf_bytes

    from core import crypto
    from modules.customers import services as customers
    from modules.customers.models import Consent

    with world.app.app_context():
        owner = world.user("a1")
        customer = customers.create_customer(owner, {"kind": "person", "name": "撤回者", "phone": "13500135000",
                                                     "id_number": "110101198001010010", "notes": "备注甲"},
                                             consent=SEPARATE_CONSENT)
        customers.add_transaction(owner, customer, {"kind": "service", "occurred_on": "2024-05-01",
                                                    "product": "维修", "notes": "服务备注"})
        doc = archives.create_document(owner, customer, {
            "doc_type": "contract", "title": "合同", "doc_date": datetime.date(2024, 5, 1), "amount": None,
            "keeper_id": owner.id, "storage_location": "甲部档案室"})
        att, _path = archives.add_attachment(owner, doc, "撤回者合同.pdf", pdf_bytes(b"contract body"))
        db.session.commit()
        customer_id, att_id = customer.id, att.id
        old_key_id = customer.subject_key_id
        old_ct = {"name": customer.name_ct, "phone": customer.phone_ct, "notes": customer.notes_ct,
                  "file": archives.attachment_path(att).read_bytes()}
        consent = db.session.scalar(select(Consent).where(Consent.customer_id == customer_id))
        customers.withdraw_consent(owner, consent, "客户要求删除敏感信息")
        db.session.commit()

    with world.app.app_context():
        customer = db.session.get(Customer, customer_id)
        assert customer.id_number is None and customer.subject_key_id != old_key_id
        assert db.session.get(crypto.SubjectKey, old_key_id) is None  # destroyed: older copies are dead
        assert (customer.name, customer.phone, customer.notes) == ("撤回者", "+8613500135000", "备注甲")
        assert customer.name_ct != old_ct["name"] and customer.phone_ct != old_ct["phone"]
        assert [t.notes for t in customer.transactions] == ["服务备注"]
        att = db.session.get(archives.Attachment, att_id)
        assert archives.attachment_filename(att) == "撤回者合同.pdf"
        assert archives.read_attachment(att) == pdf_bytes(b"contract body")
        assert archives.attachment_path(att).read_bytes() != old_ct["file"]
        assert customer.phone_bidx is not None  # still found by its phone
    actions = [e.action for e in world.audit_since(0) if e.target_id == str(customer_id)]
    assert "customers.customer.rekeyed" in actions


def test_a_rekey_rolled_back_keeps_the_old_key_and_file(world):
    from seclib import SEPARATE_CONSENT, pdf_bytes

    from modules.customers import services as customers

    with world.app.app_context():
        owner = world.user("a1")
        customer = customers.create_customer(owner, {"kind": "person", "name": "回滚者"}, consent=SEPARATE_CONSENT)
        doc = archives.create_document(owner, customer, {
            "doc_type": "contract", "title": "合同", "doc_date": datetime.date(2024, 5, 1), "amount": None,
            "keeper_id": owner.id, "storage_location": "甲部档案室"})
        att, path = archives.add_attachment(owner, doc, "回滚.pdf", pdf_bytes(b"kept"))
        db.session.commit()
        customer_id, att_id = customer.id, att.id
        files_before = set(path.parent.iterdir())
        customers.rekey_customer(owner, db.session.get(Customer, customer_id), reason="test")
        db.session.rollback()
        assert set(path.parent.iterdir()) == files_before
    with world.app.app_context():
        att = db.session.get(archives.Attachment, att_id)
        assert archives.read_attachment(att) == pdf_bytes(b"kept")
        assert db.session.get(Customer, customer_id).name == "回滚者"
