"""Moving an instance from the default suite (AES-256-GCM, HMAC-SHA256) to the national one
(SM4-GCM, HMAC-SM3) with `kehu keys rotate --crypto sm`: every encrypted field and file is
re-encrypted, blind indexes are rebuilt, and search, reveal, downloads and the audit chain work
as before."""
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from core import crypto
from core.db import db

ID_1 = "11010519491231002X"


@pytest.fixture
def crypto_suite():
    """The instance starts under the default suite, whatever KEHU_TEST_CRYPTO says."""
    return "aes"


def stored_prefixes(app):
    """The cipher prefixes ("v1:", "sm1:") of every encrypted value in every table."""
    found = set()
    with app.app_context():
        for model, fields in crypto.encrypted_fields():
            columns = [getattr(model, field.ct) for field in fields]
            for row in db.session.execute(db.select(*columns)):
                found |= {value[:value.index(":") + 1] for value in row if value}
    return found


def found(client, q):
    html = client.get("/customers/", query_string={"q": q}).get_data(as_text=True)
    return {int(i) for i in re.findall(r'<tr id="customer-(\d+)"', html)}


def test_moving_to_the_national_suite_keeps_search_reveal_files_and_the_audit_chain(
        arch, app, runner, make_customer):
    from modules.archives.models import Attachment
    from modules.customers import services as customer_services
    from modules.customers.models import Customer
    person = make_customer("sales1", name="测试甲𠮷", phone="13800138000", id_number=ID_1)
    org = make_customer("sales1", kind="org", company_name="示例科技有限公司")
    with app.test_request_context():
        customer_services.add_contact(arch.user("sales1"), db.session.get(Customer, org),
                                      {"name": "钱七", "phone": "13700137000"})
        db.session.commit()
    doc_id, _ = arch.document(person)
    sales = arch.client("sales1")
    content = arch.pdf_bytes(b"contract scan " * 100)
    assert arch.post_file(sales, doc_id, content, "合同扫描件.pdf").status_code == 200
    uploads = Path(app.config["UPLOAD_FOLDER"]) / "archives"
    [old_file] = arch.stored_files()
    assert (uploads / old_file).read_bytes().startswith(b"kehu1")
    assert stored_prefixes(app) == {"v1:"}
    with app.app_context():
        version = db.session.get(Customer, person).version

    result = runner("keys", "rotate", "--crypto", "sm")

    assert result.exit_code == 0, result.output
    assert "suite=sm" in result.output
    counts = dict(re.findall(r"(\w+)=(\w+)", result.output))
    # values: the person's name, phone, ID number and the gender and birth date read from it; the
    # contact's name and phone
    assert counts["customers_customer_reencrypted"] == "5" and counts["customers_contact_reencrypted"] == "2"
    assert counts["archives_reencrypted"] == "1"  # the file, through the customers.rekey hook
    # at rest: every value and the file under SM4-GCM, the old file gone
    assert stored_prefixes(app) == {"sm1:"}
    [new_file] = arch.stored_files()
    assert new_file != old_file and (uploads / new_file).read_bytes().startswith(b"kesm1")
    doc = json.loads(Path(app.config["MASTER_KEY_FILE"]).read_text())
    assert doc["suite"] == "sm" and doc["kek"]["suites"] == {"2": "sm"} and doc["index"]["suites"] == {"2": "sm"}
    with app.app_context():
        assert crypto.suite().name == "sm"
        digests = db.session.execute(text("SELECT phone_bidx, id_number_bidx FROM customers_customer "
                                          "WHERE id = :i"), {"i": person}).one()
        assert all(d.startswith("2:") for d in digests)  # rebuilt with HMAC-SM3 under the new key
        assert db.session.get(Customer, person).version == version  # open edit forms stay valid

    # search through the blind indexes, reveal, the customer page, the file
    for q, expected in (("13800138000", {person}), (ID_1, {person}), ("测试甲𠮷", {person}),
                        ("13700137000", {org}), ("钱七", {org})):
        assert found(sales, q) == expected, q
    assert "测试甲𠮷" in sales.get(f"/customers/{person}").get_data(as_text=True)
    revealed = arch.client("head1").post(f"/customers/{person}/reveal/id_number")
    assert ID_1 in revealed.get_data(as_text=True)
    with app.app_context():
        [att_id] = db.session.scalars(db.select(Attachment.id)).all()
    download = sales.get(f"/archives/attachments/{att_id}")
    assert download.status_code == 200 and download.data == content

    # what is written now is under the national suite too, and the audit chain is intact
    newcomer = make_customer("sales1", name="王五", phone="13900139000")
    assert stored_prefixes(app) == {"sm1:"} and found(sales, "13900139000") == {newcomer}
    verified = runner("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert "audit chain intact" in verified.output
