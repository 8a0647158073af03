"""Issue 10, the customer register's edges: who a handover may touch (point 5), malformed XLSX
imports (point 10), and the smaller findings of point 11 on the customer pages (clearing the
tags, the CSV content type)."""
from __future__ import annotations

import io
import re
import zipfile

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from seclib import PASSWORD
from sqlalchemy import select

from core import services as core_services
from core.db import db
from core.models import Department, User
from modules.customers import io as customer_io
from modules.customers import services as customers
from modules.customers.models import Customer


def _make_user(world, username, role, dept_code):
    with world.app.app_context():
        dept = db.session.get(Department, world.depts[dept_code]) if dept_code else None
        staff = role in ("head", "sales", "service")
        user = core_services.create_user("test", username, PASSWORD, role, dept if staff else None)
        user.department_id = dept.id if dept else None  # an admin or security officer may carry one
        db.session.commit()
        world.users[username] = user.id
        return user.id


# --- point 5: handover only between active sales/service staff of the head's department ------------

@pytest.fixture(scope="module")
def handover_people(world):
    ids = {name: _make_user(world, name, role, "DA") for name, role in (
        ("ho_admin", "admin"), ("ho_sec", "security"), ("ho_head", "head"), ("ho_sales", "sales"))}
    with world.app.app_context():
        customers.create_customer(world.user("ho_sales"), {"kind": "person", "name": "移交客户"})
        db.session.commit()
    return ids


@pytest.mark.parametrize("leaver, taker", [
    ("ho_admin", "a1"),  # an administrator carrying a department is no leaver of the head's
    ("ho_sec", "a1"),  # nor is the security officer
    ("ho_head", "a1"),  # nor another head
    ("ho_sales", "ho_head"),  # customers go to sales or service staff only
    ("ho_sales", "ho_admin"),
])
def test_handover_never_touches_admin_head_or_security_accounts(world, handover_people, leaver, taker):
    client = world.client("ha")
    before = world.audit_max()
    response = client.post("/customers/handover", data={"from_user": world.users[leaver],
                                                         "to_user": world.users[taker]})
    assert response.status_code == 400
    assert 'id="handover-problem"' in response.get_data(as_text=True)
    with world.app.app_context():
        assert db.session.get(User, world.users[leaver]).active is True
        assert {c.owner_id for c in db.session.scalars(select(Customer).where(
            Customer.owner_id == world.users["ho_sales"]))} == {world.users["ho_sales"]}
    assert not [e for e in world.audit_since(before) if e.action in (
        "customers.handover.completed", "core.user.updated")]


def test_the_handover_form_offers_only_sales_and_service_staff(world, handover_people):
    html = world.client("ha").get("/customers/handover").get_data(as_text=True)
    offered = {int(v) for v in re.findall(r'<option value="(\d+)"', html)}
    assert offered == {world.users[n] for n in ("a1", "a2", "sa", "ho_sales")}


# --- point 11: clearing the tags; the CSV content type ----------------------------------------------

def test_clearing_the_tags_on_the_edit_form_saves(world):
    with world.app.app_context():
        customer = customers.create_customer(world.user("a1"), {"kind": "person", "name": "标签客户",
                                                                "tags": "重点,老客户"})
        db.session.commit()
        customer_id, version = customer.id, customer.version
    response = world.client("a1").post(f"/customers/{customer_id}/edit", data={
        "name": "标签客户", "tags": "", "version": str(version), "owner_id": str(world.users["a1"])})
    assert response.status_code == 302
    with world.app.app_context():
        assert db.session.get(Customer, customer_id).tags == ""


def test_the_csv_export_names_its_charset_once(world):
    response = world.client("ha").post("/customers/export", data={"reason": "核对", "fmt": "csv"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


# --- point 10: a malformed XLSX gets a one-line reason, audited, parsed with hardened XML ------------

SHEET_ROWS = ('<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>类型</t></is></c>'
              '<c r="B1" t="inlineStr"><is><t>名称</t></is></c></row><row r="2"><c r="A2" t="inlineStr">'
              '<is><t>个人</t></is></c><c r="B2" t="inlineStr"><is><t>张三</t></is></c></row></sheetData>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
          + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
          '<dimension ref="A1:B2"/>'  # a real workbook names its size first: rows are read lazily, later
          + SHEET_ROWS.replace("张三", "&lol9;") + '</worksheet>')
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
       '<dimension ref="A1:B2"/>' + SHEET_ROWS.replace("张三", "&xxe;") + '</worksheet>')


def _workbook(replace=None):
    """A valid import file (header and one row) with one part replaced: {path: bytes or a
    function of the original bytes}."""
    good = customer_io.write_xlsx(["类型", "名称"], [["个人", f"张三{i}"] for i in range(200)])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item)
            change = (replace or {}).get(item.filename)
            if change is not None:
                data = change(data) if callable(change) else change
            dst.writestr(item, data)
    return out.getvalue()


def _truncated(sheet):
    """The sheet cut off in the middle of its rows, after the size it announces."""
    sheet = sheet.replace(b"<sheetViews>", b'<dimension ref="A1:B201"/><sheetViews>', 1)
    return sheet[:len(sheet) * 3 // 4]


MALFORMED = {  # case: (parts replaced, the reason the audit trail records)
    "truncated_sheet": ({"xl/worksheets/sheet1.xml": _truncated}, "damaged"),
    "billion_laughs": ({"xl/worksheets/sheet1.xml": LAUGHS.encode()}, "xml_entities"),
    "external_entity": ({"xl/worksheets/sheet1.xml": XXE.encode()}, "xml_entities"),
    "entities_in_the_workbook": ({"xl/workbook.xml": lambda data: b'<!DOCTYPE w [<!ENTITY a "b">]>' + data},
                                 "xml_entities"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_workbook_is_refused_with_one_line_on_the_import_page(world, case):
    before = world.audit_max()
    response = world.client("ha").post("/customers/import", data={
        "file": (io.BytesIO(_workbook(MALFORMED[case][0])), "customers.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    problem = re.search(r'<div[^>]*id="import-problem"[^>]*>(.*?)</div>', html, re.S).group(1).strip()
    assert problem and "\n" not in problem and "root:" not in html
    refused = [e for e in world.audit_since(before) if e.action == "customers.import.refused"]
    assert len(refused) == 1 and refused[0].result == "refused"
    assert refused[0].details_dict["reason"] == MALFORMED[case][1]
    with world.app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.company_name.is_(None))
                                 .where(Customer.owner_id == world.users["ha"])) is None


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_workbook_is_refused_with_one_line_in_the_cli(world, tmp_path, case):
    from core.cli import main
    path = tmp_path / "customers.xlsx"
    path.write_bytes(_workbook(MALFORMED[case][0]))
    before = world.audit_max()
    result = CliRunner().invoke(main, ["import", "customers", str(path), "--as", "ha", "-q"],
                                obj=ScriptInfo(create_app=lambda: world.app))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing imported" in lines[0]
    (entry,) = world.audit_since(before)
    assert (entry.action, entry.result, entry.details_dict["reason"]) == (
        "customers.import.refused", "refused", MALFORMED[case][1])


def test_the_workbook_reader_uses_hardened_xml():
    import defusedxml.ElementTree
    import openpyxl
    from openpyxl.xml import functions

    assert openpyxl.DEFUSEDXML is True
    assert functions.iterparse is defusedxml.ElementTree.iterparse
    assert functions.fromstring is defusedxml.ElementTree.fromstring
