"""Domain services of the customer register: cleaning, create/update with optimistic locking,
status, reveal, consent, contacts, records, sharing, and the storage guarantees (no plaintext in
the database file, key rotation keeps search and decryption working)."""
from __future__ import annotations

import datetime
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import String, Text, func, inspect, select, text, update

from core import crypto
from core.audit import AuditEntry
from core.db import db
from core.models import User
from modules.customers import api, quality, services
from modules.customers.models import Consent, Contact, Customer, StatusChange, Transaction
from tests.conftest import both_suites

ID_1 = "11010519491231002X"
ID_2 = "110101199003074477"
CREDIT = "91110000600037341L"
SEPARATE = {"purposes": ["service"], "channel": "paper", "sensitive": True}


@pytest.fixture
def people(make_user):
    return {name: make_user(name, role, dept) for name, role, dept in (
        ("head1", "head", "D1"), ("sales1", "sales", "D1"), ("sales1b", "sales", "D1"),
        ("sales2", "sales", "D2"), ("admin1", "admin", None))}


@pytest.fixture
def ctx(app, people):
    with app.test_request_context():
        yield


def user(name):
    return db.session.execute(select(User).where(User.username == name)).scalar_one()


def entries(action):
    return db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).all()


def create(owner="sales1", kind="person", consent=SEPARATE, **data):
    data.setdefault("name" if kind == "person" else "company_name", "张三" if kind == "person" else "某某公司")
    customer = services.create_customer(user(owner), {"kind": kind, **data}, consent=consent)
    db.session.commit()
    return customer


# --- cleaning ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, raw, clean", [
    ("id_number", "11010519491231002x", ID_1),
    ("id_number", " １１０１０５１９４９１２３１００２Ｘ ", ID_1),
    ("id_number", "110105-19491231-002X", ID_1),
    ("phone", "+86 138-0013-8000", "+8613800138000"),
    ("phone", "１３８００１３８０００", "+8613800138000"),
    ("phone", "010-12345678 转123", "+861012345678;ext=123"),
    ("email", " Li.Na@Example.COM ", "Li.Na@example.com"),
    ("bank_account", "6222 0212 3456 7890 123", "6222021234567890123"),
    ("birth_date", "1990/05/17", "1990-05-17"),
    ("birth_date", datetime.date(1990, 5, 17), "1990-05-17"),
    ("gender", "女", "F"),
    ("gender", "m", "M"),
    ("name", "  王\u200b五 ", "王五"),
    ("home_address", "北京市朝阳区建国路1号*", "北京市朝阳区建国路1号*"),
    ("phone", 13800138000, "+8613800138000"),
    ("phone", 13800138000.0, "+8613800138000"),
])
def test_person_fields_are_normalised(ctx, field, raw, clean):
    data = {"name": "张三", field: raw} if field != "name" else {field: raw}
    if field in ("birth_date", "gender"):
        data.pop("id_number", None)
    cleaned, errors = services.clean_customer_data("person", data)
    assert errors == {} and cleaned[field] == clean


@pytest.mark.parametrize("field, raw", [
    ("id_number", ID_1[:-1] + "1"),  # check digit
    ("id_number", "110105199902300021"),  # 30 February
    ("id_number", "11010519491231002"),  # 17 characters
    ("id_number", "110105491231002"),  # 15-digit legacy number
    ("id_number", "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X"),  # Arabic-Indic digits
    ("phone", "12345"),
    ("phone", "138001380001"),
    ("phone", "+1 202 555 0143"),  # not a Chinese number
    ("email", "no-at-sign"),
    ("bank_account", "6222abc"),
    ("birth_date", "2999-01-01"),
    ("birth_date", "1990-13-01"),
    ("gender", "X"),
    ("name", "王\u202e五"),  # bidi control
    ("name", "王\x00五"),
    ("name", "王" * 101),
    ("notes", "x" * 2001),
])
def test_bad_person_values_are_refused_with_a_field_error(ctx, field, raw):
    data = {"name": "张三", field: raw} if field != "name" else {field: raw}
    _clean, errors = services.clean_customer_data("person", data)
    assert set(errors) == {field}


@pytest.mark.parametrize("field, raw, clean", [
    ("credit_code", "91110000600037341l", CREDIT),
    ("postcode", "１０００２０", "100020"),
    ("fax", "010 8888 6666", "+861088886666"),
    ("company_name", "  北京某某科技有限公司 ", "北京某某科技有限公司"),
    ("business_scope", "软件开发\n技术服务", "软件开发\n技术服务"),
])
def test_organisation_fields_are_normalised(ctx, field, raw, clean):
    cleaned, errors = services.clean_customer_data("org", {"company_name": "某某公司", field: raw})
    assert errors == {} and cleaned[field] == clean


@pytest.mark.parametrize("field, raw", [
    ("credit_code", CREDIT[:-1] + "M"), ("credit_code", "9111"), ("postcode", "10002"),
    ("company_name", "x" * 201),
])
def test_bad_organisation_values_are_refused(ctx, field, raw):
    _clean, errors = services.clean_customer_data("org", {"company_name": "某某公司", field: raw})
    assert set(errors) == {field}


def test_required_unknown_and_foreign_fields(ctx):
    assert set(services.clean_customer_data("person", {})[1]) == {"name"}
    assert set(services.clean_customer_data("org", {"company_name": " "})[1]) == {"company_name"}
    assert set(services.clean_customer_data("person", {"name": "甲", "password": "x"})[1]) == {"password"}
    assert set(services.clean_customer_data("person", {"name": "甲", "credit_code": CREDIT})[1]) == {"credit_code"}
    assert services.clean_customer_data("person", {"name": "甲", "credit_code": ""})[1] == {}
    assert set(services.clean_customer_data("alien", {"name": "甲"})[1]) == {"kind"}
    # editing: only what is given is checked
    assert services.clean_customer_data("person", {"phone": "13800138000"}, partial=True)[1] == {}


def test_birth_date_and_gender_come_from_the_id_number_and_must_agree(ctx):
    clean, errors = services.clean_customer_data("person", {"name": "甲", "id_number": ID_2})
    assert errors == {} and (clean["birth_date"], clean["gender"]) == ("1990-03-07", "M")
    _clean, errors = services.clean_customer_data("person", {"name": "甲", "id_number": ID_2,
                                                             "birth_date": "1990-03-08", "gender": "F"})
    assert set(errors) == {"birth_date", "gender"}


def test_errors_are_translated_messages(ctx):
    _clean, errors = services.clean_customer_data("person", {"name": "甲", "id_number": ID_1[:-1] + "1"})
    assert str(errors["id_number"])  # a lazy string renders in the current language


# --- create ------------------------------------------------------------------------------------------

@both_suites
def test_create_numbers_owns_indexes_and_audits_names_only(ctx):
    first = create(phone="13800138000", id_number=ID_1)
    second = create(owner="head1", kind="org", credit_code=CREDIT)
    year = datetime.date.today().year
    assert (first.number, second.number) == (f"KH-{year}-000001", f"KH-{year}-000002")
    assert first.owner_id == user("sales1").id and first.department_id == user("sales1").department_id
    assert first.subject_key_id is not None and second.subject_key_id is not None
    assert first.phone_bidx and first.id_number_bidx and first.name_bidx
    assert [(c.from_status, c.to_status) for c in first.status_changes] == [(None, "prospect")]
    entry = entries("customers.customer.created")[0]
    assert entry.details_dict["fields"] == ["birth_date", "gender", "id_number", "name", "phone"]
    for value in (ID_1, "张三", "13800138000", "8613800138000"):
        assert value not in entry.details
    assert first.completeness == quality.completeness(first)[0] == round(100 * 5 / 6)


def test_create_refuses_and_saves_nothing_on_any_error(ctx):
    with pytest.raises(services.InvalidData) as refused:
        services.create_customer(user("sales1"), {"kind": "person", "name": "甲", "phone": "123"})
    assert set(refused.value.errors) == {"phone"}
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_sensitive_data_needs_the_separate_consent(ctx):
    for consent in (None, {"purposes": ["service"], "channel": "paper"}):
        with pytest.raises(services.InvalidData) as refused:
            services.create_customer(user("sales1"), {"kind": "person", "name": "甲", "bank_account":
                                                      "6222021234567890123"}, consent=consent)
        assert {"bank_account", "consent_sensitive"} <= set(refused.value.errors)
        db.session.rollback()
    customer = create(bank_account="6222021234567890123")
    consent = customer.consents[0]
    assert consent.sensitive and consent.recorded_by == user("sales1").id and consent.notice_version


def test_owner_rules(ctx):
    with pytest.raises(services.InvalidData) as refused:
        services.create_customer(user("sales1"), {"kind": "person", "name": "甲"}, owner=user("sales1b"))
    assert set(refused.value.errors) == {"owner"}
    db.session.rollback()
    with pytest.raises(services.InvalidData):
        services.create_customer(user("head1"), {"kind": "person", "name": "甲"}, owner=user("sales2"))
    db.session.rollback()
    with pytest.raises(services.InvalidData):
        services.create_customer(user("admin1"), {"kind": "person", "name": "甲"})
    db.session.rollback()
    with pytest.raises(services.InvalidData) as refused:  # a command must name the owner
        services.create_customer("cli:root", {"kind": "person", "name": "甲"})
    assert set(refused.value.errors) == {"owner"}
    db.session.rollback()
    with pytest.raises(services.InvalidData) as refused:
        services.create_customer("cli:root", {"kind": "person", "name": "甲"}, owner=user("sales1"),
                                 department=user("sales2").department_id)
    assert set(refused.value.errors) == {"department"}
    db.session.rollback()
    customer = services.create_customer("cli:root", {"kind": "person", "name": "甲"}, owner=user("sales2").id,
                                        department=user("sales2").department_id)
    assert customer.owner_id == user("sales2").id and customer.department_id == user("sales2").department_id


# --- update and locking --------------------------------------------------------------------------------

def test_update_changes_given_fields_and_audits_their_names(ctx):
    customer = create(phone="13800138000")
    version = customer.version
    changed = services.update_customer(user("sales1"), customer, {"phone": "139 0013 9000", "name": "张三"},
                                       version)
    db.session.commit()
    assert changed == ["phone"] and customer.phone == "+8613900139000" and customer.version == version + 1
    entry = entries("customers.customer.updated")[-1]
    assert entry.details_dict["fields"] == ["phone"] and "13900139000" not in entry.details


def test_stale_version_is_refused_and_nothing_changes(ctx):
    customer = create(phone="13800138000")
    old = customer.version
    services.update_customer(user("head1"), customer, {"phone": "13900139000"}, old)
    db.session.commit()
    with pytest.raises(services.StaleEdit) as refused:
        services.update_customer(user("sales1"), customer, {"phone": "13700137000"}, old)
    assert refused.value.current_version == old + 1 and str(refused.value)
    db.session.rollback()
    assert db.session.get(Customer, customer.id).phone == "+8613900139000"


def test_a_concurrent_commit_between_load_and_save_is_refused(ctx):
    """The version check of the form passes, but another transaction saved meanwhile: the
    UPDATE ... WHERE version matches no row (StaleDataError) and nothing is overwritten."""
    customer = create(phone="13800138000")
    version = customer.version
    db.session.execute(update(Customer.__table__).where(Customer.__table__.c.id == customer.id)
                       .values(version=version + 1))  # what a colleague's save does to the row
    with pytest.raises(services.StaleEdit):
        services.update_customer(user("sales1"), customer, {"phone": "13700137000"}, version)
    db.session.rollback()
    assert db.session.get(Customer, customer.id).phone == "+8613800138000"


def test_status_cannot_be_set_through_update(ctx):
    customer = create()
    with pytest.raises(services.InvalidData) as refused:
        services.update_customer(user("sales1"), customer, {"status": "lost"}, customer.version)
    assert set(refused.value.errors) == {"status"}


def test_only_a_head_reassigns(ctx):
    customer = create()
    with pytest.raises(services.InvalidData):
        services.update_customer(user("sales1"), customer, {}, customer.version, owner=user("sales1b"))
    db.session.rollback()
    changed = services.update_customer(user("head1"), customer, {}, customer.version, owner=user("sales1b"))
    assert changed == ["owner"] and customer.owner_id == user("sales1b").id


# --- status --------------------------------------------------------------------------------------------

def test_status_changes_keep_their_history(ctx):
    customer = create()
    with pytest.raises(services.InvalidData) as refused:
        services.change_status(user("sales1"), customer, "lost", "  ")
    assert set(refused.value.errors) == {"reason"}
    with pytest.raises(services.InvalidData):
        services.change_status(user("sales1"), customer, "prospect")
    services.change_status(user("sales1"), customer, "active")
    services.change_status(user("sales1"), customer, "lost", "价格原因")
    db.session.commit()
    rows = db.session.scalars(select(StatusChange).where(StatusChange.customer_id == customer.id)
                              .order_by(StatusChange.id)).all()
    assert [(r.from_status, r.to_status, r.reason) for r in rows] == [
        (None, "prospect", ""), ("prospect", "active", ""), ("active", "lost", "价格原因")]
    assert customer.status == "lost"
    assert [e.details_dict["to_status"] for e in entries("customers.customer.status_changed")] == ["active", "lost"]


# --- reveal --------------------------------------------------------------------------------------------

def test_reveal_rules(ctx):
    customer = create(id_number=ID_1, home_address="北京市朝阳区建国路1号")
    with pytest.raises(services.NotAllowed) as refused:
        services.reveal(user("sales1"), customer, "id_number")
    assert refused.value.permission == "customers.reveal_l2"
    with pytest.raises(services.InvalidData):
        services.reveal(user("head1"), customer, "home_address")
    with pytest.raises(services.InvalidData):
        services.reveal(user("head1"), customer, "phone")  # not masked: nothing to reveal
    assert services.reveal(user("head1"), customer, "id_number") == ID_1
    assert services.reveal(user("head1"), customer, "home_address", " 核对 ") == "北京市朝阳区建国路1号"
    revealed = entries("customers.field.revealed")
    assert [(e.details_dict["field"], e.details_dict["reason"]) for e in revealed] == [
        ("id_number", ""), ("home_address", "核对")]
    assert all(ID_1 not in e.details and "建国路" not in e.details for e in revealed)


# --- consent -------------------------------------------------------------------------------------------

def test_consent_withdrawal_stops_processing_that_needs_it(ctx):
    customer = create(consent={"purposes": ["service", "marketing"], "channel": "online"})
    assert services.has_consent(customer, "marketing") and not services.has_consent(customer, "marketing",
                                                                                   sensitive=True)
    assert services.require_consent(customer, "marketing").id == customer.consents[0].id
    with pytest.raises(services.ConsentMissing) as missing:
        services.require_consent(customer, "analysis")
    assert customer.number in missing.value.reason
    with pytest.raises(services.InvalidData):
        services.withdraw_consent(user("sales1"), customer.consents[0], "")
    services.withdraw_consent(user("sales1"), customer.consents[0], "客户要求")
    db.session.commit()
    with pytest.raises(services.ConsentMissing) as withdrawn:
        services.require_consent(customer, "marketing")
    assert datetime.date.today().isoformat() in withdrawn.value.reason
    with pytest.raises(services.InvalidData):  # once only
        services.withdraw_consent(user("sales1"), customer.consents[0], "again")
    with pytest.raises(ValueError):
        services.has_consent(customer, "nonsense")
    consent = db.session.get(Consent, customer.consents[0].id)
    assert consent.withdrawn_by == user("sales1").id and consent.withdraw_reason == "客户要求"


@both_suites
def test_withdrawing_the_last_separate_consent_erases_sensitive_fields(ctx):
    customer = create(id_number=ID_1, bank_account="6222021234567890123", phone="13800138000")
    erased = services.withdraw_consent(user("sales1"), customer.consents[0], "客户撤回单独同意")
    db.session.commit()
    customer = db.session.get(Customer, customer.id)
    assert sorted(erased) == ["bank_account", "id_number"]
    assert customer.id_number is None and customer.bank_account is None and customer.id_number_bidx is None
    assert customer.phone == "+8613800138000"  # only the sensitive data goes
    assert entries("customers.customer.sensitive_erased")[-1].details_dict["fields"] == ["id_number", "bank_account"]


def test_record_consent_validates(ctx):
    customer = create(consent=None)
    with pytest.raises(services.InvalidData) as refused:
        services.record_consent(user("sales1"), customer, [], "", "carrier-pigeon")
    assert set(refused.value.errors) == {"purposes", "channel"}
    consent = services.record_consent(user("sales1"), customer, ["analysis"], "消费记录", "phone", False, "v2")
    assert consent.notice_version == "v2" and services.has_consent(customer, "analysis")
    assert entries("customers.consent.recorded")[-1].details_dict["purposes"] == ["analysis"]


# --- contacts, records, sharing --------------------------------------------------------------------------

@both_suites
def test_contacts_are_encrypted_under_the_organisation_key(ctx):
    org = create(kind="org")
    contact = services.add_contact(user("sales1"), org, {"name": "钱七", "phone": "13700137000",
                                                         "email": "qian@example.com", "title": "经理"})
    db.session.commit()
    raw = db.session.execute(text("SELECT name_ct, phone_ct FROM customers_contact")).one()
    assert raw.name_ct.startswith(crypto.suite().prefix) and "钱七" not in raw.name_ct
    assert contact.phone == "+8613700137000"
    with pytest.raises(services.InvalidData):
        services.add_contact(user("sales1"), create(), {"name": "x"})


def test_transactions_are_recorded_and_summed(ctx):
    customer = create()
    services.add_transaction(user("sales1"), customer, {"kind": "transaction", "occurred_on": "2024-01-05",
                                                        "amount": "100.10", "product": "A", "notes": "备注"})
    with pytest.raises(services.InvalidData) as negative:  # money paid back is a refund, not a negative sale
        services.add_transaction(user("sales1"), customer, {"kind": "transaction", "occurred_on": "2024-02-05",
                                                            "amount": "-20", "product": "退款"})
    assert set(negative.value.errors) == {"amount"}
    services.add_transaction(user("sales1"), customer, {"kind": "refund", "occurred_on": "2024-02-05",
                                                        "amount": "20", "product": "退款"})
    services.add_transaction(user("sales1"), customer, {"kind": "service", "occurred_on": "2024-03-05",
                                                        "product": "维修"})
    db.session.commit()
    assert api.transaction_totals([customer.id]) == {customer.id: (1, Decimal("80.10"))}  # net of the refund
    assert api.transaction_totals([customer.id], kind="service")[customer.id][0] == 1
    page = services.transactions(customer, limit=2)
    assert [r.product for r in page] == ["维修", "退款"]
    rest = services.transactions(customer, before=(page[-1].occurred_on, page[-1].id))
    assert [r.product for r in rest] == ["A"] and rest[0].notes == "备注"
    raw = db.session.execute(text("SELECT notes_ct FROM customers_transaction WHERE notes_ct IS NOT NULL")).scalar()
    assert "备注" not in raw
    _clean, errors = services.clean_transaction_data({"kind": "transaction", "occurred_on": "1980-01-01",
                                                      "amount": "1e400", "product": "x" * 201})
    assert set(errors) == {"occurred_on", "amount", "product"}


def test_sharing_stays_within_the_department(ctx):
    customer = create()
    with pytest.raises(services.InvalidData):
        services.share_customer(user("sales1"), customer, user("sales2"))
    with pytest.raises(services.NotAllowed):
        services.share_customer(user("sales1b"), customer, user("sales1b"))
    share = services.share_customer(user("sales1"), customer, user("sales1b"))
    db.session.commit()
    assert customer.id in {c.id for c in db.session.scalars(api.scoped_customers(user("sales1b")))}
    with pytest.raises(services.InvalidData):  # not twice
        services.share_customer(user("head1"), customer, user("sales1b"))
    services.unshare_customer(user("head1"), share)
    db.session.commit()
    assert customer.id not in {c.id for c in db.session.scalars(api.scoped_customers(user("sales1b")))}


def test_own_timeline_events(ctx):
    customer = create(consent={"purposes": ["marketing"], "channel": "online"})
    services.change_status(user("sales1"), customer, "active")
    services.add_transaction(user("sales1"), customer, {"kind": "transaction", "occurred_on": "2024-01-05",
                                                        "amount": "1", "product": "A"})
    events = sorted(services.timeline_events(customer), key=services.sort_key, reverse=True)
    assert len(events) == 4 and events[-1].at == datetime.date(2024, 1, 5)
    assert all(e.module == "customers" for e in events)


# --- storage: no plaintext, key rotation -----------------------------------------------------------------

CANARIES = {"id_number": ID_1, "phone": "13800138000", "name": "测试甲𠮷",
            "home_address": "北京市朝阳区金盏乡测试路九十九号", "bank_account": "6222029988776655443",
            "emergency_contact": "金丝雀联系人"}


def _database_files(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    path = Path(url.removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def _canary_bytes():
    for value in CANARIES.values():
        yield value, value.encode("utf-8")
        yield value, value.encode("utf-16-le")


@both_suites
def test_no_personal_field_is_stored_in_plaintext(app, ctx):
    customer = create(consent=SEPARATE, **CANARIES)
    services.add_contact(user("sales1"), create(kind="org"), {"name": CANARIES["name"],
                                                              "phone": CANARIES["phone"]})
    services.reveal(user("head1"), customer, "id_number")
    db.session.commit()
    assert customer.id_number == ID_1  # it is there, only encrypted
    if os.environ.get("KEHU_TEST_DATABASE_URL"):
        found = []
        for table in [t for t in inspect(db.engine).get_table_names() if t.startswith("customers_")] + [
                "core_audit_entry", "core_subject_key"]:
            columns = [c["name"] for c in inspect(db.engine).get_columns(table)
                       if isinstance(c["type"], (String, Text))]
            for row in db.session.execute(select(*[db.column(c) for c in columns]).select_from(db.table(table))):
                for value in row:
                    found += [(table, name) for name, canary in CANARIES.items() if value and canary in value]
        assert found == []
        return
    files = _database_files(app)
    assert files and files[0].stat().st_size > 0
    for path in files:
        data = path.read_bytes()
        for value, encoded in _canary_bytes():
            assert encoded not in data, f"{value!r} in {path.name}"


@both_suites
def test_keys_rotate_keeps_search_and_decryption(app, ctx, runner, client, login_as, tmp_path):
    customer = create(phone="13800138000", id_number=ID_1, name="测试甲𠮷")
    org = create(kind="org")
    contact = services.add_contact(user("sales1"), org, {"name": "钱七", "phone": "13700137000"})
    db.session.commit()
    customer_id, org_id, contact_id, version = customer.id, org.id, contact.id, customer.version
    key_file = Path(app.config["MASTER_KEY_FILE"])
    old_copy = tmp_path / "old-master.key"
    shutil.copy(key_file, old_copy)
    os.chmod(old_copy, 0o600)
    old_digest = db.session.execute(text("SELECT phone_bidx FROM customers_customer WHERE id = :i"),
                                    {"i": customer_id}).scalar()
    db.session.commit()  # end our transaction: SQLite writers take the lock at BEGIN

    result = runner("keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "customers_customer_reindexed=2" in result.output and "customers_contact_reindexed=1" in result.output

    db.session.expire_all()
    customer = db.session.get(Customer, customer_id)
    assert (customer.name, customer.phone, customer.id_number) == ("测试甲𠮷", "+8613800138000", ID_1)
    assert customer.version == version  # open edit forms stay valid
    assert customer.phone_bidx != old_digest and customer.phone_bidx.startswith("2:")
    assert db.session.get(Contact, contact_id).name == "钱七"
    old = crypto.Keyring.load(old_copy)
    with pytest.raises(crypto.DecryptionError):
        old.unwrap(customer.subject_key.kek_id, customer.subject_key.wrapped)
    db.session.commit()

    browser = login_as(client, "sales1")
    for q in ("13800138000", ID_1, "测试甲𠮷", "13700137000", "钱七"):
        html = browser.get("/customers/", query_string={"q": q}).get_data(as_text=True)
        ids = {int(i) for i in re.findall(r'<tr id="customer-(\d+)"', html)}
        assert ids == ({org_id} if q in ("13700137000", "钱七") else {customer_id}), q
    assert "测试甲𠮷" in browser.get(f"/customers/{customer_id}").get_data(as_text=True)


def test_reindex_leaves_indexes_unchanged_without_a_new_key(ctx):
    customer = create(phone="13800138000", id_number=ID_1)
    before = (customer.phone_bidx, customer.id_number_bidx, customer.name_bidx, customer.version)
    counts = services.reindex(batch=1)
    db.session.commit()
    customer = db.session.get(Customer, customer.id)
    assert counts == {"customers_customer_reindexed": 1, "customers_contact_reindexed": 0,
                      "customers_customer_partial_reindexed": 1}
    assert (customer.phone_bidx, customer.id_number_bidx, customer.name_bidx, customer.version) == before


def test_transaction_rows_of_a_customer_follow_it(ctx):
    customer = create()
    services.add_transaction(user("sales1"), customer, {"kind": "service", "occurred_on": "2024-01-01",
                                                        "product": "x"})
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Transaction)
                             .where(Transaction.customer_id == customer.id)) == 1
