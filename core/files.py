"""Stored files (attachments, uploads of any module): written privately and atomically, removed
once the transaction that dropped their rows has committed."""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from pathlib import Path

log = logging.getLogger("kehu.files")


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (its folder 0700): the old file or the complete
    new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_files(paths) -> int:
    """Remove stored files; a file already gone is fine, one that cannot be removed is logged
    (its row is gone; the ciphertext left behind is for cleanup). Returns how many went."""
    removed = 0
    for path in paths:
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot remove stored file %s: %s", Path(path).name, exc)
    return removed



def rekey_files(rows, path_of, old_key, new_key) -> int:
    """For the customers.rekey hook: each row's stored file (at ``path_of(row)``, sealed with the
    row's ``aad("content")``) is written anew under ``new_key`` and a fresh ``row.stored_name``.
    The old files are removed once the transaction commits, the new ones if it rolls back, so a
    row never points at a file it cannot decrypt. A file lost before is logged and left as it is.
    Returns how many files moved."""
    from core import crypto
    written, replaced = [], []
    try:
        for row in rows:
            old_path = path_of(row)
            try:
                blob = Path(old_path).read_bytes()
            except OSError as exc:  # the row stays; reading it says the file is lost
                log.error("file of %s %s unreadable while re-keying: %s", row.__tablename__, row.id, exc)
                continue
            data = crypto.decrypt_bytes(old_key, blob, row.aad("content"))
            row.stored_name = secrets.token_hex(16)
            new_path = path_of(row)
            write_private_file(new_path, crypto.encrypt_bytes(new_key, data, row.aad("content")))
            written.append(new_path)
            replaced.append(old_path)
    except BaseException:
        remove_files(written)
        raise
    _settle_at_commit(written, replaced)
    return len(written)


def _settle_at_commit(written, replaced) -> None:
    """Remove ``replaced`` once the session commits, or ``written`` if it rolls back first."""
    if not (written or replaced):
        return
    from sqlalchemy import event

    from core.db import db
    session = db.session()
    settled = []  # whichever comes first decides; a later rollback of the session changes nothing

    def committed(_session):
        if not settled:
            settled.append("commit")
            remove_files(replaced)

    def rolled_back(_session, previous):
        if not settled and not previous.nested:
            settled.append("rollback")
            remove_files(written)

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_soft_rollback", rolled_back)
