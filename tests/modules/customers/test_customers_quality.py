"""Data quality: duplicates through the blind indexes (company-wide, shown by remit) and the
completeness score with the missing fields."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import db
from core.models import User
from modules.customers import quality, services
from modules.customers.fields import REQUIRED_FOR_COMPLETENESS

ID_1 = "11010519491231002X"
ID_2 = "110101199003074477"
CREDIT = "91110000600037341L"


@pytest.fixture
def ctx(app, make_user):
    for name, role, dept in (("sales1", "sales", "D1"), ("sales2", "sales", "D2"), ("head1", "head", "D1")):
        make_user(name, role, dept)
    with app.test_request_context():
        yield


def user(name):
    return db.session.execute(select(User).where(User.username == name)).scalar_one()


def create(owner="sales1", kind="person", **data):
    data.setdefault("name" if kind == "person" else "company_name", "张三" if kind == "person" else "某某公司")
    customer = services.create_customer(user(owner), {"kind": kind, **data},
                                        consent={"purposes": ["service"], "channel": "paper", "sensitive": True})
    db.session.commit()
    return customer


def matches(**query):
    return [(c.id, reason) for c, reason in quality.find_duplicates(user("sales1"), **query)]


def test_same_phone_id_number_or_credit_code_is_found_in_any_format(ctx):
    person = create(phone="13800138000", id_number=ID_1)
    second_phone = create(name="李四", phone="13700137000", phone2="13900139000")
    org = create(kind="org", company_name="北京某某科技有限公司", credit_code=CREDIT)
    assert matches(phone="+86 138 0013 8000") == [(person.id, "phone")]
    assert matches(phone="139-0013-9000") == [(second_phone.id, "phone")]
    assert matches(id_number=ID_1.lower()) == [(person.id, "id_number")]
    assert matches(credit_code=CREDIT.lower()) == [(org.id, "credit_code")]
    assert matches(name="北京某某科技有限公司") == [(org.id, "company_name")]
    assert matches(id_number=ID_2, phone="13600136000", credit_code="91350100M000100Y43") == []


def test_name_plus_phone_is_the_stronger_reason_and_the_strongest_comes_first(ctx):
    same_name = create(name="王五", phone="13800138000")
    other_name = create(name="赵六", phone="13800138000")
    by_id = create(name="钱七", id_number=ID_1)
    found = matches(name="王五", phone="13800138000", id_number=ID_1)
    assert found == [(by_id.id, "id_number"), (same_name.id, "name_phone"), (other_name.id, "phone")]


def test_duplicates_are_found_company_wide_and_split_by_remit(ctx):
    mine = create(phone="13800138000")
    theirs = create(owner="sales2", phone="13800138000")
    found = quality.find_duplicates(user("sales1"), phone="13800138000")
    assert {c.id for c, _r in found} == {mine.id, theirs.id}
    visible, elsewhere = quality.split_by_remit(user("sales1"), found)
    assert [c.id for c, _r in visible] == [mine.id] and [c.id for c, _r in elsewhere] == [theirs.id]
    visible, elsewhere = quality.split_by_remit(user("head1"), found)
    assert [c.id for c, _r in visible] == [mine.id]


def test_exclude_and_unusable_input(ctx):
    customer = create(phone="13800138000", id_number=ID_1)
    assert matches(phone="13800138000", exclude_id=customer.id) == []
    assert matches(phone="not a phone", id_number="bad", credit_code="bad", name=" ") == []
    assert matches() == []
    assert all(reason in quality.REASONS for reason in ("id_number", "credit_code", "name_phone", "phone",
                                                        "company_name"))


def test_completeness_scores_and_names_what_is_missing(ctx):
    bare = create(name="甲")
    score, missing = quality.completeness(bare)
    assert score == round(100 / 6)
    assert missing == ["性别", "出生日期", "电话", "身份证号", "家庭住址"]
    assert bare.completeness == score
    full = create(name="乙", phone="13800138000", id_number=ID_1, home_address="北京市朝阳区建国路1号")
    assert quality.completeness(full) == (100, [])  # gender and birth date come from the ID number
    org = create(kind="org", company_name="某某公司", credit_code=CREDIT)
    assert quality.completeness(org)[1] == ["法定代表人", "企业地址", "电话", "所属行业"]


def test_completeness_is_kept_up_to_date_on_edit(ctx):
    customer = create(name="甲")
    services.update_customer(user("sales1"), customer, {"phone": "13800138000", "gender": "M",
                                                        "birth_date": "1990-01-01"}, customer.version)
    db.session.commit()
    assert customer.completeness == quality.completeness(customer)[0] == round(100 * 4 / 6)


def test_score_of_values(ctx):
    assert quality.score_of("org", {}) == 0
    assert quality.score_of("org", {name: "x" for name in REQUIRED_FOR_COMPLETENESS["org"]}) == 100
    assert quality.score_of("person", {"name": "甲", "phone": None, "gender": ""}) == round(100 / 6)
