"""Stored files (attachments, uploads of any module): written privately and atomically, removed
once the transaction that dropped their rows has committed."""
from __future__ import annotations

import contextlib
import logging
import os
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


def replace_files_at_commit(written, replaced) -> None:
    """Files re-written under new stored names (a re-keyed attachment): the ``replaced`` old files
    are removed once the transaction commits, the ``written`` new ones if it rolls back, so a row
    never points at a file it cannot decrypt."""
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
