"""Issue 16: a head exports the list's current filter as CSV (masked), edits one cell of the file,
and imports it again: only the edited customer is updated, the masked cells left as exported
change nothing, and the update is on the audit trail."""
import csv
import io
import re

import pytest
from playwright.sync_api import expect

from modules.customers.io import COLUMN_BY_KEY

pytestmark = pytest.mark.browser

NUMBER, ID_NUMBER, NOTES = (COLUMN_BY_KEY[k].header for k in ("number", "id_number", "notes"))


def _masked(full):
    return full[:6] + "*" * 8 + full[-4:]


def test_head_exports_a_filter_and_reimports_it_with_one_edit(browse, data, live_server, tmp_path):
    ids = [data.id_number(birth="19800101") for _ in range(3)]
    matching = {data.customer("sales_d1", name=name, phone=data.mobile(), id_number=id_number,
                              notes="初始备注")[1]: id_number
                for name, id_number in zip(("郏导一", "郏导二", "郏导三"), ids, strict=True)}
    _other, other_number = data.customer("sales_d1", name="不在筛选内", phone=data.mobile(), notes="初始备注")
    edited_number = sorted(matching)[1]

    head = browse.sign_in("head_d1")
    browse.open_menu(head, "customers-list")
    head.fill("#search-q", "郏导")
    browse.submit(head, "#search-submit")
    expect(head.locator("#customer-list tbody tr[id^=customer-]")).to_have_count(3)
    expect(head.locator("#export-filter")).to_have_text("导出当前筛选结果")
    browse.submit(head, "#export-filter")
    expect(head.locator("#export-selection")).to_be_visible()
    head.fill("#reason", "核对备注后重新导入")
    head.check("input[name=fmt][value=csv]")
    with head.expect_download() as info:
        head.click("#export-submit")
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    exported = tmp_path / "export.csv"
    download.save_as(exported)

    raw = exported.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert sorted(r[NUMBER] for r in rows) == sorted(matching)  # exactly the filter, not other_number
    for row in rows:
        full = matching[row[NUMBER]]
        assert row[ID_NUMBER] == _masked(full)
        assert full.encode() not in raw
        assert row[NOTES] == "初始备注"

    # one cell edited; every other cell (the masked ID numbers included) as exported
    for row in rows:
        if row[NUMBER] == edited_number:
            row[NOTES] = "已回访，续约意向强"
    edited = tmp_path / "edited.csv"
    with edited.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)

    head.goto("/customers/")
    browse.submit(head, "a[href$='/customers/import']")
    # a check first: three rows match existing customers, none is new, nothing is stored
    head.set_input_files("#file", str(edited))
    head.check("#dry_run")
    browse.submit(head, "#import-submit")
    expect(head.locator("#import-checked")).to_contain_text("已检查 3 行，没有错误")
    expect(head.locator("#import-checked")).to_contain_text("将新增 0 个客户，更新 3 个已有客户")

    head.set_input_files("#file", str(edited))
    head.uncheck("#dry_run")
    browse.submit(head, "#import-submit")
    summary = head.locator("#import-summary")
    expect(summary).to_contain_text("已导入 0 个客户。")
    expect(summary).to_contain_text("已更新 1 个已有客户。")

    browse.open_menu(head, "customers-list")
    head.fill("#search-q", edited_number)
    browse.submit(head, "#search-submit")
    browse.submit(head, "#customer-list tbody tr[id^=customer-] a")
    expect(head.locator("#value-notes")).to_have_text("已回访，续约意向强")
    expect(head.locator("#value-id_number")).to_have_text(_masked(matching[edited_number]))

    # the others are as they were (the masked cells changed nothing), in the register too
    def stored():
        from sqlalchemy import select

        from core.db import db
        from modules.customers.models import Customer
        found = db.session.execute(select(Customer).where(Customer.number.in_([*matching, other_number])))
        return {c.number: (c.version, c.notes, c.id_number) for c in found.scalars()}
    versions = live_server.run(stored)
    for number, full in matching.items():
        version, notes, id_number = versions[number]
        assert id_number == full
        if number == edited_number:
            assert (version, notes) == (2, "已回访，续约意向强")
        else:
            assert (version, notes) == (1, "初始备注")
    assert versions[other_number][:2] == (1, "初始备注")

    # the security officer finds the import and the one update it made on the audit trail
    security = browse.sign_in("security")
    updates = browse.audit_rows(security, "修改客户", edited_number, "head_d1")
    expect(updates).to_have_count(1)
    expect(updates.locator("code")).to_have_text("customers.customer.updated")
    expect(updates.locator(".audit-details")).to_contain_text("notes")
    for number in matching:
        if number != edited_number:
            security.fill("input[name=customer]", number)
            browse.submit(security, "#audit-filter")
            expect(security.locator("#audit tbody tr").filter(has_text="head_d1")).to_have_count(0)

    security.select_option("select[name=action]", label="导入客户")
    security.fill("input[name=customer]", "")
    browse.submit(security, "#audit-filter")
    imports = security.locator("#audit tbody tr").filter(has_text="head_d1")
    expect(imports).to_have_count(1)
    expect(imports.locator(".audit-details")).to_contain_text(re.compile(r"created=0\b"))
    expect(imports.locator(".audit-details")).to_contain_text(re.compile(r"updated=1\b"))
    expect(imports.locator(".audit-details")).to_contain_text(re.compile(r"rows=3\b"))
