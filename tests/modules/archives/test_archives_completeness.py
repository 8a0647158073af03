"""Completeness: required document types per customer kind, the missing list, and the list of
incomplete archives per keeper (scoped)."""
import re

from core.db import db


def customer_rows(html):
    return set(re.findall(r"(KH-\d{4}-\d{6})", html))


def test_archive_page_shows_what_is_missing(arch):
    cid = arch.customer(kind="org", company="远大贸易有限公司")
    arch.document(cid, doc_type="contract")
    html = arch.client("sales1").get(f"/archives/{cid}").get_data(as_text=True)
    missing = re.search(r'id="archives-missing">(.*?)</p>', html, re.S).group(1)
    assert "基本信息表" in missing and "发票" in missing and "合同" not in missing
    arch.document(cid, doc_type="basic_info", title="基本信息表")
    arch.document(cid, doc_type="invoice", title="增值税发票", amount="100")
    html = arch.client("sales1").get(f"/archives/{cid}").get_data(as_text=True)
    assert 'id="archives-complete"' in html and 'id="archives-missing"' not in html


def test_incomplete_list_per_keeper_is_scoped(arch, app):
    complete = arch.customer(owner="sales1", name="完整客户")
    arch.document(complete, doc_type="basic_info")
    arch.document(complete, doc_type="contract")
    partial = arch.customer(owner="sales1", name="缺件客户")
    arch.document(partial, doc_type="contract", keeper_id=arch.ids["sales1b"])  # kept by a colleague
    empty_org = arch.customer(owner="sales1b", kind="org", company="空档案公司")
    foreign = arch.customer(owner="sales2", name="外部门客户")
    numbers = {cid: arch.customer_number(cid) for cid in (complete, partial, empty_org, foreign)}

    head = arch.client("head1").get("/archives/incomplete").get_data(as_text=True)
    assert customer_rows(head) == {numbers[partial], numbers[empty_org]}
    # grouped by keeper: the colleague keeps the partial archive; the empty one falls to its owner
    sections = re.split(r'<h2 class="h5 mt-4" id="keeper-', head)[1:]
    by_keeper = {int(s.split('"', 1)[0]): customer_rows(s) for s in sections}
    assert by_keeper == {arch.ids["sales1b"]: {numbers[partial], numbers[empty_org]}}

    sales1 = arch.client("sales1").get("/archives/incomplete").get_data(as_text=True)
    assert customer_rows(sales1) == {numbers[partial]}  # own customers only
    sales2 = arch.client("sales2").get("/archives/incomplete").get_data(as_text=True)
    assert customer_rows(sales2) == {numbers[foreign]}

    only = arch.client("head1").get(f"/archives/incomplete?keeper={arch.ids['sales1']}").get_data(as_text=True)
    assert customer_rows(only) == set()
    only = arch.client("head1").get(f"/archives/incomplete?keeper={arch.ids['sales1b']}").get_data(as_text=True)
    assert customer_rows(only) == {numbers[partial], numbers[empty_org]}


def test_required_types_are_configurable(arch, app):
    cid = arch.customer(owner="sales1")
    arch.document(cid, doc_type="contract")
    client = arch.client("sales1")
    assert arch.customer_number(cid) in client.get("/archives/incomplete").get_data(as_text=True)
    app.config["ARCHIVES_REQUIRED_TYPES"] = {"person": ["contract"]}
    html = client.get("/archives/incomplete").get_data(as_text=True)
    assert arch.customer_number(cid) not in html and 'id="archives-all-complete"' in html


def test_missing_types_service(arch, app):
    from modules.archives import services
    from modules.customers import Customer
    cid = arch.customer(owner="sales1")
    with app.app_context():
        assert services.missing_types(db.session.get(Customer, cid)) == ["basic_info", "contract"]
