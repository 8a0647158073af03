"""Partial search through truncated blind indexes, and the customer list: capped count, sorting,
page size, own/shared branches, bulk reassign and share, export of a selection or a filter."""
from __future__ import annotations

import datetime
import random
import re
import uuid
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from core.db import db
from core.models import User
from modules.customers import search, services
from modules.customers.models import Customer, Share
from tests.conftest import captured_statements, sqlite_plan
from tests.conftest import csrf_token as csrf
from tests.modules.customers import test_customers_pages as pages

# the register's page fixtures and helpers
compiled_catalogue, people, signed_in = pages.compiled_catalogue, pages.people, pages.signed_in
make_customer, entries, found, user = pages.make_customer, pages.entries, pages.found, pages.user

ID_1 = "11010519491231002X"
ID_2 = "110101199003074477"
PARTIAL_COLUMNS = ("name_head_bidx", "name_head2_bidx", "name_tail2_bidx", "phone_tail_bidx",
                   "phone2_tail_bidx", "id_number_tail_bidx")


# --- partial search ------------------------------------------------------------------------------

@pytest.fixture
def register(make_customer):
    return {
        "zhang3": make_customer("sales1", name="张三", phone="13800138000", id_number=ID_1),
        "zhangsf": make_customer("sales1", name="张三丰", phone="13900139001", phone2="13700137123"),
        "test": make_customer("sales1", name="测试张三", phone="13600136456"),
        "li": make_customer("sales1", name="李四", phone="13500135000", id_number=ID_2),
        "org": make_customer("sales1", "org", company_name="杭州张三贸易有限公司", phone="057188886666"),
        "other": make_customer("sales2", name="张三", phone="13800138000"),  # another department
    }


def test_surname_and_name_start_or_end(signed_in, register):
    client = signed_in("sales1")
    r = register
    assert found(client, "张") == {r["zhang3"], r["zhangsf"], r["org"]}  # surname (测试张三 starts otherwise); company
    assert found(client, "张三") == {r["zhang3"], r["zhangsf"], r["test"], r["org"]}  # start, end, company
    assert found(client, "三丰") == {r["zhangsf"]}  # given name: the end of the name
    assert found(client, "测试") == {r["test"]}
    assert found(client, "试张") == set()  # the middle of a name is not indexed


def test_phone_and_id_number_tails(signed_in, register):
    client = signed_in("sales1")
    r = register
    assert found(client, "8000") == {r["zhang3"]}  # never the customer outside the remit
    assert found(client, "7123") == {r["zhangsf"]}  # the second phone
    assert found(client, "6666") == {r["org"]}  # a landline's last digits
    assert found(client, "138000") == {r["zhang3"]}  # more than four digits: the tail is confirmed
    assert found(client, "002x") == {r["zhang3"]}  # ID number tail, check digit X in any case
    assert found(client, "4477") == {r["li"]}
    assert found(client, "9999") == set()


def test_customer_number_tail(app, signed_in, register):
    client = signed_in("sales1")
    with app.app_context():
        number = db.session.get(Customer, register["li"]).number  # KH-yyyy-000004
    assert number.endswith("000004")
    assert found(client, "4") == {register["li"]}
    assert found(client, "0004") == {register["li"]}
    assert found(client, number[-6:]) == {register["li"]}


def test_partial_search_is_audited_without_the_query(app, signed_in, register):
    found(signed_in("sales1"), "8000")
    with app.app_context():
        entry = entries("customers.customer.searched")[-1]
        assert entry.details_dict["shown"] == [register["zhang3"]]
        assert "partial_phone_tail" in entry.details_dict["query_kinds"]
        assert "8000" not in entry.details


def test_a_phone_search_reads_no_company_name_with_like(app, signed_in, register):
    client = signed_in("sales1")
    with captured_statements(app) as captured:
        for q in ("13800138000", ID_1):
            assert client.get("/customers/", query_string={"q": q}).status_code == 200
    listing = [s.lower() for s, _p in captured if "from customers_customer" in s.lower()]
    assert listing and not any("like" in s for s in listing)


def _bulk_register(app, n=10_000, seed=7):
    """n customers of sales1 inserted in one statement, with the truncated indexes the model
    would compute for random Chinese names, phones and ID numbers (the fields themselves are
    left empty: only the indexes are under test here)."""
    rnd = random.Random(seed)
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    given = "".join({chr(0x4E00 + rnd.randrange(0x5000)) for _ in range(400)})  # given-name characters
    with app.app_context():
        owner = user("sales1")
        now = datetime.datetime.now(datetime.UTC)
        rows = []
        for i in range(n):
            name = rnd.choice(surnames) + "".join(rnd.choice(given) for _ in range(rnd.choice((1, 2))))
            phone = f"+861{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
            id_tail = f"{rnd.randrange(1000):03d}{rnd.choice('0123456789X')}"
            row = {"uid": uuid.uuid4().hex, "number": f"KH-1999-{i + 1:06d}B", "number_rev": f"KH-1999-{i + 1:06d}B"[::-1],
                   "kind": "person", "status": "active", "status_changed_at": now, "owner_id": owner.id,
                   "department_id": owner.department_id, "tags": "", "completeness": 0, "created_at": now,
                   "updated_at": now, "version": 1}
            for key in ("name_head", "name_head2", "name_tail2"):
                row[f"{key}_bidx"] = search.partial_index(key, name)
            row["phone_tail_bidx"] = search.partial_index("phone_tail", phone)
            row["phone2_tail_bidx"] = None
            row["id_number_tail_bidx"] = search.partial_index("id_number_tail", "1101011990010" + "1" + id_tail)
            rows.append(row)
        db.session.execute(insert(Customer.__table__), rows)
        db.session.commit()


def test_each_partial_index_value_covers_many_customers_on_a_register_of_10000(app, people, signed_in,
                                                                                make_customer):
    _bulk_register(app)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 10_000
        for column in ("name_head_bidx", "name_head2_bidx", "name_tail2_bidx", "phone_tail_bidx",
                       "id_number_tail_bidx"):
            col = getattr(Customer, column)
            sizes = db.session.execute(select(col, func.count()).where(col.is_not(None)).group_by(col)).all()
            assert len(sizes) <= 2 ** search.BITS[column.removesuffix("_bidx")]
            smallest = min(n for _v, n in sizes)
            assert smallest > 1, f"{column}: an index value names a single customer"
        # one bucket of the phone tail holds several different tails: the index does not tell them apart
        tails = {f"{t:04d}" for t in range(10_000)}
        by_bucket = {}
        for tail in tails:
            by_bucket.setdefault(search.partial_index("phone_tail", "+86138000" + tail), set()).add(tail)
        assert min(len(v) for v in by_bucket.values()) > 10
    # a real customer among them is found by its tail; its bucket-mates are checked and left out
    mine = make_customer("sales1", name="欧阳修", phone="13812344321")
    client = signed_in("sales1")
    assert found(client, "4321") == {mine}
    assert found(client, "欧阳") == {mine}


def test_no_plaintext_and_no_untruncated_partial_index_is_stored(app, signed_in, make_customer):
    name, phone, id_number = "鄢鹂鸾", "13987654321", ID_2
    cid = make_customer("sales1", name=name, phone=phone, id_number=id_number)
    client = signed_in("sales1")
    assert found(client, "鄢") == {cid} and found(client, "4321") == {cid} and found(client, "4477") == {cid}
    with app.app_context():
        row = db.session.execute(select(Customer.__table__).where(Customer.id == cid)).mappings().one()
        for column in PARTIAL_COLUMNS:
            if row[column] is not None:  # "<key id>:<at most 8 bits>"
                assert re.fullmatch(r"\d+:[0-9a-f]{1,2}", row[column]), column
        assert row["phone2_tail_bidx"] is None
        # every table, every row: none holds the name, a part of it, the phone or the ID number
        needles = [name, name[:2], name[-2:], phone, id_number]
        for table in db.metadata.sorted_tables:
            if not table.name.startswith(("core_", "customers_")):
                continue
            for values in db.session.execute(select(table)).all():
                blob = " ".join(str(v) for v in values)
                assert not [n for n in needles if n in blob], table.name
        if db.engine.dialect.name == "sqlite":
            db.session.commit()
            path = Path(db.engine.url.database)
            raw = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
            for needle in (name, name[:2], phone, id_number):
                assert needle.encode() not in raw


def test_reindex_rebuilds_the_partial_indexes(app, register):
    with app.app_context():
        before = db.session.execute(select(Customer.id, *[getattr(Customer, c) for c in PARTIAL_COLUMNS])
                                    .order_by(Customer.id)).all()
        db.session.execute(Customer.__table__.update().values(**{c: None for c in PARTIAL_COLUMNS}))
        db.session.commit()
        counts = services.reindex()
        db.session.commit()
        after = db.session.execute(select(Customer.id, *[getattr(Customer, c) for c in PARTIAL_COLUMNS])
                                   .order_by(Customer.id)).all()
        assert counts["customers_customer_partial_reindexed"] == len(register)
        assert after == before


def test_key_rotation_rebuilds_the_partial_indexes_under_the_new_key(app, runner, signed_in, register):
    with app.app_context():
        old = db.session.get(Customer, register["zhang3"]).phone_tail_bidx
    result = runner("keys", "rotate")
    assert result.exit_code == 0, result.output
    with app.app_context():
        new = db.session.get(Customer, register["zhang3"]).phone_tail_bidx
        assert new.split(":")[0] != old.split(":")[0]
    assert found(signed_in("sales1"), "8000") == {register["zhang3"]}


# --- the list ------------------------------------------------------------------------------------

def listed(html):
    return [int(i) for i in re.findall(r'<tr id="customer-(\d+)"', html)]


def test_list_counts_and_caps_the_count(app, signed_in, make_customer, monkeypatch):
    for i in range(3):
        make_customer("sales1", name=f"客户{i}")
    client = signed_in("sales1")
    html = client.get("/customers/").get_data(as_text=True)
    assert re.search(r'id="customer-count"[^>]*>\s*共 3 位客户', html)
    monkeypatch.setattr(services, "COUNT_CAP", 2)
    html = client.get("/customers/?size=1").get_data(as_text=True)  # more than a page: counted, capped
    assert re.search(r'id="customer-count"[^>]*>\s*超过 2 位客户', html)


def test_page_size_choice_and_sorting(app, signed_in, make_customer):
    ids = [make_customer("sales1", "org", company_name=name) for name in ("乙公司", "甲公司", "丙公司")]
    person = make_customer("sales1", name="赵六")
    client = signed_in("sales1")
    html = client.get("/customers/?size=20").get_data(as_text=True)
    assert '<option value="20" selected>' in html and '<option value="100" >' in html
    assert listed(html) == [person, *reversed(ids)]
    html = client.get("/customers/?sort=company&dir=asc").get_data(as_text=True)
    with app.app_context():
        names = {i: db.session.get(Customer, i).company_name for i in ids}
    assert listed(html) == [*sorted(ids, key=lambda i: names[i]), person]  # persons (no company) last
    html = client.get("/customers/?sort=number&dir=asc&size=2").get_data(as_text=True)
    assert listed(html) == ids[:2]
    nxt = unescape(re.search(r'id="page-next" href="([^"]+)"', html).group(1))
    assert listed(client.get(nxt).get_data(as_text=True)) == [ids[2], person]


def test_staff_list_merges_own_and_shared_customers_newest_first(app, signed_in, make_customer):
    mine_old = make_customer("sales1", name="甲")
    theirs = make_customer("sales1b", name="乙")
    mine_new = make_customer("sales1", name="丙")
    client = signed_in("sales1")
    with captured_statements(app) as captured:
        assert listed(client.get("/customers/").get_data(as_text=True)) == [mine_new, mine_old]
    statements = [s.lower() for s, _p in captured]
    with app.app_context():
        # no shares: one keyset query of the own customers (owner_id = ?), no shared branch
        page = [s for s in statements if "from customers_customer" in s and "order by customers_customer.id" in s
                and not s.startswith("select count(")]
        assert len(page) == 1 and re.search(r"and customers_customer\.owner_id = (\?|%\(\w+\)s)", page[0])
        db.session.add(Share(customer_id=theirs, user_id=user("sales1").id, granted_by=user("head1").id))
        db.session.commit()
    assert listed(client.get("/customers/").get_data(as_text=True)) == [mine_new, theirs, mine_old]
    html = client.get("/customers/?size=1").get_data(as_text=True)
    assert listed(html) == [mine_new]
    nxt = unescape(re.search(r'id="page-next" href="([^"]+)"', html).group(1))
    html = client.get(nxt).get_data(as_text=True)
    assert listed(html) == [theirs]
    prev = unescape(re.search(r'id="page-prev" href="([^"]+)"', html).group(1))
    assert listed(client.get(prev).get_data(as_text=True)) == [mine_new]
    assert listed(client.get("/customers/?owner=shared").get_data(as_text=True)) == [theirs]
    assert listed(client.get("/customers/?owner=me").get_data(as_text=True)) == [mine_new, mine_old]


def test_the_unfiltered_list_is_built_once_per_role_and_bound_to_each_actor(app, signed_in, make_customer):
    """The unfiltered list's selects are kept per role, the actor's id and department bound at
    each request: whoever asked first, everyone sees their own remit, listed and counted."""
    old_d1, other_d1, d2, new_d1 = (make_customer(owner, name=name) for owner, name in (
        ("sales1", "甲"), ("sales1b", "乙"), ("sales2", "丙"), ("sales1", "丁")))
    services._kept_remit.cache_clear()
    for name, expected in (("sales1", [new_d1, old_d1]), ("sales1b", [other_d1]), ("sales2", [d2]),
                           ("head1", [new_d1, other_d1, old_d1]), ("head2", [d2]), ("sales1", [new_d1, old_d1])):
        assert listed(signed_in(name).get("/customers/").get_data(as_text=True)) == expected, name
    assert services._kept_remit.cache_info().misses == 2  # one for sales, one for heads
    for name, total in (("sales1", 2), ("head1", 3), ("sales1b", 1)):
        html = signed_in(name).get("/customers/?size=1").get_data(as_text=True)  # counted: more than a page
        assert f"共 {total} 位客户" in html, name
    assert services._kept_remit.cache_info().misses == 2


def test_list_rows_read_as_plain_columns_show_what_the_customer_shows(app, signed_in, make_customer):
    """The list reads its rows as plain columns (services.list_rows): the same name, masked phone
    and owner as the customer object gives, in the order asked, in one statement, without loading
    a Customer; a customer whose data key is gone shows no name instead of failing the page."""
    from core import crypto
    from core.validation import mask_phone
    person = make_customer("sales1", name="王小明", phone="13800138000")
    org = make_customer("sales1", "org", company_name="杭州某某贸易有限公司", phone="057188886666")
    bare = make_customer("sales1", name="无电话")
    with app.app_context():
        with captured_statements(app) as captured:
            rows = services.list_rows([org, bare, person, 999999])
        selects = [st for st, _p in captured if st.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1 and not db.session.identity_map  # no ORM object loaded
        assert [r.id for r in rows] == [org, bare, person]
        for row in rows:
            c = db.session.get(Customer, row.id)
            assert (row.number, row.kind, row.status, row.owner_id, row.department_id) == \
                (c.number, c.kind, c.status, c.owner_id, c.department_id)
            assert row.display_name == c.display_name and row.owner == str(c.owner)
            assert row.masked_phone == (mask_phone(c.phone) if c.phone else None)
            assert (row.completeness, row.updated_at) == (c.completeness, c.updated_at)
        assert [r.masked_phone for r in rows] == ["0571-******66", None, "138****8000"]
        assert not hasattr(rows[0], "phone")  # the plaintext phone is not kept
        c = db.session.get(Customer, person)
        key = c.subject_key
        c.subject_key = None
        crypto.destroy_subject_key(key)
        db.session.commit()
        gone = services.list_rows([person])
        assert [(r.id, r.display_name, r.masked_phone) for r in gone] == [(person, None, None)]
    html = signed_in("sales1").get("/customers/").get_data(as_text=True)
    assert "杭州某某贸易有限公司" in html and "0571-******66" in html and "057188886666" not in html
    row = re.search(rf'<tr id="customer-{org}">(.*?)</tr>', html, re.S).group(1)
    assert '<span class="badge text-bg-secondary">潜在</span>' in row and "企业" in row and "%" in row
    # each number links to the customer's page (the list writes the links without url_for per row)
    with app.test_request_context():
        from flask import url_for
        pages_ = {i: url_for("customers.detail", customer_id=i) for i in (org, bare, person)}
    links = dict(re.findall(r'<td class="col-number"><a href="([^"]+)">([^<]+)</a>', html))
    assert sorted(links) == sorted(pages_.values())


def test_the_lists_rows_escape_what_comes_from_the_customer_and_from_modules(app, signed_in, make_customer,
                                                                               enable_module):
    """The rows are written in Python (views._rows_html), not by the autoescaping template: a
    name, number, owner and phone are escaped there, and so are a module's column label and
    values (a Markup value is kept as it is); the time is the company's."""
    from markupsafe import Markup

    from core import hooks, i18n
    from modules.customers import api
    wanted = make_customer("sales1", name='<i>何"某\'&</i>', phone="13800138000")
    other = make_customer("sales1", name="乙")

    def columns(actor):
        return [api.ListColumn(key="note", label='注"记<', values=lambda rows: {
            wanted: "<b>A&B</b>", other: Markup("<em>ok</em>")})]
    hooks.add(app, "customers.list_columns", "notices", columns)
    enable_module("D1", "notices")
    html = signed_in("sales1").get("/customers/").get_data(as_text=True)
    row = re.search(rf'<tr id="customer-{wanted}">(.*?)</tr>', html, re.S).group(1)
    assert "<bdi>&lt;i&gt;何&#34;某&#39;&amp;&lt;/i&gt;</bdi>" in row and "<i>" not in row
    assert '<td class="col-low" data-label="注&#34;记&lt;">&lt;b&gt;A&amp;B&lt;/b&gt;</td>' in row
    other_row = re.search(rf'<tr id="customer-{other}">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="col-low" data-label="注&#34;记&lt;"><em>ok</em></td>' in other_row
    assert html.count("<tr id=\"customer-") == 2
    with app.app_context():
        c = db.session.get(Customer, wanted)
        number, updated = c.number, i18n.local_datetime(c.updated_at)
    assert f'aria-label="选择 {number}"' in row and f'>{number}</a>' in row
    assert f'data-label="更新时间">{updated}</td>' in row and '<span class="masked">138****8000</span>' in row


def test_an_exact_search_loads_no_customer_object_and_audits_after_rendering(app, signed_in, make_customer):
    """An exact search needs no decryption to match: its page selects ids, then the shown columns
    (list_rows); only a partial search loads Customer objects (with their data keys) to confirm.
    Its audit entry is committed after the page is rendered, so nothing is read back after it."""
    wanted = make_customer("sales1", name="赵七", phone="13800138000")
    make_customer("sales1", name="钱八", phone="13900139000")
    client = signed_in("sales1")

    def search(q):
        with captured_statements(app) as captured:
            html = client.get("/customers/", query_string={"q": q}).get_data(as_text=True)
        return listed(html), [st.lower() for st, _p in captured]

    shown, statements = search("13800138000")
    entity = [st for st in statements if st.startswith("select customers_customer.id, customers_customer.uid, "
                                                         "customers_customer.number, customers_customer.number_rev")]
    assert shown == [wanted] and entity == []
    last_insert = max(i for i, st in enumerate(statements) if st.startswith("insert into core_audit_entry"))
    assert not [st for st in statements[last_insert + 1:] if "from core_user" in st or "from customers_" in st]
    shown, statements = search("赵")  # partial: candidates confirmed by decrypting their names
    assert shown == [wanted]
    assert [st for st in statements if st.startswith("select customers_customer.id, customers_customer.uid, "
                                                     "customers_customer.number, customers_customer.number_rev")]


def test_a_salespersons_page_and_count_read_one_index_in_order(app, signed_in, make_customer):
    """Own customers of the own department, newest first: (owner_id, department_id, id) gives the
    page and the capped count in order, so both stop early however many customers there are."""
    make_customer("sales1", name="甲")
    make_customer("sales1", name="乙")
    client = signed_in("sales1")
    with captured_statements(app) as captured:  # two pages of one: the total must be counted
        assert "共 2 位客户" in client.get("/customers/?size=1").get_data(as_text=True)
    mine = [(s, p) for s, p in captured if "from customers_customer" in s.lower()
            and re.search(r"owner_id = (\?|%\(\w+\)s)", s)]
    count = [(s, p) for s, p in mine if s.lower().startswith("select count(")]
    assert len(count) == 1 and "ORDER BY customers_customer.id DESC" in count[0][0]
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return  # PostgreSQL's plan depends on its statistics; the index is there (tests/migrations)
        for sql, params in mine:
            plan = sqlite_plan(sql, params)
            # the ids walked in order from the index alone (the page's 51 rows are then sorted)
            assert "COVERING INDEX ix_customers_customer_owner_id_department_id_id (owner_id=? AND department_id=?)" \
                in plan, plan


def test_a_list_or_search_on_one_page_counts_its_rows_instead_of_the_remit(app, signed_in, make_customer):
    """When the first page holds every match, its rows are the total: no count statement (a phone
    search finds one customer; a small remit fits one page). A longer remit is still counted."""
    wanted = make_customer("sales1", name="赵七", phone="13800138000")
    make_customer("sales1", name="钱八", phone="13900139000")
    client = signed_in("sales1")
    for query, total in (("", 2), ("?q=13800138000", 1), ("?sort=company&dir=asc", 2), ("?size=1", 2)):
        with captured_statements(app) as captured:
            html = client.get(f"/customers/{query}").get_data(as_text=True)
        counts = [s for s, _p in captured if s.lower().startswith("select count(")]
        assert f"共 {total} 位客户" in html, query
        assert len(counts) == (1 if query == "?size=1" else 0), (query, counts)
    assert listed(client.get("/customers/?q=13800138000").get_data(as_text=True)) == [wanted]


def test_bulk_reassign_by_the_head_audited_per_customer(app, signed_in, make_customer):
    a, b, c = (make_customer("sales1", name=n) for n in ("甲", "乙", "丙"))
    client = signed_in("head1")
    token = csrf(client.get("/customers/").get_data(as_text=True))
    with app.app_context():
        target = user("sales1b").id
        db.session.add(Share(customer_id=a, user_id=target, granted_by=user("head1").id))
        db.session.commit()
    response = client.post("/customers/bulk/reassign", data={"csrf_token": token, "selected": [a, b],
                                                             "owner_id": target, "next": "/customers/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/customers/")
    with app.app_context():
        owners = {i: db.session.get(Customer, i).owner_id for i in (a, b, c)}
        assert owners == {a: target, b: target, c: user("sales1").id}
        assert not db.session.scalars(select(Share).where(Share.customer_id == a)).all()  # now the owner
        logged = entries("customers.customer.reassigned")
        assert sorted(e.target_id for e in logged) == [str(a), str(b)] or sorted(
            int(e.target_id) for e in logged) == [a, b]
        assert all(e.details_dict["to_owner"] == target for e in logged)
    assert "2 位客户已更换负责人" in client.get("/customers/").get_data(as_text=True)


def test_bulk_reassign_is_refused_to_staff_and_outside_the_remit(app, signed_in, make_customer):
    mine = make_customer("sales1", name="甲")
    elsewhere = make_customer("sales2", name="乙")
    sales = signed_in("sales1")
    token = csrf(sales.get("/customers/").get_data(as_text=True))
    with app.app_context():
        target = user("sales1b").id
    assert sales.post("/customers/bulk/reassign", data={"csrf_token": token, "selected": [mine],
                                                        "owner_id": target}).status_code == 403
    head = signed_in("head1")
    token = csrf(head.get("/customers/").get_data(as_text=True))
    response = head.post("/customers/bulk/reassign", data={"csrf_token": token, "selected": [mine, elsewhere],
                                                           "owner_id": target}, follow_redirects=True)
    assert "不在您的权限范围内" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Customer, mine).owner_id == user("sales1").id
        assert not entries("customers.customer.reassigned")


def test_bulk_bar_offers_the_departments_staff_read_once(app, signed_in, make_customer):
    """A head's list offers the department's active staff as new owners (heads included) and its
    sales and service staff, the head excepted, to share with: both from one read of the staff;
    a salesperson is offered the colleagues, not themselves."""
    make_customer("sales1", name="甲")

    def options(html, select_id):
        block = re.search(rf'<select[^>]*id="{select_id}"[^>]*>(.*?)</select>', html, re.S).group(1)
        return [label.split(" (")[0] for label in re.findall(r'<option value="\d+">([^<]+)</option>', block)]

    with app.app_context():
        names = {u.username: str(u) for u in db.session.scalars(select(User))}
    head = signed_in("head1")
    with captured_statements(app) as captured:
        html = head.get("/customers/").get_data(as_text=True)
    staff_reads = [st for st, _p in captured if st.lower().lstrip().startswith("select core_user.")
                   and "session_token" not in st.lower().split("where", 1)[-1]]
    assert len(staff_reads) == 1, staff_reads
    assert sorted(options(html, "bulk-owner")) == sorted(names[u] for u in ("head1", "sales1", "sales1b", "service1"))
    assert sorted(options(html, "bulk-share-user")) == sorted(names[u] for u in ("sales1", "sales1b", "service1"))
    html = signed_in("sales1").get("/customers/").get_data(as_text=True)
    assert sorted(options(html, "bulk-share-user")) == sorted(names[u] for u in ("sales1b", "service1"))


def test_bulk_share_by_the_owner(app, signed_in, make_customer):
    a, b = make_customer("sales1", name="甲"), make_customer("sales1", name="乙")
    client = signed_in("sales1")
    token = csrf(client.get("/customers/").get_data(as_text=True))
    with app.app_context():
        colleague = user("sales1b").id
    response = client.post("/customers/bulk/share", data={"csrf_token": token, "selected": [a, b], "user_id": colleague})
    assert response.status_code == 302
    with app.app_context():
        assert sorted(s.customer_id for s in db.session.scalars(select(Share))) == [a, b]
        assert len(entries("customers.customer.shared")) == 2
    assert set(listed(signed_in("sales1b").get("/customers/").get_data(as_text=True))) == {a, b}
    # again: nothing new, nothing duplicated
    client.post("/customers/bulk/share", data={"csrf_token": token, "selected": [a, b], "user_id": colleague})
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Share)) == 2


def test_export_of_the_selection_goes_through_the_export_page(app, signed_in, make_customer):
    a, b, c = (make_customer("sales1", name=n, phone=p) for n, p in
               (("甲", "13800138001"), ("乙", "13800138002"), ("丙", "13800138003")))
    client = signed_in("head1")
    page = client.get("/customers/export", query_string={"selected": [a, c]}).get_data(as_text=True)
    with app.app_context():
        numbers = [db.session.get(Customer, i).number for i in (a, c)]
    assert 'id="export-selection"' in page and all(n in page for n in numbers)
    response = client.post(f"/customers/export?selected={a}&selected={c}",
                           data={"csrf_token": csrf(page), "reason": "季度核对", "fmt": "csv",
                                 "selected": [a, c]})
    assert response.status_code == 200
    body = response.get_data().decode("utf-8-sig")
    assert all(n in body for n in numbers) and "乙" not in body
    with app.app_context():
        (entry,) = entries("customers.export.completed")
        assert entry.details_dict["rows"] == 2 and entry.details_dict["selected"] == numbers


def test_export_of_the_current_filter(app, signed_in, make_customer):
    a = make_customer("sales1", name="张甲")
    make_customer("sales1", name="李乙")
    make_customer("sales1", "org", company_name="张记商行")
    client = signed_in("head1")
    list_html = client.get("/customers/", query_string={"q": "张", "kind": "person"}).get_data(as_text=True)
    link = unescape(re.search(r'id="export-filter"\s+href="([^"]+)"', list_html).group(1))
    page = client.get(link).get_data(as_text=True)
    assert 'id="export-selection"' in page
    response = client.post(link, data={"csrf_token": csrf(page), "reason": "核对", "fmt": "csv"})
    assert response.status_code == 200
    body = response.get_data().decode("utf-8-sig")
    with app.app_context():
        number = db.session.get(Customer, a).number
        (entry,) = entries("customers.export.completed")
        assert entry.details_dict["filter"] == ["kind=person", "search"]
    lines = [line for line in body.splitlines()[1:] if line.strip()]
    assert len(lines) == 1 and number in lines[0]


def test_a_selection_never_widens_the_export_beyond_the_remit(app, signed_in, make_customer):
    mine = make_customer("sales1", name="甲方客户")
    foreign = make_customer("sales2", name="乙方客户")
    client = signed_in("head1")
    page = client.get("/customers/export", query_string={"selected": [mine, foreign]}).get_data(as_text=True)
    with app.app_context():
        foreign_number = db.session.get(Customer, foreign).number
    assert foreign_number not in page
    response = client.post("/customers/export", data={"csrf_token": csrf(page), "reason": "核对", "fmt": "csv",
                                                      "selected": [mine, foreign]})
    body = response.get_data().decode("utf-8-sig")
    assert "甲方客户" in body and "乙方客户" not in body and foreign_number not in body


def test_bulk_share_of_a_customer_shared_with_me_says_why_and_changes_nothing(app, signed_in, make_customer):
    theirs = make_customer("sales1b", name="乙")
    with app.app_context():
        db.session.add(Share(customer_id=theirs, user_id=user("sales1").id, granted_by=user("head1").id))
        db.session.commit()
        other = user("service1").id
    client = signed_in("sales1")
    token = csrf(client.get("/customers/").get_data(as_text=True))
    response = client.post("/customers/bulk/share", data={"csrf_token": token, "selected": [theirs],
                                                          "user_id": other}, follow_redirects=True)
    assert response.status_code == 200 and "只有负责人或部门负责人" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Share.user_id).where(Share.customer_id == theirs)).all() == [user("sales1").id]


@pytest.mark.parametrize("key", services.LIST_SORTS)
def test_every_builtin_sort_answers_in_both_directions(app, signed_in, make_customer, key):
    mine = make_customer("sales1", name="甲")
    shared = make_customer("sales1b", name="乙")
    with app.app_context():
        db.session.add(Share(customer_id=shared, user_id=user("sales1").id, granted_by=user("head1").id))
        db.session.commit()
    for direction in ("asc", "desc"):
        for who in ("sales1", "head1"):
            response = signed_in(who).get(f"/customers/?sort={key}&dir={direction}")
            assert response.status_code == 200
            assert set(listed(response.get_data(as_text=True))) == {mine, shared}


def test_imported_customers_are_found_by_surname_phone_tail_and_number_tail(app, signed_in):
    """The batched import writes rows without ORM objects: their partial indexes and reversed
    number must be there all the same."""
    from modules.customers import io as cio
    from tests.modules.customers.test_io import csv_bytes
    rows = [["个人", "欧阳晓明", "13912345678", "", "", "", "sales1"]]
    client = signed_in("sales1")
    with app.app_context():
        result = cio.import_customers(user("head1"), csv_bytes(rows), "x.csv")
        assert result.ok and result.created == 1
        customer = db.session.scalar(select(Customer).where(Customer.number == result.numbers[0]))
        cid, number = customer.id, customer.number
    assert found(client, "欧") == {cid}
    assert found(client, "欧阳") == {cid}
    assert found(client, "5678") == {cid}
    assert found(client, number[-3:]) == {cid}


# --- company names: substring search through SQLite's FTS5 trigram index -------------------------

def _statements(app, client, q):
    with captured_statements(app) as statements:
        ids = found(client, q)
    return ids, [s.lower() for s, _p in statements if "from customers_customer" in s.lower()]


def test_company_name_middle_found_through_the_trigram_index(app, signed_in, make_customer):
    org = make_customer("sales1", "org", company_name="杭州远东贸易有限公司")
    quoted = make_customer("sales1", "org", company_name='The "Big" Shop 50%_off')
    make_customer("sales2", "org", company_name="上海远东贸易有限公司")  # outside the remit
    client = signed_in("sales1")
    ids, listing = _statements(app, client, "远东贸易")  # the middle of the name
    assert ids == {org}
    with app.app_context():
        on_sqlite = db.engine.dialect.name == "sqlite"
    if on_sqlite:
        assert any("customers_customer_fts match" in s for s in listing)
        assert not any("company_name like" in s for s in listing)
    else:
        assert not any("customers_customer_fts" in s for s in listing)
    assert found(client, "有限公司") == {org}
    assert found(client, '"Big" S') == {quoted}  # quotes match only themselves
    assert found(client, "big") == {quoted}  # case ignored on both databases
    assert found(client, "sh") == {quoted}  # also by LIKE (fewer than three characters)
    assert found(client, "50%_o") == {quoted}
    assert found(client, "0%_x") == set()
    ids, listing = _statements(app, client, "远东")  # two characters: LIKE, still in the remit
    assert ids == {org}
    assert not any("customers_customer_fts" in s for s in listing)
    assert found(client, "杭") == {org}


def test_the_trigram_index_follows_renamed_and_deleted_companies(app, signed_in, make_customer):
    org = make_customer("sales1", "org", company_name="杭州远东贸易有限公司")
    other = make_customer("sales1", "org", company_name="宁波远东物流有限公司")
    client = signed_in("sales1")
    assert found(client, "远东贸易") == {org}
    with app.app_context():
        customer = db.session.get(Customer, org)
        services.update_customer(user("sales1"), customer, {"company_name": "杭州西湖茶叶有限公司"},
                                 customer.version)
        db.session.commit()
    assert found(client, "远东贸易") == set()
    assert found(client, "西湖茶叶") == {org}
    assert found(client, "远东物流") == {other}
    with app.app_context():
        db.session.execute(Customer.__table__.delete().where(Customer.id == other))
        db.session.commit()
        if db.engine.dialect.name == "sqlite":  # the index lost its trigrams too, not just the row
            rows = db.session.execute(text(f"SELECT rowid FROM {search.FTS_TABLE} WHERE {search.FTS_TABLE} "
                                           "MATCH '\"远东物流\"'")).all()
            assert rows == []
            db.session.execute(text(f"INSERT INTO {search.FTS_TABLE}({search.FTS_TABLE}) "
                                    "VALUES ('integrity-check')"))  # raises if index and names differ
    assert found(client, "远东物流") == set()


def test_one_character_is_a_surname_never_the_end_of_a_name():
    """A candidate found through a surname bucket it shares by chance is confirmed by its own
    name: one character matches the start only (its index is the surname), two or more the start
    or the end."""
    from types import SimpleNamespace
    li_feng = SimpleNamespace(kind="person", name="李鄷")
    assert not search.confirms(li_feng, "鄷")
    assert search.confirms(li_feng, "李")
    assert search.confirms(SimpleNamespace(kind="person", name="鄷一鸣"), "一鸣")


def test_an_empty_list_and_a_search_without_matches_say_so_in_one_row(app, signed_in, make_customer):
    client = signed_in("sales1")
    html = client.get("/customers/").get_data(as_text=True)
    assert re.search(r'<tr><td colspan="\d+" class="text-muted" id="no-customers">\s*暂无客户。', html)
    assert '<tr id="customer-' not in html
    make_customer("sales1", name="甲", phone="13800138000")
    html = client.get("/customers/?q=13900139000").get_data(as_text=True)
    assert "您权限范围内没有符合条件的客户。" in html and '<tr id="customer-' not in html
    html = client.get("/customers/").get_data(as_text=True)
    assert 'id="no-customers"' not in html and html.count('<tr id="customer-') == 1
