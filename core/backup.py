"""`kehu backup FILE` and `kehu restore FILE`: one archive, consistent, checked before use.

The archive is a gzip'd tar holding ``manifest.json`` first, then ``database/…`` (SQLite: a copy
made with the online backup API while the app serves, checked with ``PRAGMA integrity_check``;
PostgreSQL: a ``pg_dump`` custom-format dump, one consistent snapshot), ``uploads/…`` (the
attachments as they are on disk: encrypted under each customer's data key) and
``destruction.ledger``. The manifest lists every member with its size and SHA-256 and is keyed
with the audit key, so a changed, truncated or foreign archive is refused before anything is
written. Personal data is never decrypted to be backed up, and neither the master key file nor
the Flask secret key are in the archive: they are backed up separately (README).

Restore goes only into an empty instance (no tables, no uploads) that holds the master key the
archive was made under. It verifies everything first, then loads the database, puts back the
uploads, replays the destruction ledger (the archive's and the instance's: every data key
destroyed after the backup was taken is deleted again before anything reads the data), checks the
audit chain and writes its head as the new checkpoint.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from flask import current_app
from sqlalchemy import delete, inspect, select

from core import audit, ledger
from core.db import db
from core.models import utcnow

FORMAT = "kehu-backup"
VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message is one line for the operator."""


# --- helpers --------------------------------------------------------------------------------------


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_mac(manifest) -> str:
    from core import crypto
    body = json.dumps({k: v for k, v in manifest.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    # HMAC-SHA256, or HMAC-SM3 for an archive made under the national suite (older ones name none)
    return crypto.audit_key_mac(("backup|" + body).encode(), _manifest_suite(manifest))


def _manifest_suite(manifest):
    from core import crypto
    name = manifest.get("suite", "aes")
    if name not in crypto.SUITES:
        raise BackupError(f"the archive names unknown cipher suite {name!r}")
    return name


def _key_check(suite_name):
    from core import crypto
    return crypto.audit_key_mac(b"kehu-backup-key-check", suite_name)


def _dialect():
    return db.engine.dialect.name


def _sqlite_path() -> Path:
    return Path(db.engine.url.database)


def _libpq_url() -> str:
    """The SQLAlchemy URL as pg_dump/pg_restore take it (no "+driver")."""
    url = db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _run(args, what):
    try:
        done = subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError:
        raise BackupError(f"{args[0]} is not installed: install the PostgreSQL client tools "
                          "(Debian: postgresql-client)") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{what} failed: {reason}")


def _uploads() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


def _upload_files():
    root = _uploads()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


# --- backup ---------------------------------------------------------------------------------------


def _snapshot_sqlite(target: Path) -> dict:
    """Copy the live database with SQLite's online backup API in one step (one read transaction:
    a consistent snapshot even while the app writes), then check the copy."""
    source = sqlite3.connect(f"file:{_sqlite_path()}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
    try:
        status = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if status != "ok":
            raise BackupError(f"the database copy fails its integrity check: {status}")
        head = copy.execute("SELECT id, hash FROM core_audit_entry ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        copy.close()
    return {"dialect": "sqlite", "file": "database/kehu.db",
            "audit_head": {"id": head[0], "hash": head[1]} if head else None}


def _snapshot_postgres(target: Path) -> dict:
    _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target}",
          _libpq_url()], "pg_dump")
    return {"dialect": "postgresql", "file": "database/kehu.dump", "audit_head": None}


def create(path, progress=None) -> dict:
    """Write the archive to ``path`` (atomically: a temporary file renamed at the end, mode 0600)
    and return its manifest. ``progress(n)`` is called as members are written."""
    path = Path(path).resolve()
    if path.is_dir():
        raise BackupError(f"{path} is a folder: name the archive file to write")
    if not path.parent.is_dir():
        raise BackupError(f"folder {path.parent} does not exist")
    instance = Path(current_app.instance_path).resolve()
    if path.is_relative_to(_uploads().resolve()):
        raise BackupError("the archive must not be written into the uploads folder it backs up")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".kehu-backup-") as work:
        work = Path(work)
        (work / "database").mkdir()
        dialect = _dialect()
        if dialect == "sqlite":
            database = _snapshot_sqlite(work / "database" / "kehu.db")
        elif dialect == "postgresql":
            database = _snapshot_postgres(work / "database" / "kehu.dump")
        else:
            raise BackupError(f"backing up a {dialect} database is not supported")
        # After the database: a file added meanwhile is an orphan at worst, never a missing one.
        members = [(database["file"], work / database["file"])]
        root = _uploads()
        for file in _upload_files():
            members.append((str(PurePosixPath("uploads", *file.relative_to(root).parts)), file))
        ledger_file = ledger.path()
        if ledger_file.exists():
            shutil.copyfile(ledger_file, work / "destruction.ledger")
            members.append(("destruction.ledger", work / "destruction.ledger"))
        files = []
        for name, source in members:
            files.append({"path": name, "size": source.stat().st_size, "sha256": _sha256(source)})
        manifest = {
            "format": FORMAT, "version": VERSION, "created_at": utcnow().isoformat(timespec="seconds"),
            "instance": instance.name, "database": database, "files": files,
            "suite": _suite_name(), "key_check": _key_check(_suite_name()),
        }
        manifest["mac"] = _manifest_mac(manifest)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(utcnow().timestamp())
                tar.addfile(info, io.BytesIO(data))
                for (name, source), entry in zip(members, files, strict=True):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = entry["size"], 0o600, int(source.stat().st_mtime)
                    with open(source, "rb") as fh:
                        tar.addfile(info, fh)
                    if progress:
                        progress(1)
                tar.close()
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return manifest


def _suite_name() -> str:
    from core import crypto
    return crypto.suite().name


def member_count() -> int:
    """How many members a backup would write now (for the progress bar)."""
    return 2 + len(_upload_files())


# --- restore --------------------------------------------------------------------------------------


def _is_empty() -> str | None:
    """None when the instance is empty, else what is in the way."""
    if _dialect() == "sqlite":
        file = _sqlite_path()  # looked at without creating it
        if file.exists() and file.stat().st_size:
            conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
            try:
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            except sqlite3.DatabaseError:
                return f"its database file {file} is not empty"
            finally:
                conn.close()
            if tables:
                return "its database already has tables"
    elif inspect(db.engine).get_table_names():
        return "its database already has tables"
    if _upload_files():
        return f"its uploads folder {_uploads()} holds files"
    return None


def _safe_name(name) -> bool:
    pure = PurePosixPath(name)
    return bool(name) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in name


def _extract(archive: Path, work: Path, progress=None) -> dict:
    """Read the whole archive into ``work`` and check it against its manifest; BackupError with
    the first thing wrong. Nothing outside ``work`` is written."""
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except FileNotFoundError:
        raise BackupError(f"{archive} does not exist") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{archive} is not a kehu backup archive ({exc})") from None
    manifest, seen = None, {}
    try:
        with tar:
            for index, member in enumerate(tar):
                if index == 0:
                    if member.name != MANIFEST or not member.isfile():
                        raise BackupError(f"{archive} is not a kehu backup: it does not start with a manifest")
                    try:
                        manifest = json.loads(tar.extractfile(member).read())
                    except ValueError:
                        raise BackupError("the archive's manifest is not valid JSON") from None
                    _check_manifest(manifest)
                    expected = {f["path"]: f for f in manifest["files"]}
                    continue
                if not member.isfile() or not _safe_name(member.name) or member.name not in expected:
                    raise BackupError(f"the archive holds {member.name!r}, which its manifest does not list")
                if member.name in seen:
                    raise BackupError(f"the archive holds {member.name!r} twice")
                target = work / "files" / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    for block in iter(functools.partial(source.read, CHUNK), b""):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
                entry = expected[member.name]
                if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                    raise BackupError(f"{member.name} in the archive does not match its checksum: "
                                      "the archive is corrupted")
                seen[member.name] = target
                if progress:
                    progress(size)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupError(f"the archive is truncated or corrupted ({type(exc).__name__}: "
                          f"{str(exc) or 'unexpected end'})") from None
    if manifest is None:
        raise BackupError(f"{archive} is empty")
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise BackupError(f"the archive is truncated: {missing[0]} is missing ({len(missing)} members)")
    return manifest


def _check_manifest(manifest):
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("the archive is not a kehu backup")
    if manifest.get("version") != VERSION:
        raise BackupError(f"the archive has backup format version {manifest.get('version')!r}, "
                          f"this kehu reads version {VERSION}")
    check = _key_check(_manifest_suite(manifest))
    if not hmac.compare_digest(str(manifest.get("key_check", "")), check):
        raise BackupError("the archive was made under another master key: restore that key file first "
                          "(see README, backing up the master key)")
    if not hmac.compare_digest(str(manifest.get("mac", "")), _manifest_mac(manifest)):
        raise BackupError("the archive's manifest was altered")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and _safe_name(f.get("path", "")) for f in files):
        raise BackupError("the archive's manifest lists an unsafe file name")


def restore(path, actor, progress=None) -> dict:
    """Restore the archive at ``path`` into this (empty) instance; returns counts to print."""
    archive = Path(path).resolve()
    in_the_way = _is_empty()
    if in_the_way:
        raise BackupError(f"restore goes only into an empty instance: {in_the_way}")
    current_ledger = ledger.read()  # a bad line stops us before anything is written
    parent = Path(current_app.instance_path).resolve()
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=".kehu-restore-") as work:
        work = Path(work)
        manifest = _extract(archive, work, progress)
        files = work / "files"
        database = manifest["database"]
        if database.get("dialect") != _dialect():
            raise BackupError(f"the archive holds a {database.get('dialect')} database, this instance uses "
                              f"{_dialect()}")
        db_file = files / database["file"]
        if database["dialect"] == "sqlite":
            _check_sqlite(db_file)
        archived_ledger = ledger.read(files / "destruction.ledger") if (files / "destruction.ledger").exists() else []
        # Everything checked: from here on the target is written.
        if database["dialect"] == "sqlite":
            db.session.remove()
            db.engine.dispose()
            source, target = sqlite3.connect(db_file), sqlite3.connect(_sqlite_path(), timeout=30)
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            os.chmod(_sqlite_path(), 0o600)
            db.engine.dispose()
        else:
            db.session.remove()
            db.engine.dispose()
            _run(["pg_restore", "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
                  f"--dbname={_libpq_url()}", str(db_file)], "pg_restore")
        uploads = _uploads()
        uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        restored_files = 0
        if (files / "uploads").is_dir():
            for item in sorted((files / "uploads").rglob("*")):
                if item.is_file():
                    target = uploads / item.relative_to(files / "uploads")
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    os.replace(item, target)
                    restored_files += 1
    secret = Path(current_app.config["SECRET_KEY_FILE"])
    if not secret.exists():  # sessions are signed anew: nobody stays signed in across a restore
        from core import crypto
        crypto.generate_secret_key_file(secret)
    count = _check_trail(manifest)  # as the backup left it, before the replay appends to it
    destroyed = _replay_ledger(archived_ledger, current_ledger)
    return _seal(manifest, actor, restored_files, destroyed, count)


def _check_sqlite(db_file):
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        try:
            status = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the archived database is unreadable: {exc}") from None
    if status != "ok":
        raise BackupError(f"the archived database fails its integrity check: {status}")


def _replay_ledger(archived, current) -> int:
    """Delete every data key destroyed by the archive's ledger or this instance's, and keep the
    union as this instance's ledger."""
    from core import hooks
    from core.crypto import SubjectKey
    ledger.merge(ledger.path(), archived)
    keys = ledger.destroyed_keys(ledger.read())
    ids = sorted(keys)
    destroyed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        destroyed += db.session.execute(delete(SubjectKey).where(SubjectKey.id.in_(chunk))).rowcount or 0
    db.session.flush()
    for _module, func in hooks.contributions("core.destruction_replayed", all_departments=True):
        func(list(keys.values()))
    db.session.commit()
    if _dialect() == "sqlite":  # outside any transaction: the deleted keys leave the -wal file too
        conn = sqlite3.connect(_sqlite_path(), timeout=30)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    return destroyed


def _head():
    return db.session.execute(select(audit.AuditEntry.id, audit.AuditEntry.hash)
                              .order_by(audit.AuditEntry.id.desc()).limit(1)).first()


def _check_trail(manifest) -> int:
    """The restored trail is an intact chain ending where the snapshot's did."""
    count, broken = audit.verify(checkpoint=False)
    if broken:
        raise BackupError(f"the restored audit trail is broken at entry {broken[0]}: {broken[1]}")
    head = _head()
    expected = manifest["database"].get("audit_head")
    if expected and (head is None or [head.id, head.hash] != [expected["id"], expected["hash"]]):
        raise BackupError("the restored audit trail does not end where the backup's did")
    db.session.rollback()
    return count


def _seal(manifest, actor, restored_files, destroyed, count) -> dict:
    """Make the restored trail's head the checkpoint, then audit the restore."""
    head = _head()
    checkpoint = Path(current_app.config["AUDIT_CHECKPOINT_FILE"])
    checkpoint.unlink(missing_ok=True)  # an empty instance's old mark belongs to no trail
    if head is not None:
        audit._write_checkpoint(checkpoint, head.id, head.hash)
    audit.record("core.backup.restored", actor=actor, created_at=manifest["created_at"],
                 files=len(manifest["files"]), uploads=restored_files, keys_destroyed=destroyed)
    db.session.commit()
    return {"entries": count, "uploads": restored_files, "keys_destroyed": destroyed,
            "created_at": manifest["created_at"]}


# --- test-restore ---------------------------------------------------------------------------------


def test_restore(path, actor, progress=None) -> dict:
    """Restore the archive at ``path`` into a scratch copy beside the instance and check it, leaving
    this instance as it is; recorded in the audit trail (``core.backup.test_restored``) so the
    self-check can tell when a backup was last proved usable.

    Everything ``restore`` checks first is checked (manifest, checksums, master key); then the
    SQLite database is opened, its integrity checked and its audit chain verified up to the head
    the archive names; a PostgreSQL dump is read through with ``pg_restore --list``."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    archive = Path(path).resolve()
    parent = Path(current_app.instance_path).resolve()
    with tempfile.TemporaryDirectory(dir=parent, prefix=".kehu-restore-test-") as work:
        work = Path(work)
        manifest = _extract(archive, work, progress)
        database = manifest["database"]
        db_file = work / "files" / database["file"]
        if database.get("dialect") == "sqlite":
            _check_sqlite(db_file)
            engine = create_engine(f"sqlite:///{db_file}")
            try:
                with Session(engine) as session:
                    count, broken = audit.verify(session, checkpoint=False)
                    if broken:
                        raise BackupError(f"the archived audit trail is broken at entry {broken[0]}: {broken[1]}")
                    head = session.execute(select(audit.AuditEntry.id, audit.AuditEntry.hash)
                                           .order_by(audit.AuditEntry.id.desc()).limit(1)).first()
            finally:
                engine.dispose()
            expected = database.get("audit_head")
            if expected and (head is None or [head.id, head.hash] != [expected["id"], expected["hash"]]):
                raise BackupError("the archived audit trail does not end where the backup's did")
        elif database.get("dialect") == "postgresql":
            _run(["pg_restore", "--list", str(db_file)], "pg_restore --list")
            count = None
        else:
            raise BackupError(f"the archive holds a {database.get('dialect')} database")
    audit.record("core.backup.test_restored", actor=actor, created_at=manifest["created_at"],
                 files=len(manifest["files"]), dialect=database["dialect"])
    db.session.commit()
    return {"created_at": manifest["created_at"], "files": len(manifest["files"]), "entries": count}
