"""Field encryption, envelope keys, blind indexes and rotation (security.md CR-01..CR-05, IV-03)."""
import base64
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from flask import Flask
from flask_babel import Babel

from core import crypto
from core.crypto import DecryptionError, Keyring, KeyringError, SubjectKey
from core.db import db

AAD = "customers_person|id_number|1"


@pytest.fixture(params=sorted(crypto.SUITES))
def crypto_suite(request):
    """Every test with an app runs under both cipher suites."""
    return request.param


@pytest.fixture
def app(tmp_path, crypto_suite):
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'kehu.db'}",
                      MASTER_KEY_FILE=str(tmp_path / "master.key"))
    Keyring.generate(app.config["MASTER_KEY_FILE"], suite=crypto_suite)
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


def prefix_of(token):
    return token[:token.index(":") + 1]


def flip(token, position):
    prefix = prefix_of(token)
    raw = bytearray(base64.urlsafe_b64decode(token[len(prefix):]))
    raw[position] ^= 0x01
    return prefix + base64.urlsafe_b64encode(bytes(raw)).decode()


# --- ciphertext properties (CR-02, IV-03) ------------------------------------------------------


def test_equal_plaintexts_give_different_ciphertexts(app, crypto_suite):
    sk = crypto.new_subject_key()
    first = crypto.encrypt(sk, "11010519491231002X", AAD)
    second = crypto.encrypt(sk, "11010519491231002X", AAD)
    assert first != second
    assert first.startswith({"aes": "v1:", "sm": "sm1:"}[crypto_suite]) and first.isascii()
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
    prefix = prefix_of(token)
    raw_len = len(base64.urlsafe_b64decode(token[len(prefix):]))
    bad = [flip(token, i) for i in (0, 11, 12, raw_len - 17, raw_len - 1)]  # nonce, body, tag
    bad += [token[:-1], token[:-4], token[:10], prefix, prefix + "!!!!", "v2:" + token[len(prefix):],
            "", "服务太差***"]
    other_prefix = "sm1:" if prefix == "v1:" else "v1:"  # the same bytes read as the other cipher
    bad.append(other_prefix + token[len(prefix):])
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


def test_four_distinct_keys(app, tmp_path, crypto_suite):
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
    assert len(kek) == {"aes": 32, "sm": 16}[crypto_suite]  # AES-256 or SM4 key-encryption key
    assert all(len(k) == 32 for k in (index, audit))
    assert secret.hex() not in Path(key_file(app)).read_text()


# --- blind indexes (CR-01, CR-05) --------------------------------------------------------------


def test_blind_index_is_keyed_truncated_and_prefixed(app, crypto_suite):
    value, domain = "+8613800138000", "customers.phone"
    digest = crypto.blind_index(domain, value)
    key_id, hexpart = digest.split(":")
    assert key_id == "1" and len(hexpart) == 16
    assert hexpart not in (hashlib.sha256(value.encode()).hexdigest()[:16],
                           hashlib.sha256(f"{domain}\x00{value}".encode()).hexdigest()[:16])
    index_key = base64.b64decode(file_doc(key_file(app))["index"]["keys"]["1"])
    expected = hmac_hex(crypto_suite, index_key, f"{domain}\x00{value}".encode())[:16]
    assert hexpart == expected
    assert crypto.blind_index(domain, value) == digest  # deterministic: searchable
    assert crypto.blind_index("customers.id_number", value) != digest  # domains separated
    assert crypto.blind_index_candidates(domain, value) == [digest]


def hmac_hex(suite, key, message):
    """HMAC-SHA256 or HMAC-SM3, computed here independently of core.crypto."""
    if suite == "aes":
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    mac = HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize().hex()


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


def test_a_keyring_that_drops_an_old_kek_keeps_nothing_of_it_to_unwrap_with(tmp_path, crypto_suite):
    """The keyring keeps an opener per KEK it unwrapped with (set up once); dropping the old keys
    drops their openers too: a data key wrapped under the old KEK no longer opens."""
    ring = Keyring.generate(tmp_path / "master.key", suite=crypto_suite)
    dek = os.urandom(32)
    old_kek, wrapped = ring.wrap(dek)
    assert ring.unwrap(old_kek, wrapped) == dek == ring.unwrap(old_kek, wrapped)
    ring.add_primary_keys()
    new_kek, rewrapped = ring.wrap(dek)
    assert ring.unwrap(new_kek, rewrapped) == dek and new_kek != old_kek
    ring.drop_old_keys()
    with pytest.raises(DecryptionError, match="does not hold"):
        ring.unwrap(old_kek, wrapped)
    assert ring.kek_ids == [new_kek]
    assert ring.unwrap(new_kek, rewrapped) == dek
    # the old KEK's opener is gone (compared, not printed: they are keys)
    assert [key == ring._keks[int(new_kek)] for _suite, key in ring._kek_openers] == [True]


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
    assert crypto.keyring().kek_id == "1"  # the file is looked at once per request or command
    with app.app_context():  # the next request
        assert crypto.keyring().kek_id == "2"
        assert crypto.new_subject_key().kek_id == "2"
        db.session.rollback()
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


# --- cipher suites: AES-256-GCM / HMAC-SHA256 and 国密 SM4-GCM / HMAC-SM3 ---------------------------


def test_suite_is_recorded_with_the_keys_and_exposed(app, crypto_suite):
    doc = file_doc(key_file(app))
    assert doc["version"] == 2 and doc["suite"] == crypto_suite
    assert doc["kek"]["suites"] == {"1": crypto_suite} and doc["index"]["suites"] == {"1": crypto_suite}
    assert doc["audit_mac"] == [{"since": 1, "suite": crypto_suite}]
    suite = crypto.suite()
    assert suite.name == crypto_suite
    assert suite.label == {"aes": "AES-256-GCM + HMAC-SHA256", "sm": "国密 SM4-GCM + HMAC-SM3"}[crypto_suite]
    key = crypto.new_subject_key()
    blob = crypto.encrypt_bytes(key, b"scan", "archives_attachment|content|x")
    assert blob.startswith({"aes": b"kehu1", "sm": b"kesm1"}[crypto_suite])


def test_sm4_gcm_is_really_sm4_under_a_key_derived_with_sm3(app, crypto_suite):
    """Decrypt what core wrote with an independent SM4-GCM (or AES-GCM) implementation call."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    sk = crypto.new_subject_key()
    token = crypto.encrypt(sk, "13800138000", AAD)
    raw = base64.urlsafe_b64decode(token[len(prefix_of(token)):])
    nonce, body, tag = raw[:12], raw[12:-16], raw[-16:]
    if crypto_suite == "aes":
        plain = AESGCM(sk._dek).decrypt(nonce, body + tag, AAD.encode())
    else:
        key = bytes.fromhex(hmac_hex("sm", sk._dek, b"kehu-sm4-gcm"))[:16]
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(AAD.encode())
        plain = decryptor.update(body) + decryptor.finalize()
    assert plain == b"13800138000"
    # the wrapped data key, too, is under the suite's cipher with the KEK of the key file
    kek = base64.b64decode(file_doc(key_file(app))["kek"]["keys"]["1"])
    wrapped = sk.wrapped
    if crypto_suite == "aes":
        dek = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"kehu-dek|1")
    else:
        decryptor = Cipher(algorithms.SM4(kek), modes.GCM(wrapped[:12], wrapped[-16:])).decryptor()
        decryptor.authenticate_additional_data(b"kehu-dek|1")
        dek = decryptor.update(wrapped[12:-16]) + decryptor.finalize()
    assert dek == sk._dek


def test_version_1_key_file_still_loads_and_is_aes(tmp_path):
    path = tmp_path / "old.key"
    keys = [base64.b64encode(os.urandom(32)).decode() for _ in range(3)]
    path.write_text(json.dumps({"format": "kehu-keyring", "version": 1,
                                "kek": {"primary": 1, "keys": {"1": keys[0]}},
                                "index": {"primary": 1, "keys": {"1": keys[1]}}, "audit": keys[2]}))
    os.chmod(path, 0o600)
    ring = Keyring.load(path)
    assert ring.suite == "aes" and ring.audit_macs == [(1, "aes")] and ring.kek_ids == ["1"]
    _, wrapped = ring.wrap(b"k" * 32)
    assert ring.unwrap("1", wrapped) == b"k" * 32
    ring.save()  # written back in the current format, same keys
    doc = file_doc(path)
    assert doc["version"] == 2 and doc["suite"] == "aes" and doc["kek"]["keys"] == {"1": keys[0]}
    assert Keyring.load(path).unwrap("1", wrapped) == b"k" * 32


@pytest.mark.parametrize("damage", [
    lambda doc: json.dumps({**doc, "suite": "des"}),
    lambda doc: json.dumps({**doc, "kek": {**doc["kek"], "suites": {"1": "rot13"}}}),
    lambda doc: json.dumps({**doc, "audit_mac": [{"since": 5, "suite": "aes"}]}),
    lambda doc: json.dumps({**doc, "audit_mac": "aes"}),
    # the suite of the file is not the suite of its primary keys
    lambda doc: json.dumps({**doc, "suite": "sm" if doc["suite"] == "aes" else "aes"}),
])
def test_key_file_with_a_bad_suite_is_refused(app, damage):
    path = key_file(app)
    Path(path).write_text(damage(file_doc(path)))
    with pytest.raises(KeyringError) as info:
        Keyring.load(path)
    assert "\n" not in str(info.value)


def test_unknown_suite_is_refused_with_one_line(tmp_path):
    with pytest.raises(KeyringError, match="unknown cipher suite 'des'"):
        Keyring.generate(tmp_path / "master.key", suite="des")
    assert not (tmp_path / "master.key").exists()


def test_rotation_to_the_other_suite_keeps_everything_readable(app, tmp_path, crypto_suite):
    other = "sm" if crypto_suite == "aes" else "aes"
    rows = seed()
    old_copy = tmp_path / "old-master.key"
    shutil.copy2(key_file(app), old_copy)

    counts = crypto.rotate([reindexer(rows)], suite=other)

    assert counts["suite"] == other and counts["subject_keys"] == 3 and counts["kek_id"] == "2"
    assert crypto.suite().name == other
    doc = file_doc(key_file(app))
    assert doc["suite"] == other and doc["kek"]["suites"] == {"2": other}
    assert len(base64.b64decode(doc["kek"]["keys"]["2"])) == {"aes": 32, "sm": 16}[other]
    assert doc["audit_mac"][-1]["suite"] == other
    assert_all_readable(rows)  # values written under the old suite: same data key, old cipher
    index_key = base64.b64decode(doc["index"]["keys"]["2"])
    for row in rows.values():  # indexes recomputed with the new suite's HMAC
        expected = hmac_hex(other, index_key, f"customers.phone\x00{row['phone']}".encode())[:16]
        assert row["bidx"] == f"2:{expected}"
    sk = db.session.get(SubjectKey, next(iter(rows)))
    fresh = crypto.encrypt(sk, "x", AAD)
    assert fresh.startswith({"aes": "v1:", "sm": "sm1:"}[other]) and crypto.decrypt(sk, fresh, AAD) == "x"
    old_ring = Keyring.load(old_copy)
    with pytest.raises(DecryptionError):  # the old key file opens nothing any more
        old_ring.unwrap(sk.kek_id, sk.wrapped)


def test_an_unfinished_rotation_must_finish_in_its_own_suite(app, crypto_suite):
    other = "sm" if crypto_suite == "aes" else "aes"
    rows = seed(1)

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        crypto.rotate([crash], suite=other)
    with pytest.raises(KeyringError, match=f"--crypto {other}"):
        crypto.rotate([reindexer(rows)], suite=crypto_suite)
    counts = crypto.rotate([reindexer(rows)])  # resumes towards the suite it started with
    assert counts["resumed"] is True and counts["suite"] == other
    assert_all_readable(rows)


def test_audit_mac_switch_is_recorded_by_entry_id(app, crypto_suite):
    other = "sm" if crypto_suite == "aes" else "aes"
    ring = crypto.keyring()
    ring.switch_audit_mac(other, 1)  # nothing signed yet: the new MAC from the first entry
    assert ring.audit_macs == [(1, other)]
    ring.switch_audit_mac(crypto_suite, 8)
    ring.switch_audit_mac(other, 20)
    assert ring.audit_macs == [(1, other), (8, crypto_suite), (20, other)]
    assert [ring.audit_suite(i) for i in (1, 7, 8, 19, 20, 500)] == [other, other, crypto_suite,
                                                                     crypto_suite, other, other]
    ring.switch_audit_mac(crypto_suite, 20)  # switched back before entry 20 was written
    assert ring.audit_macs == [(1, other), (8, crypto_suite)]
    ring.save()
    assert Keyring.load(key_file(app)).audit_macs == [(1, other), (8, crypto_suite)]


def test_bulk_sealer_matches_subject_keys_encrypt_and_blind_index(app, crypto_suite):
    """An import's batch seals through crypto.BulkSealer: its data keys unwrap like
    new_subject_key's, its tokens decrypt with decrypt(), its digests are blind_index()'s."""
    sealer = crypto.BulkSealer()
    dek, kek_id, wrapped = sealer.new_data_key()
    row = SubjectKey(kek_id=kek_id, wrapped=wrapped)
    db.session.add(row)
    db.session.commit()
    fresh = reload_subject_key(row.id)  # the data key as unwrapped from the database

    class Row:  # what an import builds for one customer: the model's table name and a uid
        __tablename__ = "customers_person"
        uid = "0123456789abcdef0123456789abcdef"
        phone = crypto.Encrypted("customers.phone")
        notes = crypto.Encrypted()

    obj = Row()
    sealer.set_field(Row.phone, obj, "+8613800138000", sealer.cipher_key(dek))
    sealer.set_field(Row.notes, obj, "备注", sealer.cipher_key(dek))
    assert obj.phone_ct.startswith({"aes": "v1:", "sm": "sm1:"}[crypto_suite])
    assert crypto.decrypt(fresh, obj.phone_ct, f"customers_person|phone|{Row.uid}") == "+8613800138000"
    assert crypto.decrypt(fresh, obj.notes_ct, f"customers_person|notes|{Row.uid}") == "备注"
    assert obj.phone_bidx == crypto.blind_index("customers.phone", "+8613800138000")
    assert sealer.blind_index("customers.phone", "x") == crypto.blind_index("customers.phone", "x")
    sealer.set_field(Row.phone, obj, "", sealer.cipher_key(dek))
    assert obj.phone_ct is None and obj.phone_bidx is None


def test_bulk_opener_reads_plain_rows_as_the_encrypted_attribute_does(app, crypto_suite):
    """A list page reads its rows' names and phones through crypto.BulkOpener from plain columns:
    the same plaintexts as decrypt(), the same refusals for a moved or altered value, None for an
    empty field or a destroyed key, and each data key unwrapped once."""
    subject_key = crypto.new_subject_key()
    db.session.commit()
    uid = "0123456789abcdef0123456789abcdef"

    class Row:
        __tablename__ = "customers_person"
        phone = crypto.Encrypted("customers.phone")

    token = crypto.encrypt(subject_key, "+8613800138000", f"customers_person|phone|{uid}")
    kek_id, wrapped = subject_key.kek_id, subject_key.wrapped
    opener = crypto.BulkOpener()
    assert opener.read(Row.phone, "customers_person", uid, token, kek_id, wrapped) == "+8613800138000"
    assert opener.read(Row.phone, "customers_person", uid, None, kek_id, wrapped) is None
    assert opener.read(Row.phone, "customers_person", uid, token, None, None) is None  # key destroyed
    with pytest.raises(DecryptionError):  # another row's value
        opener.read(Row.phone, "customers_person", "f" * 32, token, kek_id, wrapped)
    with pytest.raises(DecryptionError):  # another table's
        opener.read(Row.phone, "customers_org", uid, token, kek_id, wrapped)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(DecryptionError):
        opener.read(Row.phone, "customers_person", uid, altered, kek_id, wrapped)
    other = crypto.new_subject_key()  # another subject's key
    db.session.commit()
    with pytest.raises(DecryptionError):
        crypto.BulkOpener().read(Row.phone, "customers_person", uid, token, other.kek_id, other.wrapped)

    unwrapped = []
    ring = crypto.keyring()
    original = ring.unwrap
    ring.unwrap = lambda *a: unwrapped.append(a) or original(*a)
    try:
        opener = crypto.BulkOpener()
        for _ in range(3):
            assert opener.read(Row.phone, "customers_person", uid, token, kek_id, wrapped) == "+8613800138000"
    finally:
        del ring.unwrap
    assert len(unwrapped) == 1
