"""Field encryption with per-subject data keys, blind indexes, and key rotation.

Envelope scheme: every data subject (customer) has a random 256-bit data key (DEK) stored in
``core_subject_key`` only in wrapped form, encrypted under a key-encryption key (KEK) that lives
in the master key file outside the database. Fields are AES-256-GCM under the subject's DEK,
bound by AAD to their table, column and row. Deleting a subject key shreds that subject's data.

Exact-match search uses blind indexes: a truncated HMAC of the normalised value under a
separate index key. Four keys never mix: KEK, index key, audit key (all in the master key file)
and the Flask ``SECRET_KEY`` (its own file).

Two cipher suites (``SUITES``): "aes" (AES-256-GCM, HMAC-SHA256; the default) and "sm", the
national suite (SM4-GCM, HMAC-SM3). The key file records which one new data uses (``suite()``)
and, per key, the suite it belongs to, so an instance moves from one to the other with
``kehu keys rotate --crypto sm`` while everything written before stays readable: a ciphertext
names its cipher (prefix "v1:" or "sm1:", file magic), a blind index its key, and the audit
chain's MAC changes at an entry id recorded in the key file.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app, g
from sqlalchemy import func, inspect, or_, select

from core.db import db
from core.models import UTCDateTime, utcnow

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
DIGEST_HEX_CHARS = 16  # 64 bits of HMAC: exact-match search; callers still re-check after decrypt
CIPHERTEXT_PREFIX = "v1:"  # AES-256-GCM; SM4-GCM values start with "sm1:" (SUITES)
FILE_FORMAT = "kehu-keyring"
FILE_VERSION = 2  # 2 adds the suite of each key and of the audit MAC; version 1 files are all "aes"
READABLE_VERSIONS = (1, 2)
EXTENSION = "kehu.keyring"


class KeyringError(RuntimeError):
    """The master key file is missing, unreadable, too widely readable or malformed."""


class DecryptionError(Exception):
    """A ciphertext or wrapped key failed authentication, or names a key we do not hold."""


# --- cipher suites -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """A cipher suite: ``name`` as in ``kehu init --crypto NAME``, ``label`` for people."""

    name: str
    label: str
    cipher: str  # fields, files and wrapped data keys
    mac: str  # blind indexes and the audit chain
    kek_bytes: int  # key-encryption keys; data, index and audit keys are 256-bit in both suites
    prefix: str  # of a field's ciphertext
    magic: bytes  # of a file's ciphertext


SUITES = {
    "aes": Suite("aes", "AES-256-GCM + HMAC-SHA256", "AES-256-GCM", "HMAC-SHA256", 32, "v1:", b"kehu1"),
    "sm": Suite("sm", "国密 SM4-GCM + HMAC-SM3", "SM4-GCM", "HMAC-SM3", 16, "sm1:", b"kesm1"),
}
DEFAULT_SUITE = "aes"
_SM4_LABEL = b"kehu-sm4-gcm"  # a subject's SM4 key is HMAC-SM3(data key, this label)[:16]


def check_suite(name) -> Suite:
    """The suite called ``name``, or KeyringError (unknown, or this OpenSSL cannot do it)."""
    found = SUITES.get(name)
    if found is None:
        raise KeyringError(f"unknown cipher suite {name!r}: use one of {', '.join(SUITES)}")
    if name == "sm" and not _sm_available():
        raise KeyringError("the installed cryptography/OpenSSL cannot do SM4-GCM and SM3: "
                           "install cryptography 42 or later built with OpenSSL 3")
    return found


@functools.cache
def _sm_available() -> bool:
    try:
        _seal("sm", bytes(16), bytes(NONCE_BYTES), b"", b"")
        _hmac("sm", bytes(KEY_BYTES), b"")
    except Exception:  # UnsupportedAlgorithm, or an OpenSSL built without SM4/SM3
        return False
    return True


def _seal(suite: str, key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    """Ciphertext + 16-byte tag under the suite's AEAD."""
    if suite == "aes":
        return AESGCM(key).encrypt(nonce, data, aad)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(data) + encryptor.finalize() + encryptor.tag


def _opener(suite: str, key: bytes):
    """``open(nonce, sealed, aad)``: the plaintext of ``_seal`` under ``key``, or InvalidTag. Kept
    for a key that opens many values (a KEK, a list page's data keys): setting up AES-GCM for a
    key cost as much as the decryption itself."""
    if suite == "aes":
        return AESGCM(key).decrypt

    def open_sm4(nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < TAG_BYTES:
            raise InvalidTag()
        decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, sealed[-TAG_BYTES:])).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(sealed[:-TAG_BYTES]) + decryptor.finalize()
    return open_sm4


def _open(suite: str, key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of ``_seal``, or InvalidTag."""
    return _opener(suite, key)(nonce, sealed, aad)


def _hmac(suite: str, key: bytes, message: bytes) -> bytes:
    if suite == "aes":
        return hmac.digest(key, message, "sha256")  # one-shot in OpenSSL: hmac.new's object cost more than the MAC
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize()


def _suite_of_token(token: str):
    for found in SUITES.values():
        if token.startswith(found.prefix):
            return found
    return None


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


def _key_from_b64(text, where: str, size: int = KEY_BYTES) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise KeyringError(f"{where} is not valid base64") from None
    if len(key) != size:
        raise KeyringError(f"{where} must be {size} bytes, not {len(key)}")
    return key


def _suite_name(value, where: str) -> str:
    if value not in SUITES:
        raise KeyringError(f"{where} names unknown cipher suite {value!r}")
    return value


def _versioned_from_json(doc, kind: str, path) -> tuple[dict[int, bytes], int, dict[int, str]]:
    section = doc.get(kind)
    if not isinstance(section, dict) or not isinstance(section.get("keys"), dict) or not section["keys"]:
        raise KeyringError(f"master key file {path} is malformed: '{kind}' needs a non-empty 'keys' object")
    suites_doc = section.get("suites", {})
    if not isinstance(suites_doc, dict):
        raise KeyringError(f"master key file {path} is malformed: '{kind}' 'suites' is not an object")
    keys, suites = {}, {}
    for key_id, text in section["keys"].items():
        if not key_id.isascii() or not key_id.isdigit() or int(key_id) < 1:
            raise KeyringError(f"master key file {path} is malformed: '{kind}' key id {key_id!r} "
                               "is not a positive integer")
        where = f"master key file {path}: '{kind}' key {key_id}"
        suite = _suite_name(suites_doc.get(key_id, DEFAULT_SUITE), where)
        size = SUITES[suite].kek_bytes if kind == "kek" else KEY_BYTES
        keys[int(key_id)] = _key_from_b64(text, where, size)
        suites[int(key_id)] = suite
    primary = section.get("primary")
    if not isinstance(primary, int) or primary not in keys:
        raise KeyringError(f"master key file {path} is malformed: '{kind}' primary {primary!r} "
                           "is not one of its keys")
    return keys, primary, suites


def _audit_macs_from_json(doc, path) -> list[tuple[int, str]]:
    """[(first entry id, suite)] of the audit chain's MAC, oldest first."""
    marks = doc.get("audit_mac", [{"since": 1, "suite": DEFAULT_SUITE}])
    try:
        result = [(int(mark["since"]), _suite_name(mark["suite"], f"master key file {path}: 'audit_mac'"))
                  for mark in marks]
    except (KeyError, TypeError, ValueError):
        raise KeyringError(f"master key file {path} is malformed: 'audit_mac' needs "
                           "[{\"since\": id, \"suite\": name}, ...]") from None
    if not result or result[0][0] != 1 or any(a[0] >= b[0] for a, b in zip(result, result[1:], strict=False)):
        raise KeyringError(f"master key file {path} is malformed: 'audit_mac' must start at entry 1 "
                           "and go up")
    return result


# --- the keyring -------------------------------------------------------------------------------


class Keyring:
    """The keys of the master key file: versioned KEKs, versioned blind-index keys, one audit key,
    each KEK and index key with the cipher suite it belongs to, and the suite new data uses."""

    def __init__(self, *, keks, kek_primary, index_keys, index_primary, audit_key, path=None,
                 suite=DEFAULT_SUITE, kek_suites=None, index_suites=None, audit_macs=None):
        self._keks = dict(keks)
        self._kek_primary = kek_primary
        self._index_keys = dict(index_keys)
        self._index_primary = index_primary
        self._audit_key = audit_key
        self.suite = suite
        self._kek_suites = dict(kek_suites) if kek_suites is not None else dict.fromkeys(self._keks, suite)
        self._index_suites = (dict(index_suites) if index_suites is not None
                              else dict.fromkeys(self._index_keys, suite))
        self._audit_macs = list(audit_macs) if audit_macs is not None else [(1, suite)]
        self.path = Path(path) if path is not None else None
        self._stamp = None
        self._kek_openers = {}  # (suite, KEK) -> _opener
        all_keys = [*self._keks.values(), *self._index_keys.values(), audit_key]
        if len(set(all_keys)) != len(all_keys):
            raise KeyringError(f"master key file {path} is malformed: a key is used twice; "
                               "every key must be distinct")
        if (suite not in SUITES or self._kek_suites[kek_primary] != suite
                or self._index_suites[index_primary] != suite):
            raise KeyringError(f"master key file {path} is malformed: suite {suite!r} is not "
                               "the suite of its primary keys")

    def __repr__(self):
        return (f"<Keyring {self.path} suite={self.suite} kek={self._kek_primary} of {sorted(self._keks)} "
                f"index={self._index_primary} of {sorted(self._index_keys)}>")

    # files

    @classmethod
    def generate(cls, path, suite=DEFAULT_SUITE) -> Keyring:
        """Create a new master key file (mode 0600) for cipher suite ``suite``. Never overwrites:
        losing the old file would make every encrypted field unreadable."""
        path = Path(path)
        check_suite(suite)
        if path.exists():
            raise KeyringError(f"master key file {path} already exists: refusing to overwrite it")
        ring = cls(keks={1: secrets.token_bytes(SUITES[suite].kek_bytes)}, kek_primary=1,
                   index_keys={1: secrets.token_bytes(KEY_BYTES)}, index_primary=1,
                   audit_key=secrets.token_bytes(KEY_BYTES), path=path, suite=suite)
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
        if doc.get("version") not in READABLE_VERSIONS:
            raise KeyringError(f"master key file {path} has unsupported version {doc.get('version')!r}")
        if doc["version"] == 1:  # before the national suite: everything AES-GCM / HMAC-SHA256
            doc = {k: v for k, v in doc.items() if k not in ("suite", "audit_mac")}
            for kind in ("kek", "index"):
                if isinstance(doc.get(kind), dict):
                    doc[kind] = {k: v for k, v in doc[kind].items() if k != "suites"}
        suite = _suite_name(doc.get("suite", DEFAULT_SUITE), f"master key file {path}: 'suite'")
        keks, kek_primary, kek_suites = _versioned_from_json(doc, "kek", path)
        index_keys, index_primary, index_suites = _versioned_from_json(doc, "index", path)
        audit_key = _key_from_b64(doc.get("audit"), f"master key file {path}: 'audit' key")
        audit_macs = _audit_macs_from_json(doc, path)
        if "sm" in {suite, *kek_suites.values(), *index_suites.values(), *(s for _, s in audit_macs)}:
            check_suite("sm")
        ring = cls(keks=keks, kek_primary=kek_primary, index_keys=index_keys,
                   index_primary=index_primary, audit_key=audit_key, path=path, suite=suite,
                   kek_suites=kek_suites, index_suites=index_suites, audit_macs=audit_macs)
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
        def section(keys, primary, suites):
            return {"primary": primary,
                    "keys": {str(i): _b64(k) for i, k in sorted(keys.items())},
                    "suites": {str(i): suites[i] for i in sorted(keys)}}

        doc = {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "suite": self.suite,
            "kek": section(self._keks, self._kek_primary, self._kek_suites),
            "index": section(self._index_keys, self._index_primary, self._index_suites),
            "audit": _b64(self._audit_key),
            "audit_mac": [{"since": since, "suite": suite} for since, suite in self._audit_macs],
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

    @property
    def audit_macs(self) -> list[tuple[int, str]]:
        """[(first entry id, suite)]: from which audit entry on each suite's MAC is used."""
        return list(self._audit_macs)

    def audit_suite(self, entry_id=None) -> str:
        """The suite whose MAC signs audit entry ``entry_id`` (None: the newest entries)."""
        if entry_id is None:
            return self._audit_macs[-1][1]
        for since, suite in reversed(self._audit_macs):
            if entry_id >= since:
                return suite
        return self._audit_macs[0][1]

    def switch_audit_mac(self, suite: str, since: int) -> None:
        """Sign audit entries from id ``since`` on with ``suite``'s MAC (the caller holds the chain)."""
        if self.audit_suite() == suite:
            return
        marks = [(first, name) for first, name in self._audit_macs if first < since]
        if not marks:  # nothing was signed under the old MAC
            marks, since = [], 1
        self._audit_macs = marks if marks and marks[-1][1] == suite else [*marks, (since, suite)]

    def add_primary_keys(self, suite=None) -> None:
        """Add a new KEK and a new index key (of ``suite``, by default the current one) and make
        them primary; old ones stay for reading."""
        suite = suite or self.suite
        kek_id = max(self._keks) + 1
        index_id = max(self._index_keys) + 1
        self._keks[kek_id] = secrets.token_bytes(SUITES[suite].kek_bytes)
        self._index_keys[index_id] = secrets.token_bytes(KEY_BYTES)
        self._kek_suites[kek_id] = self._index_suites[index_id] = suite
        self._kek_primary, self._index_primary = kek_id, index_id
        self.suite = suite

    def drop_old_keys(self) -> None:
        """Forget every KEK and index key but the primaries."""
        self._keks = {self._kek_primary: self._keks[self._kek_primary]}
        self._index_keys = {self._index_primary: self._index_keys[self._index_primary]}
        self._kek_suites = {self._kek_primary: self._kek_suites[self._kek_primary]}
        self._index_suites = {self._index_primary: self._index_suites[self._index_primary]}
        self._kek_openers.clear()  # an old KEK must not live on in its opener

    def wrap(self, dek: bytes) -> tuple[str, bytes]:
        """Encrypt a data key under the primary KEK; returns (kek_id, nonce + ciphertext + tag)."""
        kek_id = self.kek_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = _seal(self._kek_suites[self._kek_primary], self._keks[self._kek_primary], nonce, dek,
                       _wrap_aad(kek_id))
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
        suite = self._kek_suites[int(kek_id)]
        opener = self._kek_openers.get((suite, kek))
        if opener is None:
            opener = self._kek_openers[(suite, kek)] = _opener(suite, kek)
        try:
            return opener(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_aad(kek_id))
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
        mac = _hmac(self._index_suites[key_id], self._index_keys[key_id], f"{domain}\x00{value}".encode())
        # The key id prefix shows which key made a stored index, so a stale one is detectable.
        return f"{key_id}:{mac.hex()[:DIGEST_HEX_CHARS]}"


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


def _subject_cipher_key(subject_key: SubjectKey, suite: str) -> bytes:
    """The key fields and files of a subject are sealed with under ``suite``: the 256-bit data key
    itself for AES-256-GCM, an SM4 key derived from it with HMAC-SM3 for SM4-GCM. One data key
    serves both, so a subject's values stay readable while an instance moves between suites."""
    return _cipher_key(_dek_of(subject_key), suite)


def _cipher_key(dek: bytes, suite: str) -> bytes:
    return dek if suite == "aes" else _hmac("sm", dek, _SM4_LABEL)[:16]


# --- application API ---------------------------------------------------------------------------


def init_app(app) -> None:
    """Load the master key file. No key, no app: there is no fallback key, ever."""
    path = app.config.get("MASTER_KEY_FILE")
    if not path:
        raise KeyringError("MASTER_KEY_FILE is not configured: set KEHU_MASTER_KEY_FILE")
    app.extensions[EXTENSION] = Keyring.load(path)


def keyring() -> Keyring:
    ring = current_app.extensions[EXTENSION]
    if g and g.get("kehu_keyring") is ring:
        return ring  # looked at on disk once per request or command, not once per value
    if ring.changed_on_disk():
        # A rotation in another process rewrapped the data keys; without the new file this
        # process could not read them until restarted.
        ring = Keyring.load(ring.path)
        current_app.extensions[EXTENSION] = ring
    if g:
        g.kehu_keyring = ring
    return ring


def suite() -> Suite:
    """The cipher suite of this instance (``.name`` "aes" or "sm", ``.label`` for people): what
    new fields, files, blind indexes and audit entries are sealed with."""
    return SUITES[keyring().suite]


def new_subject_key() -> SubjectKey:
    """A fresh data key for a new data subject, wrapped under the primary KEK, added to the session."""
    dek = secrets.token_bytes(KEY_BYTES)
    kek_id, wrapped = keyring().wrap(dek)
    subject_key = SubjectKey(kek_id=kek_id, wrapped=wrapped)
    subject_key._dek = dek
    db.session.add(subject_key)
    return subject_key


def encrypt(subject_key: SubjectKey, plaintext: str, aad: str) -> str:
    """The instance's AEAD (``suite()``) with a random nonce, as ASCII
    "<prefix><base64url(nonce + ciphertext + tag)>": "v1:" for AES-256-GCM, "sm1:" for SM4-GCM.

    ``aad`` binds the value to where it is stored, e.g. "customers_person|id_number|42": the same
    ciphertext copied to another row or column then fails to decrypt.
    """
    current = SUITES[keyring().suite]
    return _seal_token(current, _subject_cipher_key(subject_key, current.name), plaintext, aad)


def _seal_token(current: Suite, cipher_key: bytes, plaintext: str, aad: str) -> str:
    if not isinstance(plaintext, str):
        raise TypeError("encrypt() takes text; store None as NULL instead of encrypting it")
    if not aad:
        raise ValueError("encrypt() needs the AAD naming table, column and row")
    nonce = os.urandom(NONCE_BYTES)
    sealed = _seal(current.name, cipher_key, nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
    return current.prefix + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt(subject_key: SubjectKey, token: str, aad: str) -> str:
    """The plaintext, or DecryptionError: never garbage, never an empty string in its place."""
    return _open_token(token, aad, lambda suite_name: _opener(suite_name, _subject_cipher_key(subject_key, suite_name)))


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _open_token(token: str, aad: str, opener_for) -> str:
    """What :func:`decrypt` does, with ``opener_for(suite name)`` giving the ``_opener`` of the
    row's cipher key."""
    found = _suite_of_token(token) if isinstance(token, str) else None
    if found is None:
        raise DecryptionError(f"value for {aad} is not a kehu ciphertext")
    try:  # base64.b64decode(…, altchars=b"-_", validate=True), without its per-call set-up (a list page reads 100)
        raw = binascii.a2b_base64(token[len(found.prefix):].encode("ascii").translate(_URLSAFE_TO_STANDARD),
                                  strict_mode=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(f"ciphertext for {aad} is not valid base64 (truncated or altered)") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"ciphertext for {aad} is truncated")
    try:
        data = opener_for(found.name)(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(f"ciphertext for {aad} failed authentication: altered, truncated, "
                              "or moved from another row, column or subject") from None
    return data.decode("utf-8")


BLOB_MAGIC = b"kehu1"  # AES-256-GCM; SM4-GCM files start with b"kesm1" (SUITES)


def encrypt_bytes(subject_key: SubjectKey, data: bytes, aad: str) -> bytes:
    """The instance's AEAD for files: magic (b"kehu1" AES-256-GCM, b"kesm1" SM4-GCM) + nonce +
    ciphertext + tag, no base64 inflation."""
    if not aad:
        raise ValueError("encrypt_bytes() needs the AAD naming what the data is")
    current = SUITES[keyring().suite]
    nonce = os.urandom(NONCE_BYTES)
    return current.magic + nonce + _seal(current.name, _subject_cipher_key(subject_key, current.name),
                                         nonce, bytes(data), aad.encode("utf-8"))


def decrypt_bytes(subject_key: SubjectKey, blob: bytes, aad: str) -> bytes:
    """The plaintext of ``encrypt_bytes`` (under either suite), or DecryptionError."""
    found = next((x for x in SUITES.values() if bytes(blob[:len(x.magic)]) == x.magic), None)
    head = len(found.magic) if found else 0
    if found is None or len(blob) < head + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"data for {aad} is not a kehu ciphertext or is truncated")
    try:
        return _open(found.name, _subject_cipher_key(subject_key, found.name), blob[head:head + NONCE_BYTES],
                     blob[head + NONCE_BYTES:], aad.encode("utf-8"))
    except InvalidTag:
        raise DecryptionError(f"data for {aad} failed authentication") from None


def blind_index(domain: str, value: str) -> str:
    """Digest to store beside an encrypted field; ``value`` must already be normalised."""
    return keyring().index_digest(domain, value)


def blind_index_candidates(domain: str, value: str) -> list[str]:
    """Digests to search with (``column.in_(...)``): one per index key during a rotation."""
    return keyring().index_digests(domain, value)


def rekey_fields(obj, old_key, new_key) -> int:
    """Re-encrypt every Encrypted field of one row from data key ``old_key`` to ``new_key`` (same
    AAD; blind indexes do not depend on the data key and stay): for the customers.rekey hook.
    Returns how many values moved."""
    moved = 0
    for attr in vars(type(obj)).values():
        if isinstance(attr, Encrypted):
            token = getattr(obj, attr.ct)
            if token:
                aad = attr.aad(obj)
                setattr(obj, attr.ct, encrypt(new_key, decrypt(old_key, token, aad), aad))
                moved += 1
    return moved


def is_current(value) -> bool:
    """Is a stored ciphertext (a field's text or a file's bytes) under the instance's suite?"""
    current = SUITES[keyring().suite]
    if isinstance(value, str):
        return value.startswith(current.prefix)
    return bytes(value[:len(current.magic)]) == current.magic


def audit_mac(prev_hash: str, canonical: str) -> str:
    """The MAC of one audit entry (core.audit): HMAC under the audit key, with SHA-256 or SM3 as
    the key file says for the entry's id (an instance that changed suite has both in its chain)."""
    entry_id = json.loads(canonical)["id"] if len(keyring().audit_macs) > 1 else None
    return audit_signer()(prev_hash, canonical, entry_id)


def audit_signer():
    """``sign(prev_hash, canonical, entry_id) -> hex``: ``audit_mac`` with the keyring read once,
    for many entries in a row (an import's batch, the chain's verification)."""
    ring = keyring()
    key, marks = ring.audit_key, ring.audit_macs
    only = marks[0][1] if len(marks) == 1 else None

    def sign(prev_hash, canonical, entry_id):
        return _hmac(only or ring.audit_suite(entry_id), key, (prev_hash + "\n" + canonical).encode()).hex()
    return sign


def audit_key_mac(message: bytes, suite_name=None) -> str:
    """HMAC (SHA-256 or SM3: ``suite_name``, by default the instance's) of ``message`` under the
    audit key, for what is kept outside the database (backup manifests)."""
    ring = keyring()
    return _hmac(check_suite(suite_name or ring.suite).name, ring.audit_key, message).hex()


def checkpoint_mac(entry_id: int, entry_hash: str) -> str:
    """The MAC of the audit checkpoint naming entry ``entry_id`` (the same suite as that entry)."""
    ring = keyring()
    return _hmac(ring.audit_suite(entry_id), ring.audit_key,
                 f"checkpoint|{entry_id}|{entry_hash}".encode()).hex()


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


def rotate(reindex_callbacks=(), suite=None, reencrypt_callbacks=()) -> dict:
    """Rotate the KEK and the blind-index key (``kehu keys rotate``). Safe to re-run after a crash.

    Each callback recomputes its module's blind indexes with ``blind_index`` (now under the new
    key) in the rotation's transaction, and may return a dict of counts to report.

    ``suite`` ("aes" or "sm") moves the instance to that cipher suite: the new keys are of that
    suite, every data key is rewrapped under the new KEK, every ``Encrypted`` field of every
    table is re-encrypted under the new cipher, ``reencrypt_callbacks`` re-encrypt what modules
    keep elsewhere (files), and audit entries from the next id on are signed with the suite's
    MAC (the key file records from which id, so the chain stays verifiable across the switch).
    Fields left under another suite (written by a request that raced the switch) are re-encrypted
    by any later rotation too.
    """
    # Work on a private copy: this process switches to new keys only once they are on disk.
    ring = Keyring.load(keyring().path)
    target = check_suite(suite or ring.suite).name
    resumed = ring.rotation_pending
    if resumed and target != ring.suite:
        raise KeyringError(f"a rotation to suite {ring.suite!r} has not finished: run "
                           f"`kehu keys rotate --crypto {ring.suite}` first")
    # (a) new primaries, old keys kept: a crash from here on leaves everything readable.
    try:
        changed = not resumed
        if not resumed:
            ring.add_primary_keys(target)
        if ring.audit_suite() != target:
            ring.switch_audit_mac(target, _next_audit_id())  # holds the chain until the commit below
            changed = True
        if changed:
            ring.save()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    current_app.extensions[EXTENSION] = ring
    # keys of another suite still held: a change of suite is under way (or resumed after a crash)
    migrating = any(name != target for name in (*ring._kek_suites.values(), *ring._index_suites.values()))
    counts = {"subject_keys": 0}
    # (b) rewrap data keys, re-encrypt values of another suite, recompute indexes: one transaction.
    try:
        stale = db.session.scalars(select(SubjectKey).where(SubjectKey.kek_id != ring.kek_id)).all()
        for subject_key in stale:
            dek = ring.unwrap(subject_key.kek_id, subject_key.wrapped)
            subject_key.kek_id, subject_key.wrapped = ring.wrap(dek)
        counts["subject_keys"] = len(stale)
        db.session.flush()
        counts.update(reencrypt_fields())
        for callback in (*reindex_callbacks, *(reencrypt_callbacks if migrating else ())):
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
    counts.update(kek_id=ring.kek_id, index_key_id=ring.index_key_id, resumed=resumed, suite=ring.suite,
                  audit_mac_since=ring.audit_macs[-1][0])
    return counts


def _next_audit_id() -> int:
    """The id the next audit entry will get, with the chain locked for this transaction so that
    no entry is appended between reading it and committing the key file that names it."""
    from core import audit
    audit._lock_chain(db.session)
    return (db.session.scalar(select(func.max(audit.AuditEntry.id))) or 0) + 1


def encrypted_fields():
    """[(model, [Encrypted])] of every mapped table with encrypted fields, in table-name order."""
    found = []
    for mapper in db.Model.registry.mappers:
        model = mapper.class_
        fields = {}
        for klass in reversed(model.__mro__):
            fields.update({name: attr for name, attr in vars(klass).items() if isinstance(attr, Encrypted)})
        if fields and getattr(model, "__tablename__", None):
            found.append((model, list(fields.values())))
    return sorted(found, key=lambda pair: pair[0].__tablename__)


def reencrypt_fields(batch=500) -> dict:
    """Re-encrypt, in the caller's transaction, every ``Encrypted`` value not under the instance's
    suite (the blind indexes are the reindex hooks' business). The rows are updated in SQL, so
    their versions stay and open edit forms remain valid. Values whose data key was destroyed
    stay as they are (unreadable anyway). Returns counts of values per table."""
    current = SUITES[keyring().suite]
    others = [s.prefix for s in SUITES.values() if s.name != current.name]
    tables = set(inspect(db.session.connection()).get_table_names())
    counts = {}
    db.session.flush()
    for model, fields in encrypted_fields():
        if model.__tablename__ not in tables:
            continue  # a module that is not installed
        mapper = inspect(model)
        pk = mapper.primary_key[0]
        pk_attr = mapper.get_property_by_column(pk).key
        columns = {field.ct: mapper.attrs[field.ct].columns[0] for field in fields}
        stale = or_(*(getattr(model, name).like(prefix + "%") for name in columns for prefix in others))
        last, moved, unreadable = None, 0, 0
        while True:
            stmt = select(model).where(stale).order_by(pk).limit(batch)
            if last is not None:
                stmt = stmt.where(pk > last)
            rows = db.session.scalars(stmt).all()
            if not rows:
                break
            for row in rows:
                values = {}
                for field in fields:
                    token = getattr(row, field.ct)
                    if token is None or token.startswith(current.prefix):
                        continue
                    try:
                        key = row.data_key()
                        plaintext = decrypt(key, token, field.aad(row))
                    except DecryptionError:
                        unreadable += 1
                        continue
                    values[columns[field.ct].name] = encrypt(key, plaintext, field.aad(row))
                if values:
                    db.session.execute(model.__table__.update().where(pk == getattr(row, pk_attr))
                                       .values(**values))
                    moved += len(values)
            last = getattr(rows[-1], pk_attr)
            for row in rows:
                db.session.expunge(row)
        if moved or unreadable:
            counts[f"{model.__tablename__}_reencrypted"] = moved
        if unreadable:
            counts[f"{model.__tablename__}_unreadable"] = unreadable
    db.session.expire_all()  # rows loaded on the way (a contact's customer) hold the old values
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
        return self.aad_for(obj.__tablename__, obj.uid)

    def aad_for(self, table: str, uid: str) -> str:
        return f"{table}|{self.name}|{uid}"

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


class BulkSealer:
    """Data keys, ciphertexts and blind indexes for many new rows at once (an import's batch),
    with the keyring read once instead of once per value: the same key wrapping as
    :func:`new_subject_key`, the same tokens as :func:`encrypt` and the same digests as
    :func:`blind_index`, without an ORM object per data key. For one batch only: a key rotation
    in another process is seen by the next batch's sealer."""

    def __init__(self):
        self.ring = keyring()
        self.suite = SUITES[self.ring.suite]

    def new_data_key(self) -> tuple[bytes, str, bytes]:
        """(data key, KEK id, wrapped data key) of a fresh subject key, for a SubjectKey row."""
        dek = secrets.token_bytes(KEY_BYTES)
        kek_id, wrapped = self.ring.wrap(dek)
        return dek, kek_id, wrapped

    def cipher_key(self, dek: bytes) -> bytes:
        """What :func:`_subject_cipher_key` gives for this data key under the instance's suite."""
        return _cipher_key(dek, self.suite.name)

    def encrypt(self, cipher_key: bytes, plaintext: str, aad: str) -> str:
        return _seal_token(self.suite, cipher_key, plaintext, aad)

    def blind_index(self, domain: str, value: str) -> str:
        return self.ring.index_digest(domain, value)

    def blind_index_candidates(self, domain: str, value: str) -> list[str]:
        """What :func:`blind_index_candidates` gives: one digest per index key."""
        return self.ring.index_digests(domain, value)

    def set_field(self, attr: Encrypted, obj, value, cipher_key: bytes) -> None:
        """``attr.__set__(obj, value)`` for a row being built for a bulk insert (``obj`` has the
        model's ``__tablename__`` and a ``uid``): the ciphertext and blind index attributes."""
        if value is None or value == "":
            setattr(obj, attr.ct, None)
            if attr.bidx:
                setattr(obj, attr.bidx, None)
            return
        setattr(obj, attr.ct, self.encrypt(cipher_key, value, attr.aad(obj)))
        if attr.bidx:
            setattr(obj, attr.bidx, self.blind_index(attr.search_domain, value))


class BulkOpener:
    """Reads encrypted fields of many rows fetched as plain columns (a list page), without an ORM
    object per row or per data key: the keyring read once, each data key unwrapped once. The
    caller selects the row's ``uid``, the ``<field>_ct`` columns and its subject key's ``kek_id``
    and ``wrapped``; a row whose key was destroyed (no key: NULL) reads as None. The same
    plaintexts and errors as the :class:`Encrypted` attributes give. For one request only."""

    def __init__(self):
        self.ring = keyring()
        self._deks = {}
        self._openers = {}  # (wrapped data key, suite) -> _opener of its cipher key

    def _opener_of(self, kek_id, wrapped, suite_name):
        opener = self._openers.get((wrapped, suite_name))
        if opener is None:
            dek = self._deks.get(wrapped)
            if dek is None:
                dek = self._deks[wrapped] = self.ring.unwrap(kek_id, wrapped)
            opener = self._openers[(wrapped, suite_name)] = _opener(suite_name, _cipher_key(dek, suite_name))
        return opener

    def read(self, attr: Encrypted, table: str, uid: str, token, kek_id, wrapped):
        """The plaintext of field ``attr`` of row ``uid`` of ``table``, or None when the field is
        empty or the row's data key is gone."""
        if token is None or wrapped is None:
            return None
        return _open_token(token, attr.aad_for(table, uid),
                           lambda suite_name: self._opener_of(kek_id, wrapped, suite_name))
