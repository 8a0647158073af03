"""Phone numbers are shown and prefilled as people write them (138 0013 8000, 010-8888 6666),
never as the stored +86… value, and a prefilled form saves back the same stored value."""
from __future__ import annotations

from core.db import db
from modules.customers.models import Customer


def test_pages_and_forms_show_national_format(app, make_customer, login_as):
    person = make_customer("sales1", name="王芳", phone="13800138000")
    org = make_customer("sales1", kind="org", company_name="北京示例科技有限公司", phone="010-88886666")
    client = login_as(app.test_client(), "sales1")
    detail = client.get(f"/customers/{person}").get_data(as_text=True)
    assert "138 0013 8000" in detail and "+8613800138000" not in detail
    assert "010-8888 6666" in client.get(f"/customers/{org}").get_data(as_text=True)
    form = client.get(f"/customers/{person}/edit").get_data(as_text=True)
    assert 'value="138 0013 8000"' in form and "+86" not in form
    with app.app_context():
        version = db.session.get(Customer, person).version
    response = client.post(f"/customers/{person}/edit", data={
        "name": "王芳", "phone": "138 0013 8000", "version": str(version), "consent_notice_version": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    with app.app_context():
        customer = db.session.get(Customer, person)
        assert customer.phone == "+8613800138000" and customer.version == version  # nothing changed
