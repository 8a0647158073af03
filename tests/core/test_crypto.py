"""Field encryption, envelope keys, blind indexes and rotation (security.md CR-01..CR-05, IV-03)."""
import base64
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import Babel

from core import crypto
from core.crypto import DecryptionError, Keyring, KeyringError, SubjectKey
from core.db import db

AAD = "customers_person|id_number|1"


@pytest.fixture
def app(tmp_path):
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'kehu.db'}",
                      MASTER_KEY_FILE=str(tmp_path / "master.key"))
    Keyring.generate(app.config["MASTER_KEY_FILE"])
    db.init_app(app)
    crypto.init_app(app)
    Babel(app)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


def key_file(app):
    return app.config["MASTER_KEY_FILE"]


def file_doc(path):
    return json.loads(Path(path).read_text())


def reload_subject_key(subject_key_id):
    """A fresh instance from the database, without the cached data key."""
    db.session.remove()
    return db.session.get(SubjectKey, subject_key_id)


def flip(token, position):
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[position] ^= 0x01
    return "v1:" + base64.urlsafe_b64encode(bytes(raw)).decode()


# --- ciphertext properties (CR-02, IV-03) ------------------------------------------------------


def test_equal_plaintexts_give_different_ciphertexts(app):
    sk = crypto.new_subject_key()
    first = crypto.encrypt(sk, "11010519491231002X", AAD)
    second = crypto.encrypt(sk, "11010519491231002X", AAD)
    assert first != second
    assert first.startswith("v1:") and first.isascii()
    assert "11010519491231002X" not in first
    assert crypto.decrypt(sk, first, AAD) == crypto.decrypt(sk, second, AAD) == "11010519491231002X"


@pytest.mark.parametrize("plaintext", [
    "服务太差***", "北京市朝阳区某路3号*", "trailing spaces   ", "   leading", "",
    "👨\u200d👩\u200d👧 emoji", "𠮷野家", "e\u0301 (NFD stays NFD)", "a\u202eb",
])
def test_round_trip_is_byte_identical(app, plaintext):
    sk = crypto.new_subject_key()
    token = crypto.encrypt(sk, plaintext, AAD)
    db.session.commit()
    fresh = reload_subject_key(sk.id)  # decrypt through unwrap, not the cached key
    assert crypto.decrypt(fresh, token, AAD).encode() == plaintext.encode()


def test_tampered_truncated_or_moved_ciphertext_is_refused(app):
    owner, other = crypto.new_subject_key(), crypto.new_subject_key()
    token = crypto.encrypt(owner, "服务太差***", AAD)
    raw_len = len(base64.urlsafe_b64decode(token[3:]))
    bad = [flip(token, i) for i in (0, 11, 12, raw_len - 17, raw_len - 1)]  # nonce, body, tag
    bad += [token[:-1], token[:-4], token[:10], "v1:", "v1:!!!!", "v2:" + token[3:], "", "服务太差***"]
    for candidate in bad:
        with pytest.raises(DecryptionError):
            crypto.decrypt(owner, candidate, AAD)
    with pytest.raises(DecryptionError):  # another column of the same row
        crypto.decrypt(owner, token, "customers_person|bank_account|1")
    with pytest.raises(DecryptionError):  # the same column of another row
        crypto.decrypt(owner, token, "customers_person|id_number|2")
    with pytest.raises(DecryptionError):  # another customer's data key
        crypto.decrypt(other, token, AAD)


def test_encrypt_requires_text_and_aad(app):
    sk = crypto.new_subject_key()
    with pytest.raises(ValueError):
        crypto.encrypt(sk, "x", "")
    with pytest.raises(TypeError):
        crypto.encrypt(sk, None, AAD)


def test_unknown_or_tampered_wrapped_key_is_refused(app):
    sk = crypto.new_subject_key()
    token = crypto.encrypt(sk, "13800138000", AAD)
    db.session.commit()
    fresh = reload_subject_key(sk.id)
    fresh.kek_id = "99"
    with pytest.raises(DecryptionError, match="99"):
        crypto.decrypt(fresh, token, AAD)
    fresh = reload_subject_key(sk.id)
    fresh.wrapped = fresh.wrapped[:-1] + bytes([fresh.wrapped[-1] ^ 1])
    with pytest.raises(DecryptionError):
        crypto.decrypt(fresh, token, AAD)


def test_data_key_is_unwrapped_once_per_instance(app, monkeypatch):
    sk = crypto.new_subject_key()
    token = crypto.encrypt(sk, "x", AAD)
    db.session.commit()
    fresh = reload_subject_key(sk.id)
    calls = []
    real_unwrap = Keyring.unwrap
    monkeypatch.setattr(Keyring, "unwrap", lambda self, *a: calls.append(a) or real_unwrap(self, *a))
    for _ in range(3):
        assert crypto.decrypt(fresh, token, AAD) == "x"
    assert len(calls) == 1


def test_database_holds_no_data_key_in_clear(app):
    sk = crypto.new_subject_key()
    crypto.encrypt(sk, "x", AAD)
    db.session.commit()
    db.engine.dispose()
    raw = Path(db.engine.url.database).read_bytes()
    assert sk.wrapped in raw  # sanity: we are reading the right file
    assert sk._dek not in raw


# --- the key file (CR-03, CR-05) ---------------------------------------------------------------


def test_generated_key_file_is_private_and_never_overwritten(app):
    path = key_file(app)
    assert os.stat(path).st_mode & 0o777 == 0o600
    before = Path(path).read_bytes()
    with pytest.raises(KeyringError, match="already exists"):
        Keyring.generate(path)
    assert Path(path).read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(app, mode):
    os.chmod(key_file(app), mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(key_file(app))


def test_missing_key_file_stops_the_app_with_one_line(tmp_path):
    missing = tmp_path / "master.key"
    with pytest.raises(KeyringError) as info:
        Keyring.load(missing)
    assert str(info.value) == (f"master key file {missing} is missing: run `kehu init` "
                               "or set KEHU_MASTER_KEY_FILE")
    app = Flask(__name__)
    app.config["MASTER_KEY_FILE"] = str(missing)
    with pytest.raises(KeyringError):
        crypto.init_app(app)
    assert "kehu.keyring" not in app.extensions
    assert not missing.exists()  # no default key appeared


@pytest.mark.parametrize("damage", [
    lambda doc: "{not json",
    lambda doc: json.dumps({**doc, "audit": base64.b64encode(b"short").decode()}),
    lambda doc: json.dumps({**doc, "kek": {"primary": 7, "keys": doc["kek"]["keys"]}}),
    lambda doc: json.dumps({**doc, "audit": doc["kek"]["keys"]["1"]}),  # a key used twice
    lambda doc: json.dumps({**doc, "version": 99}),
    lambda doc: json.dumps({k: v for k, v in doc.items() if k != "index"}),
])
def test_malformed_key_file_is_refused(app, damage):
    path = key_file(app)
    text = damage(file_doc(path))
    Path(path).write_text(text)
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    assert "\n" not in str(info.value)


def test_four_distinct_keys(app, tmp_path):
    secret_path = tmp_path / "secret.key"
    crypto.generate_secret_key_file(secret_path)
    assert os.stat(secret_path).st_mode & 0o777 == 0o600
    with pytest.raises(KeyringError, match="already exists"):
        crypto.generate_secret_key_file(secret_path)
    secret = bytes.fromhex(secret_path.read_text().strip())
    assert len(secret) == 64
    doc = file_doc(key_file(app))
    kek = base64.b64decode(doc["kek"]["keys"]["1"])
    index = base64.b64decode(doc["index"]["keys"]["1"])
    audit = base64.b64decode(doc["audit"])
    assert crypto.keyring().audit_key == audit
    assert len({kek, index, audit, secret}) == 4
    assert all(len(k) == 32 for k in (kek, index, audit))
    assert secret.hex() not in Path(key_file(app)).read_text()


# --- blind indexes (CR-01, CR-05) --------------------------------------------------------------


def test_blind_index_is_keyed_truncated_and_prefixed(app):
    value, domain = "+8613800138000", "customers.phone"
    digest = crypto.blind_index(domain, value)
    key_id, hexpart = digest.split(":")
    assert key_id == "1" and len(hexpart) == 16
    assert hexpart not in (hashlib.sha256(value.encode()).hexdigest()[:16],
                           hashlib.sha256(f"{domain}\x00{value}".encode()).hexdigest()[:16])
    index_key = base64.b64decode(file_doc(key_file(app))["index"]["keys"]["1"])
    expected = hmac.new(index_key, f"{domain}\x00{value}".encode(), hashlib.sha256).hexdigest()[:16]
    assert hexpart == expected
    assert crypto.blind_index(domain, value) == digest  # deterministic: searchable
    assert crypto.blind_index("customers.id_number", value) != digest  # domains separated
    assert crypto.blind_index_candidates(domain, value) == [digest]


# --- rotation (CR-04) --------------------------------------------------------------------------


def seed(count=3):
    """Subjects with an encrypted phone each, and a blind-index table kept in a dict."""
    rows = {}
    for n in range(count):
        sk = crypto.new_subject_key()
        db.session.flush()
        phone = f"+86138001380{n:02d}"
        aad = f"customers_person|phone|{sk.id}"
        rows[sk.id] = {"phone": phone, "aad": aad, "token": crypto.encrypt(sk, phone, aad),
                       "bidx": crypto.blind_index("customers.phone", phone)}
    db.session.commit()
    return rows


def reindexer(rows):
    def reindex():
        for row in rows.values():
            row["bidx"] = crypto.blind_index("customers.phone", row["phone"])
        return {"customers.phone": len(rows)}
    return reindex


def assert_all_readable(rows):
    db.session.remove()
    for sk_id, row in rows.items():
        assert crypto.decrypt(db.session.get(SubjectKey, sk_id), row["token"], row["aad"]) == row["phone"]


def test_rotation_rewraps_reindexes_and_retires_old_keys(app, tmp_path):
    rows = seed()
    old_copy = tmp_path / "old-master.key"
    shutil.copy2(key_file(app), old_copy)
    old_index = {sk_id: row["bidx"] for sk_id, row in rows.items()}

    counts = crypto.rotate([reindexer(rows)])

    assert counts["subject_keys"] == 3 and counts["customers.phone"] == 3
    assert counts["kek_id"] == "2" and counts["index_key_id"] == "2" and counts["resumed"] is False
    assert_all_readable(rows)
    for sk_id, row in rows.items():
        assert row["bidx"].startswith("2:") and row["bidx"] != old_index[sk_id]
        assert crypto.blind_index_candidates("customers.phone", row["phone"]) == [row["bidx"]]
    doc = file_doc(key_file(app))
    assert list(doc["kek"]["keys"]) == ["2"] and list(doc["index"]["keys"]) == ["2"]
    assert os.stat(key_file(app)).st_mode & 0o777 == 0o600
    old_ring = Keyring.load(old_copy)
    for subject_key in db.session.scalars(db.select(SubjectKey)):
        assert subject_key.kek_id == "2"
        with pytest.raises(DecryptionError):
            old_ring.unwrap(subject_key.kek_id, subject_key.wrapped)
        with pytest.raises(DecryptionError):  # even when told to use the old key id
            old_ring.unwrap("1", subject_key.wrapped)
    # the audit key is not rotated: the chain written so far must stay verifiable
    assert crypto.keyring().audit_key == old_ring.audit_key


def test_rotation_resumes_after_a_crash_in_the_transaction(app):
    rows = seed()
    old_index = {sk_id: row["bidx"] for sk_id, row in rows.items()}

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        crypto.rotate([reindexer(rows), crash])
    # keys of both generations are on disk; nothing was rewrapped; everything still reads
    fresh = Keyring.load(key_file(app))
    assert fresh.rotation_pending and fresh.kek_id == "2"
    assert {sk.kek_id for sk in db.session.scalars(db.select(SubjectKey))} == {"1"}
    assert_all_readable(rows)
    for sk_id, row in rows.items():  # search matches rows indexed under either key
        assert old_index[sk_id] in crypto.blind_index_candidates("customers.phone", row["phone"])

    counts = crypto.rotate([reindexer(rows)])

    assert counts["resumed"] is True and counts["subject_keys"] == 3 and counts["kek_id"] == "2"
    assert_all_readable(rows)
    assert Keyring.load(key_file(app)).kek_ids == ["2"]
    assert all(row["bidx"].startswith("2:") for row in rows.values())


def test_rotation_resumes_after_a_crash_before_retiring_old_keys(app, monkeypatch):
    rows = seed()
    monkeypatch.setattr(Keyring, "drop_old_keys", lambda self: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        crypto.rotate([reindexer(rows)])
    monkeypatch.undo()
    assert Keyring.load(key_file(app)).kek_ids == ["1", "2"]
    assert_all_readable(rows)

    counts = crypto.rotate([reindexer(rows)])

    assert counts["resumed"] is True and counts["subject_keys"] == 0
    assert Keyring.load(key_file(app)).kek_ids == ["2"]
    assert_all_readable(rows)


def test_a_second_rotation_works_too(app):
    rows = seed(2)
    crypto.rotate([reindexer(rows)])
    counts = crypto.rotate([reindexer(rows)])
    assert counts["kek_id"] == "3" and counts["subject_keys"] == 2
    assert_all_readable(rows)
    assert all(row["bidx"].startswith("3:") for row in rows.values())


def test_process_picks_up_a_rotation_made_by_another_process(app):
    rows = seed(1)
    other = Keyring.load(key_file(app))  # `kehu keys rotate` in another process
    other.add_primary_keys()
    other.save()
    assert crypto.keyring().kek_id == "2"
    assert crypto.new_subject_key().kek_id == "2"
    assert_all_readable(rows)


# --- crypto-shredding --------------------------------------------------------------------------


def test_destroyed_subject_key_makes_data_unreadable(app):
    keep, doomed = crypto.new_subject_key(), crypto.new_subject_key()
    db.session.flush()
    token = crypto.encrypt(doomed, "11010519491231002X", AAD)
    kept = crypto.encrypt(keep, "13800138000", AAD)
    keep_id, doomed_id = keep.id, doomed.id
    db.session.commit()

    crypto.destroy_subject_key(doomed)
    with pytest.raises(DecryptionError):  # even through the instance that held the key
        crypto.decrypt(doomed, token, AAD)
    db.session.commit()
    with pytest.raises(DecryptionError):
        crypto.decrypt(doomed, token, AAD)

    db.session.remove()
    assert db.session.get(SubjectKey, doomed_id) is None
    assert crypto.decrypt(db.session.get(SubjectKey, keep_id), kept, AAD) == "13800138000"
    replacement = crypto.new_subject_key()
    db.session.commit()
    assert replacement.id > doomed_id  # ids are never reused


def test_file_encryption_round_trips_and_detects_tampering(app):
    from core import crypto
    with app.app_context():
        key = crypto.new_subject_key()
        data = bytes(range(256)) * 40
        blob = crypto.encrypt_bytes(key, data, "archives_attachment|content|x")
        assert len(blob) < len(data) + 40 and data not in blob
        assert crypto.decrypt_bytes(key, blob, "archives_attachment|content|x") == data
        for bad in (blob[:-1], blob[:5] + bytes([blob[5] ^ 1]) + blob[6:]):
            with pytest.raises(crypto.DecryptionError):
                crypto.decrypt_bytes(key, bad, "archives_attachment|content|x")
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt_bytes(key, blob, "archives_attachment|content|y")
