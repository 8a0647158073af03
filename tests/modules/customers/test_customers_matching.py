"""customers_matching: the exported lookup by normalised phone or ID number through the blind
indexes (used by incidents to match a pasted list of affected customers)."""
import pytest

from core.db import db


def test_matches_phone_either_number_and_id_number(app, make_customer, monkeypatch):
    a = make_customer("m_sales", name="甲", phone="13800138001", id_number="110101199003074514")
    b = make_customer("m_sales", name="乙", phone="13800138002", phone2="13800138001")
    make_customer("m_sales", name="丙", phone="13800138003")
    import modules.customers as customers
    from core import crypto
    with app.test_request_context():
        # nothing is decrypted while matching
        monkeypatch.setattr(crypto, "decrypt", lambda *a, **k: pytest.fail("decrypted"))
        assert [c.id for c in customers.customers_matching("phone", "+8613800138001")] == [a, b]
        assert [c.id for c in customers.customers_matching("id_number", "110101199003074514")] == [a]
        assert customers.customers_matching("phone", "+8613900000000") == []
        with pytest.raises(ValueError):
            customers.customers_matching("name", "甲")
        db.session.rollback()
