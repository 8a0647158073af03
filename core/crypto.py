"""Field encryption with per-subject data keys, blind indexes, and key rotation.

Envelope scheme: every data subject (customer) has a random 256-bit data key (DEK) stored in
``core_subject_key`` only in wrapped form, encrypted under a key-encryption key (KEK) that lives
in the master key file outside the database. Fields are AES-256-GCM under the subject's DEK,
bound by AAD to their table, column and row. Deleting a subject key shreds that subject's data.

Exact-match search uses blind indexes: a truncated HMAC of the normalised value under a
separate index key. Four keys never mix: KEK, index key, audit key (all in the master key file)
and the Flask ``SECRET_KEY`` (its own file).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy import func, inspect, select

from core.db import db
from core.models import UTCDateTime, utcnow

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
DIGEST_HEX_CHARS = 16  # 64 bits of HMAC: exact-match search; callers still re-check after decrypt
CIPHERTEXT_PREFIX = "v1:"
FILE_FORMAT = "kehu-keyring"
FILE_VERSION = 1
EXTENSION = "kehu.keyring"


class KeyringError(RuntimeError):
    """The master key file is missing, unreadable, too widely readable or malformed."""


class DecryptionError(Exception):
    """A ciphertext or wrapped key failed authentication, or names a key we do not hold."""


# --- files -------------------------------------------------------------------------------------


def _write_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` with mode 0600 so that ``path`` is either the old or the complete new file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the target exists, so two racing `kehu init` cannot clobber a key.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyringError(f"key file {path} already exists: refusing to overwrite it") from None
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def generate_secret_key_file(path) -> None:
    """Create the Flask SECRET_KEY file (64 random bytes, hex). It is deliberately not in the
    keyring: session signing must not share a key with encryption, indexes or the audit chain."""
    path = Path(path)
    if path.exists():
        raise KeyringError(f"secret key file {path} already exists: refusing to overwrite it")
    _write_file(path, (secrets.token_hex(64) + "\n").encode("ascii"), overwrite=False)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _key_from_b64(text, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise KeyringError(f"{where} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{where} must be {KEY_BYTES} bytes, not {len(key)}")
    return key


def _versioned_from_json(doc, kind: str, path) -> tuple[dict[int, bytes], int]:
    section = doc.get(kind)
    if not isinstance(section, dict) or not isinstance(section.get("keys"), dict) or not section["keys"]:
        raise KeyringError(f"master key file {path} is malformed: '{kind}' needs a non-empty 'keys' object")
    keys = {}
    for key_id, text in section["keys"].items():
        if not key_id.isascii() or not key_id.isdigit() or int(key_id) < 1:
            raise KeyringError(f"master key file {path} is malformed: '{kind}' key id {key_id!r} "
                               "is not a positive integer")
        keys[int(key_id)] = _key_from_b64(text, f"master key file {path}: '{kind}' key {key_id}")
    primary = section.get("primary")
    if not isinstance(primary, int) or primary not in keys:
        raise KeyringError(f"master key file {path} is malformed: '{kind}' primary {primary!r} "
                           "is not one of its keys")
    return keys, primary


# --- the keyring -------------------------------------------------------------------------------


class Keyring:
    """The keys of the master key file: versioned KEKs, versioned blind-index keys, one audit key."""

    def __init__(self, *, keks, kek_primary, index_keys, index_primary, audit_key, path=None):
        self._keks = dict(keks)
        self._kek_primary = kek_primary
        self._index_keys = dict(index_keys)
        self._index_primary = index_primary
        self._audit_key = audit_key
        self.path = Path(path) if path is not None else None
        self._stamp = None
        all_keys = [*self._keks.values(), *self._index_keys.values(), audit_key]
        if len(set(all_keys)) != len(all_keys):
            raise KeyringError(f"master key file {path} is malformed: a key is used twice; "
                               "every key must be distinct")

    def __repr__(self):
        return (f"<Keyring {self.path} kek={self._kek_primary} of {sorted(self._keks)} "
                f"index={self._index_primary} of {sorted(self._index_keys)}>")

    # files

    @classmethod
    def generate(cls, path) -> Keyring:
        """Create a new master key file (mode 0600). Never overwrites: losing the old file would
        make every encrypted field unreadable."""
        path = Path(path)
        if path.exists():
            raise KeyringError(f"master key file {path} already exists: refusing to overwrite it")
        ring = cls(keks={1: AESGCM.generate_key(256)}, kek_primary=1,
                   index_keys={1: secrets.token_bytes(KEY_BYTES)}, index_primary=1,
                   audit_key=secrets.token_bytes(KEY_BYTES), path=path)
        _write_file(path, ring._to_json(), overwrite=False)
        ring._stamp = _file_stamp(path)
        return ring

    @classmethod
    def load(cls, path) -> Keyring:
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyringError(f"master key file {path} is missing: run `kehu init` "
                               "or set KEHU_MASTER_KEY_FILE") from None
        except OSError as exc:
            raise KeyringError(f"master key file {path} cannot be opened: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())  # the mode of what we read, not of what is there later
            if os.name == "posix" and st.st_mode & 0o077:
                raise KeyringError(f"master key file {path} is readable by group or others "
                                   f"(mode {st.st_mode & 0o777:04o}): run `chmod 600 {path}`")
            try:
                raw = fh.read()
            except OSError as exc:
                raise KeyringError(f"master key file {path} cannot be read: {exc.strerror}") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyringError(f"master key file {path} is not valid JSON: restore it from "
                               "the key backup") from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise KeyringError(f"master key file {path} is not a kehu keyring")
        if doc.get("version") != FILE_VERSION:
            raise KeyringError(f"master key file {path} has unsupported version {doc.get('version')!r}")
        keks, kek_primary = _versioned_from_json(doc, "kek", path)
        index_keys, index_primary = _versioned_from_json(doc, "index", path)
        audit_key = _key_from_b64(doc.get("audit"), f"master key file {path}: 'audit' key")
        ring = cls(keks=keks, kek_primary=kek_primary, index_keys=index_keys,
                   index_primary=index_primary, audit_key=audit_key, path=path)
        ring._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        return ring

    def save(self, path=None) -> None:
        """Replace the key file atomically (temp file 0600 in the same folder, fsync, rename)."""
        path = Path(path) if path is not None else self.path
        _write_file(path, self._to_json(), overwrite=True)
        self.path = path
        self._stamp = _file_stamp(path)

    def changed_on_disk(self) -> bool:
        """True when another process (``kehu keys rotate``) has replaced the key file."""
        if self.path is None:
            return False
        try:
            return _file_stamp(self.path) != self._stamp
        except OSError:
            return False  # keep the keys we hold rather than fail every request

    def _to_json(self) -> bytes:
        doc = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "kek": {"primary": self._kek_primary,
                    "keys": {str(i): _b64(k) for i, k in sorted(self._keks.items())}},
            "index": {"primary": self._index_primary,
                      "keys": {str(i): _b64(k) for i, k in sorted(self._index_keys.items())}},
            "audit": _b64(self._audit_key),
        }
        return (json.dumps(doc, indent=2) + "\n").encode("ascii")

    # keys

    @property
    def audit_key(self) -> bytes:
        return self._audit_key

    @property
    def kek_id(self) -> str:
        """Id of the primary KEK, as stored in ``SubjectKey.kek_id``."""
        return str(self._kek_primary)

    @property
    def kek_ids(self) -> list[str]:
        return [str(i) for i in sorted(self._keks)]

    @property
    def index_key_id(self) -> str:
        return str(self._index_primary)

    @property
    def index_key_ids(self) -> list[str]:
        return [str(i) for i in sorted(self._index_keys)]

    @property
    def rotation_pending(self) -> bool:
        """More than one key of a kind means a rotation started and has not finished."""
        return len(self._keks) > 1 or len(self._index_keys) > 1

    def add_primary_keys(self) -> None:
        """Add a new KEK and a new index key and make them primary; old ones stay for reading."""
        kek_id = max(self._keks) + 1
        index_id = max(self._index_keys) + 1
        self._keks[kek_id] = AESGCM.generate_key(256)
        self._index_keys[index_id] = secrets.token_bytes(KEY_BYTES)
        self._kek_primary, self._index_primary = kek_id, index_id

    def drop_old_keys(self) -> None:
        """Forget every KEK and index key but the primaries."""
        self._keks = {self._kek_primary: self._keks[self._kek_primary]}
        self._index_keys = {self._index_primary: self._index_keys[self._index_primary]}

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        """Encrypt a data key under the primary KEK; returns (kek_id, nonce + ciphertext + tag)."""
        kek_id = self.kek_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keks[self._kek_primary]).encrypt(nonce, dek, _wrap_aad(kek_id))
        return kek_id, nonce + sealed

    def unwrap(self, kek_id, wrapped: bytes) -> bytes:
        kek_id = str(kek_id)
        kek = self._keks.get(int(kek_id)) if kek_id.isascii() and kek_id.isdigit() else None
        if kek is None:
            raise DecryptionError(f"data key is wrapped under KEK {kek_id!r}, which this keyring "
                                  f"does not hold (it holds {self.kek_ids})")
        wrapped = bytes(wrapped or b"")
        if len(wrapped) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("wrapped data key is truncated")
        try:
            return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(kek_id))
        except InvalidTag:
            raise DecryptionError(f"wrapped data key failed authentication under KEK {kek_id}") from None

    def index_digests(self, domain: str, value: str) -> list[str]:
        """One digest per index key, primary first: search matches both sides of a rotation."""
        order = [self._index_primary] + sorted(i for i in self._index_keys if i != self._index_primary)
        return [self._digest(i, domain, value) for i in order]

    def index_digest(self, domain: str, value: str) -> str:
        return self._digest(self._index_primary, domain, value)

    def _digest(self, key_id: int, domain: str, value: str) -> str:
        if not domain or "\x00" in domain:
            raise ValueError("blind index domain must be a non-empty name like 'customers.phone'")
        mac = hmac.new(self._index_keys[key_id], f"{domain}\x00{value}".encode(), hashlib.sha256)
        # The key id prefix shows which key made a stored index, so a stale one is detectable.
        return f"{key_id}:{mac.hexdigest()[:DIGEST_HEX_CHARS]}"


def _wrap_aad(kek_id: str) -> bytes:
    return f"kehu-dek|{kek_id}".encode("ascii")


def _file_stamp(path: Path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


# --- subject keys ------------------------------------------------------------------------------


class SubjectKey(db.Model):
    """One wrapped data key per data subject. Deleting the row crypto-shreds the subject."""

    __tablename__ = "core_subject_key"
    # ids are never reused, so a deletion ledger naming a destroyed key stays exact
    __table_args__ = ({"sqlite_autoincrement": True},)

    id = db.Column(db.Integer, primary_key=True)
    kek_id = db.Column(db.String(16), nullable=False)
    wrapped = db.Column(db.LargeBinary, nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    _dek = None  # unwrapped key, cached per instance (not mapped) so a request unwraps once

    def __repr__(self):
        return f"<SubjectKey {self.id} kek={self.kek_id}>"


def _dek_of(subject_key: SubjectKey) -> bytes:
    state = inspect(subject_key)
    if state.deleted or state.was_deleted or subject_key in db.session.deleted:
        raise DecryptionError(f"subject key {subject_key.id} has been destroyed")
    if subject_key._dek is None:
        subject_key._dek = keyring().unwrap(subject_key.kek_id, subject_key.wrapped)
    return subject_key._dek


# --- application API ---------------------------------------------------------------------------


def init_app(app) -> None:
    """Load the master key file. No key, no app: there is no fallback key, ever."""
    path = app.config.get("MASTER_KEY_FILE")
    if not path:
        raise KeyringError("MASTER_KEY_FILE is not configured: set KEHU_MASTER_KEY_FILE")
    app.extensions[EXTENSION] = Keyring.load(path)


def keyring() -> Keyring:
    ring = current_app.extensions[EXTENSION]
    if ring.changed_on_disk():
        # A rotation in another process rewrapped the data keys; without the new file this
        # process could not read them until restarted.
        ring = Keyring.load(ring.path)
        current_app.extensions[EXTENSION] = ring
    return ring


def new_subject_key() -> SubjectKey:
    """A fresh data key for a new data subject, wrapped under the primary KEK, added to the session."""
    dek = AESGCM.generate_key(256)
    kek_id, wrapped = keyring().wrap(dek)
    subject_key = SubjectKey(kek_id=kek_id, wrapped=wrapped)
    subject_key._dek = dek
    db.session.add(subject_key)
    return subject_key


def encrypt(subject_key: SubjectKey, plaintext: str, aad: str) -> str:
    """AES-256-GCM with a random nonce, as ASCII "v1:<base64url(nonce + ciphertext + tag)>".

    ``aad`` binds the value to where it is stored, e.g. "customers_person|id_number|42": the same
    ciphertext copied to another row or column then fails to decrypt.
    """
    if not isinstance(plaintext, str):
        raise TypeError("encrypt() takes text; store None as NULL instead of encrypting it")
    if not aad:
        raise ValueError("encrypt() needs the AAD naming table, column and row")
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(_dek_of(subject_key)).encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
    return CIPHERTEXT_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt(subject_key: SubjectKey, token: str, aad: str) -> str:
    """The plaintext, or DecryptionError: never garbage, never an empty string in its place."""
    if not isinstance(token, str) or not token.startswith(CIPHERTEXT_PREFIX):
        raise DecryptionError(f"value for {aad} is not a kehu ciphertext")
    try:
        raw = base64.b64decode(token[len(CIPHERTEXT_PREFIX):], altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(f"ciphertext for {aad} is not valid base64 (truncated or altered)") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"ciphertext for {aad} is truncated")
    try:
        data = AESGCM(_dek_of(subject_key)).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                                    aad.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(f"ciphertext for {aad} failed authentication: altered, truncated, "
                              "or moved from another row, column or subject") from None
    return data.decode("utf-8")


BLOB_MAGIC = b"kehu1"


def encrypt_bytes(subject_key: SubjectKey, data: bytes, aad: str) -> bytes:
    """AES-256-GCM for files: b"kehu1" + nonce + ciphertext + tag, no base64 inflation."""
    if not aad:
        raise ValueError("encrypt_bytes() needs the AAD naming what the data is")
    nonce = os.urandom(NONCE_BYTES)
    return BLOB_MAGIC + nonce + AESGCM(_dek_of(subject_key)).encrypt(nonce, bytes(data), aad.encode("utf-8"))


def decrypt_bytes(subject_key: SubjectKey, blob: bytes, aad: str) -> bytes:
    """The plaintext of ``encrypt_bytes``, or DecryptionError."""
    head = len(BLOB_MAGIC)
    if not blob.startswith(BLOB_MAGIC) or len(blob) < head + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"data for {aad} is not a kehu ciphertext or is truncated")
    try:
        return AESGCM(_dek_of(subject_key)).decrypt(blob[head:head + NONCE_BYTES], blob[head + NONCE_BYTES:],
                                                    aad.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(f"data for {aad} failed authentication") from None


def blind_index(domain: str, value: str) -> str:
    """Digest to store beside an encrypted field; ``value`` must already be normalised."""
    return keyring().index_digest(domain, value)


def blind_index_candidates(domain: str, value: str) -> list[str]:
    """Digests to search with (``column.in_(...)``): one per index key during a rotation."""
    return keyring().index_digests(domain, value)


def destroy_subject_key(subject_key: SubjectKey, ref: str = "") -> None:
    """Crypto-shred: delete the wrapped key so the subject's data is unreadable everywhere.

    Old backups still hold the wrapped key: the key id (and ``ref``, an opaque "table:id" without
    personal data) is written ahead to the destruction ledger beside the key file, which
    ``kehu restore`` replays (core.ledger).
    """
    from core import ledger
    if subject_key.id is None:
        db.session.flush()
    ledger.record_destroyed(db.session, subject_key.id, ref)
    subject_key._dek = None
    db.session.delete(subject_key)
    db.session.flush()


def rotate(reindex_callbacks=()) -> dict:
    """Rotate the KEK and the blind-index key (``kehu keys rotate``). Safe to re-run after a crash.

    Each callback recomputes its module's blind indexes with ``blind_index`` (now under the new
    key) in the rotation's transaction, and may return a dict of counts to report.
    """
    # Work on a private copy: this process switches to new keys only once they are on disk.
    ring = Keyring.load(keyring().path)
    resumed = ring.rotation_pending
    # (a) new primaries, old keys kept: a crash from here on leaves everything readable.
    if not resumed:
        ring.add_primary_keys()
        ring.save()
    current_app.extensions[EXTENSION] = ring
    counts = {"subject_keys": 0}
    # (b) rewrap data keys and recompute indexes in one transaction.
    try:
        stale = db.session.scalars(select(SubjectKey).where(SubjectKey.kek_id != ring.kek_id)).all()
        for subject_key in stale:
            dek = ring.unwrap(subject_key.kek_id, subject_key.wrapped)
            subject_key.kek_id, subject_key.wrapped = ring.wrap(dek)
        counts["subject_keys"] = len(stale)
        for callback in reindex_callbacks:
            counts.update(callback() or {})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    # A request in another process may have wrapped a key under the old KEK meanwhile.
    left = db.session.scalar(select(func.count()).select_from(SubjectKey)
                             .where(SubjectKey.kek_id != ring.kek_id))
    db.session.commit()
    if left:
        raise KeyringError(f"{left} subject keys are still under an old KEK: "
                           "run `kehu keys rotate` again")
    # (c) retire the old keys: a copy of the old key file now opens nothing.
    ring = Keyring.load(ring.path)
    ring.drop_old_keys()
    ring.save()
    current_app.extensions[EXTENSION] = ring
    counts.update(kek_id=ring.kek_id, index_key_id=ring.index_key_id, resumed=resumed)
    return counts


# --------------------------------------------------------------------------- encrypted columns


def encrypted_column():
    """The column holding one encrypted field's ciphertext: ``<field>_ct``."""
    return db.Column(db.Text, nullable=True)


def blind_index_column():
    """The column holding an encrypted field's blind index for exact search: ``<field>_bidx``."""
    return db.Column(db.String(24), nullable=True, index=True)


class Encrypted:
    """An encrypted field of a model: reading decrypts, writing encrypts (and indexes).

    The model has a ``uid`` column, a ``<field>_ct`` column (:func:`encrypted_column`), a
    ``<field>_bidx`` column when ``search_domain`` is given (:func:`blind_index_column`) and a
    ``data_key()`` method returning the data subject's key (a customer's rows return the
    customer's key, so destroying the customer destroys them too). The ciphertext is bound (AAD)
    to table, field and row uid: copied to another row or column it does not decrypt. ``None``
    or "" clears the field."""

    def __init__(self, search_domain=None):
        self.search_domain = search_domain

    def __set_name__(self, owner, name):
        self.name = name
        self.ct = f"{name}_ct"
        self.bidx = f"{name}_bidx" if self.search_domain else None

    def aad(self, obj):
        return f"{obj.__tablename__}|{self.name}|{obj.uid}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        token = getattr(obj, self.ct)
        if token is None:
            return None
        # Decrypted once per instance: the plaintext is kept beside the ciphertext it came from and
        # used again only for that same ciphertext, row, field and data key (a new value, a
        # reload from the database or another key decrypts again; a destroyed key still refuses).
        key, aad = obj.data_key(), self.aad(obj)
        cache = obj.__dict__.setdefault("_kehu_plaintexts", {})
        hit = cache.get(self.name)
        if hit is not None and hit[0] is token and hit[1] == aad and hit[2] is key:
            _dek_of(key)
            return hit[3]
        plaintext = decrypt(key, token, aad)
        cache[self.name] = (token, aad, key, plaintext)
        return plaintext

    def __set__(self, obj, value):
        if obj.uid is None:
            import uuid
            obj.uid = uuid.uuid4().hex
        obj.__dict__.get("_kehu_plaintexts", {}).pop(self.name, None)
        if value is None or value == "":
            setattr(obj, self.ct, None)
            if self.bidx:
                setattr(obj, self.bidx, None)
            return
        setattr(obj, self.ct, encrypt(obj.data_key(), value, self.aad(obj)))
        if self.bidx:
            setattr(obj, self.bidx, blind_index(self.search_domain, value))
