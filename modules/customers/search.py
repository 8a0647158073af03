"""Partial search on encrypted fields through truncated blind indexes (CipherSweet's design).

An exact blind index (``<field>_bidx``) answers "is the name exactly 张三?". For partial search
the register also keeps, per customer, keyed indexes of *transformed* values — the surname
(first character of the name), the first two and the last two characters of the name, the last
four digits of each phone number and of the ID number — and TRUNCATES each to a few bits
(``BITS``), so one stored value stands for a whole bucket of different surnames or tails. On a
register of thousands of customers each bucket holds many customers: the database shows which
customers share a bucket, never which surname or tail they have.

A search turns the query into the same truncated values, takes the customers of those buckets as
*candidates* and confirms each candidate by decrypting only its own field, candidate after
candidate in list order, until a page is full (at most ``SCAN_LIMIT`` candidates per request).

Customer numbers and company names are not personal data and stay plain: a number is found by
its tail through ``number_rev`` (the number reversed, so a suffix becomes an indexed prefix).
"""
from __future__ import annotations

import re
import unicodedata

from core.api import crypto

# Bits kept of each truncated index: 2**bits buckets. 8 bits = 256 buckets: on a register of
# 10,000 customers a bucket holds some 40 customers (and several different name parts or tails).
# Surnames are few (a few hundred in use): 6 bits, so each bucket mixes several surnames.
BITS = {"name_head": 6, "name_head2": 8, "name_tail2": 8, "phone_tail": 8, "phone2_tail": 8,
        "id_number_tail": 8}
# The HMAC domain of each transform, distinct from the exact indexes' ("customers.name", ...).
DOMAINS = {"name_head": "customers.name.head1", "name_head2": "customers.name.head2",
           "name_tail2": "customers.name.tail2", "phone_tail": "customers.phone.tail4",
           "phone2_tail": "customers.phone.tail4", "id_number_tail": "customers.id_number.tail4"}
# Which encrypted field feeds which truncated index column (``<key>_bidx``).
PARTIAL = {"name": ("name_head", "name_head2", "name_tail2"), "phone": ("phone_tail",),
           "phone2": ("phone2_tail",), "id_number": ("id_number_tail",)}
SCAN_LIMIT = 1000  # candidates confirmed (decrypted) per request at most
TAIL = 4
_DIGITS = re.compile(r"\D")
_ID_TAIL = re.compile(r"[0-9]{3}[0-9X]")

# Substring search on company names (public data, stored in clear): PostgreSQL has a pg_trgm
# GIN index; SQLite an FTS5 trigram index over customers_customer(company_name) (external
# content: it keeps trigrams only, the names stay in the customer table), kept in sync by
# triggers. models.py creates it after create_all, migration customers_0004 on instances.
FTS_TABLE = "customers_customer_fts"
FTS_MIN = 3  # a trigram index answers queries of at least three characters
FTS_DDL = (  # literal statements: nothing in them comes from outside
    "CREATE VIRTUAL TABLE IF NOT EXISTS customers_customer_fts USING fts5(company_name, "
    "content='customers_customer', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS customers_customer_fts_ai AFTER INSERT ON customers_customer BEGIN "
    "INSERT INTO customers_customer_fts(rowid, company_name) VALUES (new.id, new.company_name); END",
    "CREATE TRIGGER IF NOT EXISTS customers_customer_fts_ad AFTER DELETE ON customers_customer BEGIN "
    "INSERT INTO customers_customer_fts(customers_customer_fts, rowid, company_name) "
    "VALUES ('delete', old.id, old.company_name); END",
    "CREATE TRIGGER IF NOT EXISTS customers_customer_fts_au AFTER UPDATE OF company_name ON customers_customer "
    "BEGIN INSERT INTO customers_customer_fts(customers_customer_fts, rowid, company_name) "
    "VALUES ('delete', old.id, old.company_name); "
    "INSERT INTO customers_customer_fts(rowid, company_name) VALUES (new.id, new.company_name); END",
)


def company_name_clause(model, q, dialect):
    """Company names containing ``q``: through the FTS5 trigram index on SQLite when ``q`` has
    at least three characters (a quoted phrase: its characters match only themselves), else
    LIKE on the lower-cased name (PostgreSQL's pg_trgm index is on lower(company_name)); either
    way "acme" finds "ACME 科技", as SQLite's FTS5 and LIKE do."""
    from sqlalchemy import column, func, literal_column, select, table
    if dialect != "sqlite" or len(q) < FTS_MIN or "\x00" in q:  # FTS5 refuses a NUL in a phrase
        return func.lower(model.company_name).contains(q.lower(), autoescape=True)
    phrase = '"' + q.replace('"', '""') + '"'
    fts = table(FTS_TABLE, column("rowid"))
    return model.id.in_(select(fts.c.rowid).where(literal_column(FTS_TABLE).match(phrase)))


def _name_text(value):
    return unicodedata.normalize("NFKC", value or "").strip().casefold()


def _phone_digits(value):
    """The digits of a stored (E.164) or typed number, without its extension or +86."""
    number = str(value or "").partition(";ext=")[0]
    digits = _DIGITS.sub("", number)
    return digits[2:] if number.startswith("+86") else digits


def transform(key, value):
    """The transformed value of ``value`` (the field's plaintext) for index ``key``, or None."""
    if not value:
        return None
    if key.startswith("name_"):
        text = _name_text(value)
        if key == "name_head":
            return text[:1] or None
        if key == "name_head2":
            return text[:2] if len(text) >= 2 else None
        return text[-2:] if len(text) >= 3 else None  # name_tail2: a 2-character name has head2
    if key in ("phone_tail", "phone2_tail"):
        digits = _phone_digits(value)
        return digits[-TAIL:] if len(digits) >= TAIL else None
    if key == "id_number_tail":
        text = str(value).strip().upper()
        return text[-TAIL:] if len(text) >= TAIL else None
    raise KeyError(key)


def _truncate(digest, bits):
    """"<key id>:<hex>" -> "<key id>:<first ``bits`` bits as hex>": the key id stays, so a
    search during a key rotation matches both sides, as the exact indexes do."""
    key_id, _sep, hexdigest = digest.partition(":")
    return f"{key_id}:{int(hexdigest[:8], 16) >> (32 - bits):x}"


def partial_index(key, value, blind_index=None):
    """The stored truncated index of ``value`` for index ``key`` (None when it has none).
    ``blind_index`` replaces crypto.blind_index (an import's crypto.BulkSealer)."""
    token = transform(key, value)
    return _truncate((blind_index or crypto.blind_index)(DOMAINS[key], token), BITS[key]) if token else None


def partial_candidates(key, token):
    """The truncated indexes to search for an already transformed ``token`` (one per index key)."""
    return sorted({_truncate(d, BITS[key]) for d in crypto.blind_index_candidates(DOMAINS[key], token)})


def set_partial_indexes(obj, field, value, blind_index=None):
    """Set the truncated index columns fed by ``field`` on a customer (the model calls this when
    the field is written; the reindex does when the index key changes)."""
    for key in PARTIAL.get(field, ()):
        setattr(obj, f"{key}_bidx", partial_index(key, value, blind_index))


# --- queries -------------------------------------------------------------------------------------

def query_kinds(q):
    """What a search text may be, as partial search reads it: {"name", "phone_tail",
    "id_number_tail", "number_tail"} (a subset)."""
    q = q.strip()
    kinds = set()
    text = unicodedata.normalize("NFKC", q)
    if text.isdigit() and len(text) <= 6:
        kinds.add("number_tail")
    digits = _phone_digits(text) if re.fullmatch(r"[+\d\s-]+", text) else ""
    if TAIL <= len(digits) <= 8 and digits == _DIGITS.sub("", text.removeprefix("+86")):
        kinds.add("phone_tail")
    if TAIL <= len(text) <= 6 and _ID_TAIL.fullmatch(text[-TAIL:].upper()) and re.fullmatch(r"[0-9]+[0-9Xx]", text):
        kinds.add("id_number_tail")
    if not re.search(r"[0-9@]", text) and 1 <= len(text) <= 20:
        kinds.add("name")
    return kinds


def candidate_clauses(model, q):
    """[(index key, SQL clause)] selecting the candidates of a partial search for ``q``."""
    kinds = query_kinds(q)
    clauses = []
    text = unicodedata.normalize("NFKC", q).strip()
    if "name" in kinds:
        name = _name_text(text)
        if len(name) == 1:
            clauses.append(("name_head", model.name_head_bidx.in_(partial_candidates("name_head", name))))
        else:
            clauses.append(("name_head2", model.name_head2_bidx.in_(partial_candidates("name_head2", name[:2]))))
            clauses.append(("name_tail2", model.name_tail2_bidx.in_(partial_candidates("name_tail2", name[-2:]))))
    if "phone_tail" in kinds:
        tail = _phone_digits(text)[-TAIL:]
        digests = partial_candidates("phone_tail", tail)
        clauses.append(("phone_tail", model.phone_tail_bidx.in_(digests)))
        clauses.append(("phone2_tail", model.phone2_tail_bidx.in_(digests)))
    if "id_number_tail" in kinds:
        clauses.append(("id_number_tail", model.id_number_tail_bidx.in_(
            partial_candidates("id_number_tail", text[-TAIL:].upper()))))
    return clauses


def number_tail_clause(model, q):
    """Customer numbers ending in the digits ``q`` ("301" finds KH-2026-000301): an indexed
    range on the reversed number, then the suffix itself."""
    text = unicodedata.normalize("NFKC", q).strip()
    if not (text.isdigit() and len(text) <= 6):
        return None
    low = text[::-1]
    high = low[:-1] + chr(ord(low[-1]) + 1)
    return (model.number_rev >= low) & (model.number_rev < high) & model.number.endswith(text)


def confirms(customer, q):
    """Does the customer really match the partial search ``q``? Decrypts only the fields the
    query can match (name, phones, ID number), of this customer only."""
    kinds = query_kinds(q)
    text = unicodedata.normalize("NFKC", q).strip()
    try:
        if "name" in kinds and customer.kind == "person":
            name = _name_text(customer.name)
            needle = _name_text(text)
            # the end of a name from two characters on (its index is the last two): one
            # character is a surname, and confirming "ends with" too made 李鄷 a match for 鄷
            # whenever 李 and 鄷 shared a surname bucket (1 in 64, key by key)
            if name and (name.startswith(needle) or (len(needle) >= 2 and name.endswith(needle))):
                return True
        if "phone_tail" in kinds:
            wanted = _phone_digits(text)
            for field in ("phone", "phone2"):
                value = getattr(customer, field)
                if value and _phone_digits(value).endswith(wanted):
                    return True
        if "id_number_tail" in kinds and customer.kind == "person":
            value = customer.id_number
            if value and value.upper().endswith(text.upper()):
                return True
    except crypto.DecryptionError:  # a destroyed customer matches nothing
        return False
    return False
