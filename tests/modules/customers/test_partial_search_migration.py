"""The upgrade to customers_0002 computes the truncated partial-search indexes and the reversed
number of the customers registered before it, from their encrypted fields."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import select

from core.db import db
from modules.customers import search
from modules.customers.models import Customer
from tests.modules.customers import test_customers_pages as pages

people, make_customer = pages.people, pages.make_customer
COLUMNS = ("number_rev", "name_head_bidx", "name_head2_bidx", "name_tail2_bidx", "phone_tail_bidx",
           "phone2_tail_bidx", "id_number_tail_bidx")


def _migration():
    path = Path(search.__file__).parent / "migrations" / "customers_0002_partial_search.py"
    spec = importlib.util.spec_from_file_location("customers_0002_partial_search", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_upgrade_backfills_the_partial_indexes(app, make_customer):
    ids = [make_customer("sales1", name="张三丰", phone="13800138000", phone2="13900139000",
                         id_number="11010519491231002X"),
           make_customer("sales1", "org", company_name="某某公司", phone="01088886666")]

    def stored():
        table = Customer.__table__
        return db.session.execute(select(table.c.id, *[table.c[c] for c in COLUMNS]).order_by(table.c.id)).all()

    with app.app_context():
        expected = stored()
        assert all(row.name_head_bidx for row in expected[:1]) and expected[1].phone_tail_bidx
        db.session.execute(Customer.__table__.update().values(**{c: None for c in COLUMNS}))
        db.session.commit()
        _migration()._backfill(db.session.connection(), batch=1)
        db.session.commit()
        assert stored() == expected
        assert [row.id for row in expected] == ids
