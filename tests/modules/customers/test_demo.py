"""Demo customers: realistic, valid, spread over departments and owners, encrypted like real data."""
from __future__ import annotations

import datetime

import pytest
from sqlalchemy import func, select

from core import validation
from core.db import db
from core.models import Department, User
from modules.customers import demo
from modules.customers.fields import FIELDS
from modules.customers.models import Customer, Transaction


@pytest.fixture
def staff(make_user):
    for name, role, dept in (("head1", "head", "D1"), ("sales1", "sales", "D1"), ("sales1b", "sales", "D1"),
                             ("head2", "head", "D2"), ("service2", "service", "D2"), ("boss", "admin", None)):
        make_user(name, role, dept)


def test_demo_customers_decrypt_validate_and_spread(app, staff):
    with app.app_context():
        departments = db.session.execute(select(Department)).scalars().all()
        users = db.session.execute(select(User)).scalars().all()
        summary = demo.create(departments, users, count=40, seed=7)
        db.session.commit()
        assert summary.startswith("40 customers in 2 departments")
    with app.app_context():  # a fresh session: everything comes back from the database
        customers = db.session.execute(select(Customer)).scalars().all()
        assert len(customers) == 40
        kinds, statuses, owners = set(), set(), set()
        for customer in customers:
            values = {name: getattr(customer, name) for name, spec in FIELDS.items()
                      if customer.kind in spec.kinds}  # raises if anything fails to decrypt
            kinds.add(customer.kind)
            statuses.add(customer.status)
            owners.add(customer.owner.username)
            assert customer.owner.role in ("sales", "service")
            assert customer.department_id == customer.owner.department_id
            assert validation.phone(values["phone"]) == values["phone"]
            if customer.kind == "person":
                assert values["name"] and values["gender"] in ("M", "F")
                if values["id_number"]:
                    assert validation.id_number(values["id_number"]) == values["id_number"]
                    assert values["birth_date"].replace("-", "") == values["id_number"][6:14]
                if values["id_number"] or values["bank_account"]:
                    assert any(c.sensitive and c.active for c in customer.consents)
            else:
                assert validation.credit_code(values["credit_code"]) == values["credit_code"]
                assert values["company_name"] and values["legal_rep"] and values["industry"]
                assert customer.contacts and all(validation.phone(c.phone) == c.phone and c.name
                                                 for c in customer.contacts)
            assert customer.consents and customer.number.startswith("KH-")
        assert kinds == {"person", "org"} and statuses == {"prospect", "active", "lost"}
        assert owners == {"sales1", "sales1b", "service2"}
        oldest, newest, low = db.session.execute(select(
            func.min(Transaction.occurred_on), func.max(Transaction.occurred_on),
            func.min(Transaction.amount)).where(Transaction.kind == "transaction")).one()
        today = datetime.date.today()
        assert today - datetime.timedelta(days=730) <= oldest <= newest <= today and low > 0
        assert db.session.scalar(select(func.count()).select_from(Transaction)
                                 .where(Transaction.kind == "service")) > 0


def test_a_second_run_adds_customers_without_duplicates(app, staff):
    with app.app_context():
        departments = db.session.execute(select(Department)).scalars().all()
        users = db.session.execute(select(User)).scalars().all()
        demo.create(departments, users, count=10, seed=1)
        demo.create(departments, users, count=10, seed=1)  # the same seed: the same candidates again
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 20
        phones = db.session.execute(select(Customer.phone_bidx)).scalars().all()
        assert len(set(phones)) == 20


def test_no_department_with_staff_is_refused(app, make_user):
    make_user("head1", "head", "D1")
    with app.app_context():
        with pytest.raises(demo.DemoError):
            demo.create(db.session.execute(select(Department)).scalars().all(),
                        db.session.execute(select(User)).scalars().all(), count=5)


@pytest.mark.parametrize("config_overrides", [{"CUSTOMERS_DEMO_COUNT": 12}])
def test_kehu_init_demo_fills_customers_through_the_hook(app):
    from core import demo as core_demo
    lines = []
    with app.app_context():
        core_demo.create(lines.append)
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 12
        counts = dict(db.session.execute(select(Department.code, func.count()).join(
            Customer, Customer.department_id == Department.id).group_by(Department.code)).all())
    assert set(counts) == {"SALES1", "SALES2", "SERVICE"}
    assert any(line.strip().startswith("customers: 12 customers") for line in lines)


def test_demo_people_and_places_agree(app, staff):
    """Gender and birth date match the ID number (valid check character, python-stdnum), the ID's
    region is a real place, addresses name a province with one of its own cities, and an
    organisation's landline and postcode belong to its city."""
    from stdnum.cn import ric
    prefixes = {p[0] + ("" if p[1] == p[0] else p[1]) + p[2]: p for p in demo.PLACES}
    with app.app_context():
        departments = db.session.execute(select(Department)).scalars().all()
        users = db.session.execute(select(User)).scalars().all()
        demo.create(departments, users, count=60, seed=11)
        db.session.commit()
    with app.app_context():
        with_id = 0
        for customer in db.session.execute(select(Customer)).scalars():
            if customer.kind == "person":
                if customer.id_number:
                    with_id += 1
                    assert ric.is_valid(customer.id_number)
                    assert customer.id_number[:6] in {p[3] for p in demo.PLACES}
                    assert customer.birth_date.replace("-", "") == customer.id_number[6:14]
                    assert customer.gender == ("M" if int(customer.id_number[16]) % 2 else "F")
                if customer.home_address:
                    assert any(customer.home_address.startswith(prefix) for prefix in prefixes), \
                        customer.home_address
            else:
                place = next(p for prefix, p in prefixes.items() if customer.company_address.startswith(prefix))
                assert customer.postcode == place[5]
                assert customer.company_name.startswith(place[1].removesuffix("市"))
                if not customer.phone.startswith("+861"):  # a landline: the city's area code
                    assert customer.phone.startswith("+86" + place[4][1:])
        assert with_id >= 10
