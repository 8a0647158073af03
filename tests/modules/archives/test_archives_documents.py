"""Documents of a customer's archive: numbering, metadata, scope through the customer."""
import re

from core.db import db


def test_register_document_through_the_form(arch):
    cid = arch.customer()
    client = arch.client("sales1")
    page = client.get(f"/archives/{cid}/new")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "档案" in html or "Document" in html
    response = client.post(f"/archives/{cid}/new", data={
        "doc_type": "contract", "title": "2026年度销售合同", "doc_date": "2026-03-31", "amount": "12345.60",
        "keeper_id": str(arch.ids["sales1"]), "storage_location": "档案室2号柜B层",
    })
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    from modules.archives.models import Document
    with arch.app.app_context():
        doc = db.session.query(Document).one()
        assert re.fullmatch(r"DA-\d{4}-\d{6}", doc.number)
        assert doc.amount_fen == 1234560 and doc.amount_text == "12,345.60"
        assert doc.customer_id == cid and doc.keeper_id == arch.ids["sales1"]
        doc_id = doc.id
    archive = client.get(f"/archives/{cid}").get_data(as_text=True)
    assert "2026年度销售合同" in archive and "档案室2号柜B层" in archive
    detail = client.get(f"/archives/documents/{doc_id}")
    assert detail.status_code == 200
    assert "archives.document.created" in arch.audit_actions()


def test_amount_only_where_relevant_and_errors_next_to_field(arch):
    cid = arch.customer()
    client = arch.client("sales1")
    response = client.post(f"/archives/{cid}/new", data={
        "doc_type": "complaint", "title": "投诉记录", "doc_date": "2026-03-31", "amount": "10",
        "keeper_id": str(arch.ids["sales1"]),
    })
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="amount-error"' in html
    from modules.archives.models import Document
    with arch.app.app_context():
        assert db.session.query(Document).count() == 0


def test_keeper_must_be_a_colleague_of_the_customers_department(arch):
    cid = arch.customer()
    client = arch.client("sales1")
    response = client.post(f"/archives/{cid}/new", data={
        "doc_type": "order", "title": "订单", "doc_date": "2026-03-31",
        "keeper_id": str(arch.ids["sales2"]),  # another department
    })
    assert response.status_code == 200
    assert 'id="keeper_id-error"' in response.get_data(as_text=True)


def test_edit_is_optimistically_locked_and_audited(arch):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    form = {"doc_type": "contract", "title": "修改后的合同", "doc_date": "2026-04-01", "amount": "",
            "keeper_id": str(arch.ids["sales1b"]), "storage_location": "B柜", "version": "1"}
    assert client.post(f"/archives/documents/{doc_id}/edit", data=form).status_code == 302
    stale = client.post(f"/archives/documents/{doc_id}/edit", data={**form, "title": "旧表单"})
    assert stale.status_code == 200
    assert "旧表单" not in client.get(f"/archives/documents/{doc_id}").get_data(as_text=True)
    assert "archives.document.updated" in arch.audit_actions()


def test_documents_visible_through_the_customers_scope(arch):
    cid = arch.customer(owner="sales1")
    doc_id, number = arch.document(cid)
    head = arch.client("head1")  # the department head sees the department's customers
    assert head.get(f"/archives/{cid}").status_code == 200
    assert head.get(f"/archives/documents/{doc_id}").status_code == 200
    assert f">{number}<" in head.get("/archives/").get_data(as_text=True)
    for name in ("sales1b", "head2", "sales2"):  # a colleague's customer, another department
        other = arch.client(name)
        assert other.get(f"/archives/{cid}").status_code == 404
        assert other.get(f"/archives/documents/{doc_id}").status_code == 404
        assert other.get(f"/archives/{cid}/new").status_code == 404
        assert other.post(f"/archives/documents/{doc_id}/delete").status_code == 404
        assert f">{number}<" not in other.get("/archives/").get_data(as_text=True)
        assert f">{number}<" not in other.get(f"/archives/?q={number}").get_data(as_text=True)


def test_editing_needs_archives_manage(arch, app):
    from core import services as core_services
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    with app.app_context():
        grants = [p for p in core_services.access.declared() if p.startswith("archives.") and p != "archives.manage"]
        core_services.set_grants("test", "sales", ["customers.view", *grants])
        db.session.commit()
    client = arch.client("sales1")
    assert client.get(f"/archives/{cid}").status_code == 200
    assert client.get(f"/archives/{cid}/new").status_code == 403
    assert client.post(f"/archives/documents/{doc_id}/delete").status_code == 403
    assert 'id="archives-new"' not in client.get(f"/archives/{cid}").get_data(as_text=True)


def test_delete_document_keeps_its_number_retired(arch):
    cid = arch.customer()
    doc_id, number = arch.document(cid)
    client = arch.client("sales1")
    assert client.post(f"/archives/documents/{doc_id}/delete").status_code == 302
    assert client.get(f"/archives/documents/{doc_id}").status_code == 404
    _, again = arch.document(cid)
    assert again != number and again > number
    assert "archives.document.deleted" in arch.audit_actions()


def test_user_text_is_escaped_on_pages(arch):
    cid = arch.customer()
    doc_id, _ = arch.document(cid, title='<script>alert(1)</script>', storage_location='<img src=x onerror=1>')
    html = arch.client("sales1").get(f"/archives/{cid}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_pages_are_chinese_by_default(arch):
    cid = arch.customer()
    html = arch.client("sales1").get(f"/archives/{cid}").get_data(as_text=True)
    assert "客户档案" in html and "档案文件登记" in html


def test_pages_switch_to_english(arch):
    cid = arch.customer()
    client = arch.client("sales1")
    client.post("/language", data={"locale": "en", "next": f"/archives/{cid}"})
    html = client.get(f"/archives/{cid}").get_data(as_text=True)
    assert "Document register" in html and "档案文件登记" not in html
