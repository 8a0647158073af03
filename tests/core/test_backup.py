"""`kehu backup FILE` / `kehu restore FILE`: a consistent archive with a manifest and checksums,
personal data still encrypted, restored only into an empty instance, refused whole when corrupted,
the destruction ledger replayed, and `kehu audit verify` passing on what was restored."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import sqlite3
import tarfile
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import func, inspect, select

from core import audit, crypto, ledger, services
from core.app import create_app
from core.db import db
from core.models import Department
from tests.conftest import PG_URL, _reset_postgres, both_suites, make_config

NAME, PHONE, ID_NUMBER = "欧阳备份", "13912345678", "11010519491231002X"


def invoke(app, *args):
    from core.cli import main
    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))
    if result.exc_info and not isinstance(result.exc_info[1], SystemExit):
        import traceback
        traceback.print_exception(*result.exc_info)
    return result


def one_line_error(result, *words):
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def fresh(app, tmp_path):
    """An empty instance holding the same master key (restored from the key backup), and, when
    asked, the source instance's destruction ledger beside it. On PostgreSQL the one test
    database is emptied: the source app must not be used afterwards."""
    made = []

    def make(name="restored", with_ledger=False, other_key=False):
        source = Path(app.config["MASTER_KEY_FILE"]).parent
        instance = tmp_path / name / "instance"
        instance.mkdir(parents=True)
        if other_key:
            crypto.Keyring.generate(instance / "master.key")
        else:
            shutil.copy2(source / "master.key", instance / "master.key")
        if with_ledger and (source / ledger.FILE_NAME).exists():
            shutil.copy2(source / ledger.FILE_NAME, instance / ledger.FILE_NAME)
        if PG_URL:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            _reset_postgres(PG_URL)
        config = make_config(tmp_path / name)
        config["SECRET_KEY_FILE"] = str(instance / "secret.key")
        config["SECRET_KEY"] = "test"
        target = create_app(config)
        made.append(target)
        return target

    yield make
    for target in made:
        with target.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def customer(app, make_customer):
    return make_customer(name=NAME, phone=PHONE, id_number=ID_NUMBER)


def put_upload(app, relative, data):
    path = Path(app.config["UPLOAD_FOLDER"]) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def archive_members(path):
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def find_by_phone(phone):
    from modules.customers import Customer
    from modules.customers.fields import FIELDS
    digests = crypto.blind_index_candidates(FIELDS["phone"].search_domain, "+86" + phone)
    return db.session.scalars(select(Customer).where(Customer.phone_bidx.in_(digests))).all()


@both_suites
def test_backup_and_restore_round_trip(app, customer, fresh, tmp_path):
    blob = put_upload(app, "archives/1/a.bin", b"kehu1-encrypted-bytes")
    target_file = tmp_path / "kehu-backup.tar.gz"
    result = invoke(app, "backup", "-q", str(target_file))
    assert result.exit_code == 0, result.output
    assert "master key is not in it" in result.output
    assert target_file.stat().st_mode & 0o077 == 0

    members = archive_members(target_file)
    assert list(members)[0] == "manifest.json"
    manifest = json.loads(members["manifest.json"])
    assert {f["path"] for f in manifest["files"]} == set(members) - {"manifest.json"}
    assert "uploads/archives/1/a.bin" in members
    assert not any("master.key" in name or "secret.key" in name for name in members)
    raw = b"".join(members.values())
    for value in (NAME, PHONE, ID_NUMBER):  # personal data stays ciphertext in the archive
        assert value.encode() not in raw
    with app.app_context():
        master = Path(app.config["MASTER_KEY_FILE"]).read_bytes()
        assert master not in raw and json.loads(master)["kek"]["keys"]["1"].encode() not in raw
        assert audit.count("core.backup.created") == 1
        departments_before = db.session.scalar(select(func.count()).select_from(Department))

    target = fresh()
    result = invoke(target, "restore", "-q", str(target_file))
    assert result.exit_code == 0, result.output
    assert "audit chain intact" in result.output
    verify = invoke(target, "audit", "verify")
    assert verify.exit_code == 0, verify.output
    with target.app_context():
        from modules.customers import Customer
        restored = db.session.get(Customer, customer)
        assert restored.name == NAME and restored.phone.endswith(PHONE)
        assert [c.id for c in find_by_phone(PHONE)] == [customer]
        assert db.session.scalar(select(func.count()).select_from(Department)) == departments_before
        assert audit.count("core.backup.restored") == 1
    assert (Path(target.config["UPLOAD_FOLDER"]) / "archives/1/a.bin").read_bytes() == blob.read_bytes()
    # the target now holds data: a second restore is refused
    again = invoke(target, "restore", "-q", str(target_file))
    one_line_error(again, "empty instance")


def corrupt_variants(good: Path, folder: Path):
    data = good.read_bytes()
    truncated = folder / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = folder / "flipped.tar.gz"
    middle = bytearray(data)
    middle[len(middle) // 2] ^= 0xFF
    flipped.write_bytes(bytes(middle))
    # a well-formed archive whose member no longer matches the manifest's checksum
    tampered = folder / "tampered.tar.gz"
    with tarfile.open(good, "r:gz") as src, tarfile.open(tampered, "w:gz") as out:
        for member in src:
            content = src.extractfile(member).read()
            if member.name.startswith("uploads/"):
                content = content[:-1] + bytes([content[-1] ^ 1])
            out.addfile(member, io.BytesIO(content))
    # the manifest's listed size changed by someone without the key
    forged = folder / "forged.tar.gz"
    with tarfile.open(good, "r:gz") as src, tarfile.open(forged, "w:gz") as out:
        for member in src:
            content = src.extractfile(member).read()
            if member.name == "manifest.json":
                doc = json.loads(content)
                doc["created_at"] = "2020-01-01T00:00:00"
                content = json.dumps(doc).encode()
                member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    not_gzip = folder / "plain.tar.gz"
    not_gzip.write_bytes(gzip.decompress(data)[:4096])
    return {truncated: "truncated", flipped: "", tampered: "checksum", forged: "altered",
            not_gzip: "kehu backup"}


@both_suites
def test_the_manifest_is_keyed_with_the_suites_mac_and_older_archives_still_pass(app, customer, tmp_path,
                                                                                 crypto_suite):
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.hmac import HMAC

    from core import backup
    target_file = tmp_path / "kehu-backup.tar.gz"
    assert invoke(app, "backup", "-q", str(target_file)).exit_code == 0
    manifest = json.loads(archive_members(target_file)["manifest.json"])
    assert manifest["suite"] == crypto_suite
    with app.app_context():
        key = crypto.keyring().audit_key
        if crypto_suite == "aes":
            expected = hmac.new(key, b"kehu-backup-key-check", hashlib.sha256).hexdigest()
        else:
            mac = HMAC(key, hashes.SM3())
            mac.update(b"kehu-backup-key-check")
            expected = mac.finalize().hex()
        assert manifest["key_check"] == expected
        backup._check_manifest(manifest)
        # an archive written before the suites existed names none: HMAC-SHA256, still accepted
        older = {k: v for k, v in manifest.items() if k not in ("suite", "mac")}
        older["key_check"] = hmac.new(key, b"kehu-backup-key-check", hashlib.sha256).hexdigest()
        older["mac"] = hmac.new(key, ("backup|" + json.dumps(
            {k: v for k, v in older.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))).encode(),
            hashlib.sha256).hexdigest()
        backup._check_manifest(older)
        other = "sm" if crypto_suite == "aes" else "aes"
        with pytest.raises(backup.BackupError, match="altered"):  # the suite named is signed too
            backup._check_manifest({**manifest, "suite": other,
                                    "key_check": crypto.audit_key_mac(b"kehu-backup-key-check", other)})


@both_suites
def test_ledger_lines_are_keyed_with_the_suites_mac_and_older_lines_still_read(app, tmp_path, crypto_suite):
    import hashlib
    import hmac
    target = tmp_path / "destruction.ledger"
    with app.app_context():
        ledger._append([{"event": "destroyed", "key_id": 7, "ref": "t:1", "at": "2026-01-01T00:00:00+00:00"}],
                       target)
        [line] = ledger.read(target)
        assert line["suite"] == crypto_suite and line["mac"] == crypto.audit_key_mac(
            ("ledger|" + json.dumps({k: v for k, v in line.items() if k != "mac"}, sort_keys=True,
                                    separators=(",", ":"))).encode(), crypto_suite)
        older = {"event": "destroyed", "key_id": 8, "ref": "t:2", "at": "2026-01-02T00:00:00+00:00"}
        body = json.dumps(older, sort_keys=True, separators=(",", ":"))
        older["mac"] = hmac.new(crypto.keyring().audit_key, ("ledger|" + body).encode(), hashlib.sha256).hexdigest()
        with target.open("a") as out:  # a line of a kehu before the suites: none named, HMAC-SHA256
            out.write(json.dumps(older) + "\n")
        assert [d["key_id"] for d in ledger.read(target)] == [7, 8]
        claimed = {"event": "destroyed", "key_id": 9, "ref": "t:3", "at": "2026-01-03T00:00:00+00:00",
                   "suite": "sm"}
        body = json.dumps(claimed, sort_keys=True, separators=(",", ":"))
        claimed["mac"] = hmac.new(crypto.keyring().audit_key, ("ledger|" + body).encode(),
                                  hashlib.sha256).hexdigest()
        with target.open("a") as out:  # an HMAC-SHA256 on a line that names the national suite fails
            out.write(json.dumps(claimed) + "\n")
        with pytest.raises(ledger.LedgerError, match="line 3"):
            ledger.read(target)


def test_corrupted_archive_is_refused_and_the_target_left_untouched(app, customer, fresh, tmp_path):
    put_upload(app, "archives/1/a.bin", b"kehu1-x" * 1000)
    good = tmp_path / "good.tar.gz"
    assert invoke(app, "backup", "-q", str(good)).exit_code == 0
    variants = corrupt_variants(good, tmp_path)
    target = fresh()
    uploads = Path(target.config["UPLOAD_FOLDER"])
    for bad, word in variants.items():
        result = invoke(target, "restore", "-q", str(bad))
        one_line_error(result, word)
        with target.app_context():
            assert inspect(db.engine).get_table_names() == [], bad.name
        assert not uploads.exists() or not any(uploads.rglob("*")), bad.name
        assert not Path(target.config["AUDIT_CHECKPOINT_FILE"]).exists()
        assert not list(Path(target.instance_path).glob(".kehu-restore-*"))  # no leftovers
    one_line_error(invoke(target, "restore", "-q", str(tmp_path / "missing.tar.gz")), "does not exist")
    # the good archive still restores into the untouched target
    assert invoke(target, "restore", "-q", str(good)).exit_code == 0
    assert invoke(target, "audit", "verify").exit_code == 0


def test_restore_refuses_another_master_key(app, customer, fresh, tmp_path):
    good = tmp_path / "good.tar.gz"
    assert invoke(app, "backup", "-q", str(good)).exit_code == 0
    target = fresh(other_key=True)
    one_line_error(invoke(target, "restore", "-q", str(good)), "another master key")


@both_suites
def test_a_customer_destroyed_after_the_backup_stays_destroyed_after_restore(app, customer, fresh, tmp_path):
    from modules.customers import Customer
    old = tmp_path / "before.tar.gz"
    assert invoke(app, "backup", "-q", str(old)).exit_code == 0
    with app.app_context():
        row = db.session.get(Customer, customer)
        key_id = row.subject_key_id
        crypto.destroy_subject_key(row.subject_key, ref=f"customers_customer:{customer}")
        db.session.commit()
        assert ledger.destroyed_keys(ledger.read()).keys() == {key_id}

    target = fresh(with_ledger=True)  # the ledger travels with the key file
    result = invoke(target, "restore", "-q", str(old))
    assert result.exit_code == 0, result.output
    assert "1 destroyed data keys" in result.output
    assert invoke(target, "audit", "verify").exit_code == 0
    with target.app_context():
        row = db.session.get(Customer, customer)
        assert row.subject_key_id is None and db.session.get(crypto.SubjectKey, key_id) is None
        try:  # unreadable: the key is gone (and a module such as lifecycle nulled the field)
            value = row.name
        except crypto.DecryptionError:
            value = None
        assert value is None
        assert ledger.destroyed_keys(ledger.read()).keys() == {key_id}


def test_a_rolled_back_destruction_is_cancelled_in_the_ledger(app, customer):
    from modules.customers import Customer
    with app.app_context():
        row = db.session.get(Customer, customer)
        crypto.destroy_subject_key(row.subject_key)
        db.session.rollback()
        assert ledger.destroyed_keys(ledger.read()) == {}
        assert db.session.get(Customer, customer).name == NAME
        lines = Path(ledger.path()).read_text().splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["destroyed", "cancelled"]
        Path(ledger.path()).write_text(lines[0].replace('"ref":""', '"ref":"x"') + "\n")
        with pytest.raises(ledger.LedgerError):
            ledger.read()


def test_backup_during_concurrent_writes_restores_consistently(app, customer, fresh, tmp_path):
    stop, errors, written = threading.Event(), [], [0]

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                with app.app_context():
                    services.create_department("test", f"W{n}", f"并发{n}")  # a row and its audit entry
                    audit.record("test.filler", n=n)
                    db.session.commit()
                    written[0] = n
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    try:
        while written[0] < 5:
            time.sleep(0.01)
        archive = tmp_path / "hot.tar.gz"
        result = invoke(app, "backup", "-q", str(archive))
        assert result.exit_code == 0, result.output
        during = written[0]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert during >= 5

    target = fresh()
    result = invoke(target, "restore", "-q", str(archive))
    assert result.exit_code == 0, result.output
    verify = invoke(target, "audit", "verify")
    assert verify.exit_code == 0, verify.output
    with target.app_context():
        departments = db.session.scalar(select(func.count()).select_from(Department)
                                        .where(Department.code.like("W%")))
        created = db.session.scalar(select(func.count()).select_from(audit.AuditEntry)
                                    .where(audit.AuditEntry.action == "core.department.created",
                                           audit.AuditEntry.actor == "test"))
        fillers = audit.count("test.filler")
        # every write transaction is in the snapshot whole or not at all
        assert departments == fillers >= 5
        assert created >= departments


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite file itself")
def test_the_sqlite_snapshot_passes_its_integrity_check(app, customer, tmp_path):
    archive = tmp_path / "b.tar.gz"
    assert invoke(app, "backup", "-q", str(archive)).exit_code == 0
    members = archive_members(archive)
    copy = tmp_path / "copy.db"
    copy.write_bytes(members["database/kehu.db"])
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
