"""Import and export of customers as CSV (UTF-8, with or without BOM) or XLSX, with the Chinese
column headers of shared/DESIGN.md.

Import is all-or-nothing per file: every row is read, cleaned (``services.clean_customer_data``)
and checked for duplicates (against the register and inside the file) before anything is
written; then all rows are created in one transaction, which is rolled back on any error. Rows
carrying 身份证号 or 银行账号 need the importer's confirmation that the customer's separate
consent was collected; it is recorded per customer.

Export is scoped to the actor's remit, masks L2/L3 unless the actor may reveal them, neutralises
spreadsheet formulas (ASVS 5.0 1.2.10) and is audited with its reason and row count, before the
file is handed out. The audit trail gets counts and field names, never personal values.
"""
from __future__ import annotations

import csv
import datetime
import io
import re
import unicodedata
import zipfile
from contextlib import closing
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.api import User, audit, can, crypto, db, in_values, module_setting, scoped, utcnow

from . import search
from .fields import (
    CUSTOMER_KINDS,
    FIELDS,
    GENDERS,
    L2,
    L3,
    SOURCES,
    STATUSES,
    column_level,
    level_of,
    mask_value,
)
from .models import Consent, Customer, Searchable

FORMATS = ("csv", "xlsx")
MAX_ROWS = 50_000  # per file; CUSTOMERS_IMPORT_MAX_ROWS overrides
MAX_XLSX_MEMBERS = 2_000  # an .xlsx is a zip: refuse archive bombs before openpyxl opens it
MAX_XLSX_UNCOMPRESSED = 200 * 1024 * 1024
SENSITIVE_FIELDS = ("id_number", "bank_account")  # need separate consent (PIPL art. 29)
OWNER_ROLES = ("sales", "service", "head")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Column:
    key: str  # a field name of fields.FIELDS, or one of the register's own columns below
    header: str  # the Chinese header, a stable name
    aliases: tuple = ()  # other headers accepted on import (the zh_CN labels of fields.py)
    kinds: tuple = ("person", "org")
    importable: bool = True


def _field(name, header=None, aliases=()):
    spec = FIELDS[name]
    header = header or spec.label["zh_CN"]
    extra = tuple(a for a in (spec.label["zh_CN"], *aliases) if a != header)
    return Column(name, header, extra, spec.kinds)


COLUMNS = (
    Column("number", "客户编号", importable=False),  # assigned by the register; ignored on import
    Column("kind", "类型"),
    Column("display_name", "名称", ("姓名", "企业名称", "客户名称")),  # person's or company's name
    _field("gender"),
    _field("birth_date"),
    _field("phone", "手机"),
    _field("phone2"),
    _field("email", aliases=("邮箱",)),
    _field("id_number"),
    _field("bank_account"),
    _field("home_address"),
    _field("emergency_contact"),
    _field("credit_code"),
    _field("legal_rep"),
    _field("company_address"),
    _field("postcode"),
    _field("fax"),
    _field("industry"),
    _field("business_scope"),
    _field("credit_rating"),
    Column("status", "状态"),
    Column("source", "来源"),
    Column("tags", "标签"),
    Column("owner", "负责人"),
    _field("notes"),
)
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
REQUIRED_COLUMNS = ("kind", "display_name")
# Purpose minimisation: a marketing list carries what is needed to contact, nothing more.
MARKETING_COLUMNS = ("number", "kind", "display_name", "phone", "email", "owner")
TEMPLATE_EXAMPLE = {
    "kind": "个人", "display_name": "王芳", "gender": "女", "birth_date": "1949-12-31",
    "phone": "13800138000", "email": "wangfang@example.com", "id_number": "11010519491231002X",
    "home_address": "北京市朝阳区示例路1号", "status": "潜在", "source": "上门拜访",
    "notes": "示例行：导入前请删除",
}


def _header_key(text):
    return unicodedata.normalize("NFKC", str(text or "")).replace("\ufeff", "").strip().rstrip("*").strip()


HEADER_LOOKUP = {_header_key(h): c for c in COLUMNS for h in (c.header, *c.aliases)}


def _choices(labels):
    """{accepted text: key} for a {key: {"zh_CN", "en"}} table: the Chinese label, the English
    label and the key itself, case-insensitively for the Latin ones."""
    out = {}
    for key, label in labels.items():
        for text in (key, label["zh_CN"], label["en"]):
            out[text.casefold()] = key
    return out


KIND_CHOICES = _choices(CUSTOMER_KINDS)
GENDER_CHOICES = _choices(GENDERS)
STATUS_CHOICES = _choices(STATUSES)
SOURCE_CHOICES = _choices(SOURCES)


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (format, encoding, columns); one line for the user.
    ``code`` names the problem for the audit trail, which never gets the file's text."""

    def __init__(self, message, code="file"):
        super().__init__(message)
        self.code = code


@dataclass
class RowError:
    row: int  # the spreadsheet's row number: the header is row 1
    column: str  # Chinese header, or "" for the whole row
    message: str

    def __str__(self):
        where = _("row %(row)d", row=self.row)
        if self.column:
            where += f" [{self.column}]"
        return f"{where}: {self.message}"


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0  # rows naming the 客户编号 of a customer in the importer's remit
    unchanged: int = 0  # such rows that changed nothing
    to_create: int = 0  # what a check (dry run) found
    to_update: int = 0
    consents: int = 0
    columns: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    dry_run: bool = False
    numbers: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors

    @property
    def error_rows(self):
        return len({e.row for e in self.errors})


# --- reading ------------------------------------------------------------------------------------

def detect_format(data: bytes, filename: str = "") -> str:
    """"xlsx" or "csv", decided by content; a name that says otherwise is refused."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix == "xls" or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(_("Old .xls workbooks are not supported: save the file as .xlsx or as "
                                "CSV (UTF-8) and upload it again."), code="xls")
    if data.startswith(ZIP_MAGIC):
        if suffix not in ("", "xlsx"):
            raise ImportFileError(_("The file's content (an Excel workbook) does not match its name."),
                                  code="content_mismatch")
        return "xlsx"
    if suffix == "xlsx":
        raise ImportFileError(_("The file is named .xlsx but is not an Excel workbook."),
                              code="content_mismatch")
    if suffix not in ("", "csv", "txt"):
        raise ImportFileError(_("Upload a .csv or .xlsx file."), code="extension")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ImportFileError(_("The CSV file is not UTF-8 (Excel: save as \"CSV UTF-8\"; WPS: choose "
                                "UTF-8 encoding) and upload it again."), code="encoding") from None
    return "csv"


def _cell_text(value):
    """One cell as text: numbers without a spurious ".0", dates as YYYY-MM-DD, and a leading
    apostrophe that guarded a formula on export removed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime.datetime):
        value = value.date() if value.time() == datetime.time() else value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    text = str(value)
    if len(text) > 1 and text[0] == "'" and text[1] in FORMULA_TRIGGERS:
        text = text[1:]
    return text


def _csv_rows(data: bytes):
    text = data.decode("utf-8-sig")
    if "\0" in text:
        raise ImportFileError(_("The CSV file contains NUL characters: it is not a text file."),
                              code="encoding")
    yield from csv.reader(io.StringIO(text, newline=""))


def _xlsx_problem(exc):
    """The one-line ImportFileError for what openpyxl raised on a workbook's XML."""
    from defusedxml import DefusedXmlException
    chain, seen = exc, set()
    while chain is not None and id(chain) not in seen:  # openpyxl wraps the parser's error
        seen.add(id(chain))
        if isinstance(chain, DefusedXmlException):
            break
        chain = chain.__cause__ or chain.__context__
    if isinstance(chain, DefusedXmlException):  # DTDs, entity declarations, external references
        return ImportFileError(_("The Excel workbook contains XML entity declarations, which are not "
                                 "accepted: save it again with Excel or WPS, or upload a CSV file."),
                               code="xml_entities")
    return ImportFileError(_("The Excel workbook is damaged and cannot be read."), code="damaged")


def _xlsx_rows(data: bytes):
    """The rows of the first sheet. Every XML part is parsed by openpyxl through defusedxml (a
    dependency: openpyxl uses it whenever it is installed), which refuses DTDs and entities, so
    entity expansion ("billion laughs") and external entities never run. Whatever a malformed
    workbook raises, at opening or while its rows are read (read-only mode parses lazily), ends
    as one ImportFileError."""
    import openpyxl
    from openpyxl import load_workbook
    if not openpyxl.DEFUSEDXML:  # defusedxml missing, or OPENPYXL_DEFUSEDXML=False
        raise ImportFileError(_("Excel workbooks cannot be read safely on this server: upload a CSV "
                                "file."), code="xml_unsafe")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except zipfile.BadZipFile:
        raise ImportFileError(_("The Excel workbook is damaged and cannot be read."),
                              code="damaged") from None
    if (len(members) > MAX_XLSX_MEMBERS
            or sum(m.file_size for m in members) > MAX_XLSX_UNCOMPRESSED):
        raise ImportFileError(_("The Excel workbook is too large once unpacked."), code="too_large")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a malformed workbook; the user needs one line
        raise _xlsx_problem(exc) from None
    try:
        if not workbook.worksheets:
            raise ImportFileError(_("The Excel workbook has no worksheet."), code="damaged")
        try:
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            for values in rows:
                yield list(values)
        except Exception as exc:  # the sheet's XML, parsed row by row: truncated, entities, ...
            raise _xlsx_problem(exc) from None
    finally:
        workbook.close()


def read_table(data: bytes, filename: str = ""):
    """(format, [Column or None per position], [(row number, {key: text})]); raises ImportFileError
    for unknown, duplicate or missing columns and for too many rows."""
    fmt = detect_format(data, filename)
    raw = _xlsx_rows(data) if fmt == "xlsx" else _csv_rows(data)
    try:
        header = next(raw)
    except StopIteration:
        raise ImportFileError(_("The file is empty."), code="empty") from None
    except csv.Error as exc:
        raise ImportFileError(_("The CSV file cannot be read: %(reason)s", reason=str(exc)),
                              code="damaged") from None
    columns, unknown, seen = [], [], {}
    for title in header:
        key = _header_key(_cell_text(title))
        if not key:
            columns.append(None)
            continue
        column = HEADER_LOOKUP.get(key)
        if column is None:
            unknown.append(key)
        elif column.key in seen:
            raise ImportFileError(_("Columns %(a)s and %(b)s are the same column; keep one of them.",
                                    a=seen[column.key], b=key), code="duplicate_columns")
        else:
            seen[column.key] = key
        columns.append(column)
    if unknown:
        raise ImportFileError(_("Unknown columns: %(names)s. Use the headers of the import template.",
                                names="、".join(unknown)), code="unknown_columns")
    missing = [COLUMN_BY_KEY[k].header for k in REQUIRED_COLUMNS if k not in seen]
    if missing:
        raise ImportFileError(_("Missing columns: %(names)s.", names="、".join(missing)),
                              code="missing_columns")
    limit = module_setting("customers", "import_max_rows", MAX_ROWS)
    rows = []
    try:
        for number, values in enumerate(raw, start=2):
            texts = [_cell_text(v) for v in values]
            if not any(t.strip() for t in texts):
                continue  # blank lines, and the empty rows Excel leaves at the end
            extra = [i for i, t in enumerate(texts)
                     if t.strip() and (i >= len(columns) or columns[i] is None)]
            if extra:
                raise ImportFileError(_("Row %(row)d has a value in column %(col)d, which has no header.",
                                        row=number, col=extra[0] + 1), code="headerless_column")
            rows.append((number, {c.key: texts[i] for i, c in enumerate(columns)
                                  if c is not None and i < len(texts)}))
            if len(rows) > limit:
                raise ImportFileError(_("The file has more than %(n)d rows: split it into smaller files.",
                                        n=limit), code="too_many_rows")
    except csv.Error as exc:
        raise ImportFileError(_("The CSV file cannot be read: %(reason)s", reason=str(exc)),
                              code="damaged") from None
    return fmt, [c for c in columns if c is not None], rows


# --- import -------------------------------------------------------------------------------------

def _date_text(text):
    """Common ways of writing a date ("1990/1/2", "1990年1月2日", "19900102") as YYYY-MM-DD; other
    text is passed on for the cleaner to refuse."""
    value = unicodedata.normalize("NFKC", text).strip()
    match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", value) or \
        re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value)
    if match:
        return "{}-{:0>2}-{:0>2}".format(*match.groups())
    return value


def department_owners(actor):
    """{username: user} of the active sales, service and head users of the actor's department."""
    rows = db.session.execute(select(User).where(
        User.department_id == actor.department_id, User.active.is_(True),
        User.role.in_(OWNER_ROLES))).scalars()
    return {u.username: u for u in rows}


def _check_importer(actor):
    if not can(actor, "customers.import"):
        raise ImportFileError(_("You may not import customers."), code="permission")
    if actor.department_id is None:
        raise ImportFileError(_("Only a member of a department can import customers."), code="permission")


def _convert(values, kind, errors, row, owners, actor):
    """The cleaner's input for one row: choice labels mapped to keys, the name put in its field,
    the owner looked up. Problems go to ``errors``; returns (data, owner)."""
    data = {}
    for key, text in values.items():
        column = COLUMN_BY_KEY[key]
        text = text.strip()
        if not text or key in ("kind", "owner") or not column.importable:
            continue
        if kind not in column.kinds:
            other = pick_label(CUSTOMER_KINDS[column.kinds[0]])
            errors.append(RowError(row, column.header, _("This column is only for %(kind)s customers.",
                                                         kind=other)))
            continue
        if key == "display_name":
            data["name" if kind == "person" else "company_name"] = text
        elif key in ("gender", "status", "source"):
            table = {"gender": GENDER_CHOICES, "status": STATUS_CHOICES, "source": SOURCE_CHOICES}[key]
            labels = {"gender": GENDERS, "status": STATUSES, "source": SOURCES}[key]
            choice = table.get(text.casefold())
            if choice is None:
                allowed = "、".join(v["zh_CN"] for v in labels.values())
                errors.append(RowError(row, column.header, _("Unknown value; use one of: %(values)s.",
                                                             values=allowed)))
            else:
                data[key] = choice
        elif key == "birth_date":
            data[key] = _date_text(text)
        else:
            data[key] = text
    owner = actor
    username = values.get("owner", "").strip()
    if username:
        owner = owners.get(username)
        if owner is None:
            errors.append(RowError(row, COLUMN_BY_KEY["owner"].header, _(
                "%(name)s is not an active sales, service or head user of your department.", name=username)))
    return data, owner


def pick_label(labels):
    from core.api import pick
    return pick(labels)


def _error_column(name):
    """The header under which to report a cleaner error on field ``name``."""
    if name in ("name", "company_name"):
        return COLUMN_BY_KEY["display_name"].header
    column = COLUMN_BY_KEY.get(name)
    return column.header if column else ""


def _error_list(errors):
    """The cleaner's errors as [(field, message)], whatever container it returned."""
    if isinstance(errors, dict):
        out = []
        for name, messages in errors.items():
            for message in (messages if isinstance(messages, (list, tuple)) else [messages]):
                out.append((name, str(message)))
        return out
    return [(name, str(message)) for name, message in errors or ()]


def _duplicate_keys(clean):
    """The values that make two rows of one file the same customer (as quality.find_duplicates
    matches them against the register)."""
    keys = []
    for name in ("phone", "phone2"):
        if clean.get(name):
            keys.append(("phone", clean[name], FIELDS["phone"].label))
    if clean.get("id_number"):
        keys.append(("id_number", clean["id_number"], FIELDS["id_number"].label))
    if clean.get("credit_code"):
        keys.append(("credit_code", clean["credit_code"], FIELDS["credit_code"].label))
    return keys


def _import_consent(clean, channel, memo):
    """``services.import_consent`` of a row, memoised in ``memo``: it depends only on whether the
    row needs a consent and holds sensitive fields (its scope text is translated once, not per
    row). A fresh dict each time, as the service returns."""
    from . import services
    from .consent_rules import needs_consent
    key = (channel, bool(needs_consent(clean)), bool(services._has_sensitive(clean)))
    if key not in memo:
        memo[key] = services.import_consent(clean, channel)
    found = memo[key]
    return None if found is None else {**found, "purposes": list(found["purposes"])}


CLEAN_CHUNK = 500  # rows cleaned together (half of the chunks in a helper process when allowed)


def _clean_chunk(chunk):
    """``services.clean_customer_data`` of each (kind, data, partial), with the errors as text
    [(field, message)]. Pure, no database: a command shares the chunks with a helper process."""
    from . import services
    out = []
    for kind, data, partial in chunk:
        clean, errors = services.clean_customer_data(kind, data, partial=partial)
        out.append((clean, _error_list(errors)))
    return out


def check_rows(actor, rows, *, consent_channel=None, progress=None, elsewhere=None, matched=None,
               helper_process=False):
    """Clean every row and check it for duplicates. Writes nothing.

    Returns ([(row number, kind, clean data, owner)], [RowError]). A row naming the 客户编号 of a
    customer in the actor's remit updates that customer: it is put in ``matched`` as {row number:
    (customer, version read)}, its entry carries only the changed cells (as the cleaner's input,
    for ``services.update_customer``) and owner None when the owner stays. Matches outside the actor's
    remit are appended to ``elsewhere`` as (customer id, reason) for the caller to audit once the
    transaction is settled; more of them than the actor's duplicate checks may still meet
    (quality.probes_left) refuse the file as a whole. ``helper_process``: a helper process cleans
    every other chunk of rows meanwhile (commands only)."""
    from core.api import map_ahead

    from . import quality, services
    elsewhere = [] if elsewhere is None else elsewhere
    left = quality.probes_left(actor)
    if not left:
        raise ImportFileError(str(quality.PROBE_LIMIT_MESSAGE), code="duplicate_probe_limit")
    owners = department_owners(actor)
    existing = _existing_customers(actor, rows)
    matched = {} if matched is None else matched
    reveal = _reveal_levels(actor)
    cleaned, errors, in_file, consents = [], {}, {}, {}
    to_clean = []  # (row, kind, customer updated or None, cleaner's input, owner), in file order
    for row, values in rows:
        row_errors = errors.setdefault(row, [])
        kind = KIND_CHOICES.get(values.get("kind", "").strip().casefold())
        number = values.get("number", "").strip()
        if number:
            customer = existing.get(number)
            first = in_file.setdefault(("number", number), row)
            if first != row:
                row_errors.append(RowError(row, COLUMN_BY_KEY["number"].header, _(
                    "Same %(what)s as row %(other)d of this file.", what=COLUMN_BY_KEY["number"].header,
                    other=first)))
            elif customer is None:
                row_errors.append(RowError(row, COLUMN_BY_KEY["number"].header, _(
                    "No customer %(number)s in your remit: leave 客户编号 empty to add a new customer.",
                    number=number)))
            elif kind is not None and kind != customer.kind:
                row_errors.append(RowError(row, COLUMN_BY_KEY["kind"].header, _(
                    "The type of an existing customer cannot be changed by an import.")))
            elif kind is not None:
                values = _changed_values(customer, values, reveal)
                if "status" in values:
                    row_errors.append(RowError(row, COLUMN_BY_KEY["status"].header, _(
                        "Change the status on the customer's page (it needs a reason); the import "
                        "leaves it as it is.")))
                    values.pop("status")
                matched[row] = (customer, customer.version)
        if kind is None:
            row_errors.append(RowError(row, COLUMN_BY_KEY["kind"].header, _(
                "The customer type must be %(person)s or %(org)s.",
                person=CUSTOMER_KINDS["person"]["zh_CN"], org=CUSTOMER_KINDS["org"]["zh_CN"])))
            if progress is not None:
                progress(1)
        else:
            target = matched.get(row, (None, None))[0]
            data, owner = _convert(values, kind, row_errors, row, owners, actor)
            if target is not None and "owner" not in values:
                owner = None  # unchanged
            to_clean.append((row, kind, target, data, owner))
    chunks = [to_clean[k:k + CLEAN_CHUNK] for k in range(0, len(to_clean), CLEAN_CHUNK)]
    verdicts = map_ahead(_clean_chunk, [[(kind, data, target is not None) for _row, kind, target, data, _owner in chunk]
                                        for chunk in chunks], helper=helper_process, share=True)
    for chunk, chunk_verdicts in zip(chunks, verdicts, strict=True):
        for (row, kind, target, data, owner), (clean, clean_errors) in zip(chunk, chunk_verdicts, strict=True):
            row_errors = errors[row]
            row_errors += [RowError(row, _error_column(n), m) for n, m in clean_errors]
            if not clean_errors:
                sensitive = [n for n in SENSITIVE_FIELDS if clean.get(n)]
                if target is not None and sensitive and services.has_sensitive_consent(target):
                    sensitive = []  # the customer's separate consent is on record already
                if sensitive and not consent_channel:
                    row_errors.append(RowError(row, _error_column(sensitive[0]), _(
                        "ID numbers and bank accounts need the customer's separate consent: confirm that "
                        "it was collected (and how) to import this row.")))
                elif missing := services.collection_consent_errors(
                        clean, (), _import_consent(clean, consent_channel, consents)):
                    name = next(n for n in missing if not n.startswith("consent_"))
                    row_errors.append(RowError(row, _error_column(name), str(missing[name])))
                for domain, value, label in _duplicate_keys(clean):
                    first = in_file.setdefault((domain, value), row)
                    if first != row:
                        row_errors.append(RowError(row, _error_column(domain), _(
                            "Same %(what)s as row %(other)d of this file.", what=pick_label(label),
                            other=first)))
                cleaned.append((row, kind, data if target is not None else clean, owner))
            if progress is not None:
                progress(1)
    suspects = _register_suspects([services.clean_customer_data(kind, clean, partial=True)[0]
                                   if row in matched else clean for row, kind, clean, _owner in cleaned])
    for index, (row, kind, clean, _owner) in enumerate(cleaned):
        if index in suspects:
            target = matched.get(row, (None, None))[0]
            if target is not None:
                clean = services.clean_customer_data(kind, clean, partial=True)[0]
            errors[row] += _register_duplicates(actor, row, clean, elsewhere,
                                                exclude_id=target.id if target is not None else None)
    if len(elsewhere) > left:
        del elsewhere[left:]  # what the allowance covers is audited; the rest is not even reported
        raise ImportFileError(str(quality.PROBE_LIMIT_MESSAGE), code="duplicate_probe_limit")
    checked = [entry for entry in cleaned if not errors[entry[0]]]
    return checked, [e for row_errors in errors.values() for e in row_errors]


_REASON_FIELD = {"id_number": "id_number", "credit_code": "credit_code", "name_phone": "phone",
                 "phone": "phone", "company_name": "company_name"}


def _lookup_keys(clean):
    """What quality.find_duplicates looks a row up by."""
    return {"phone": clean.get("phone"), "id_number": clean.get("id_number"),
            "credit_code": clean.get("credit_code"), "name": clean.get("name") or clean.get("company_name")}


def _register_suspects(cleans, chunk=500):
    """Indexes of the rows that may match a customer of the register: a few IN queries over the
    blind indexes for the whole file, so that only these rows need quality.find_duplicates."""
    sealer = crypto.BulkSealer()  # the keyring read once for the check, not once per digest
    wanted = {}  # (column, value) -> [row index]
    for index, clean in enumerate(cleans):
        keys = _lookup_keys(clean)
        if keys["phone"]:
            for digest in sealer.blind_index_candidates(FIELDS["phone"].search_domain, keys["phone"]):
                wanted.setdefault(("phone", digest), []).append(index)
        if keys["id_number"]:
            for digest in sealer.blind_index_candidates(FIELDS["id_number"].search_domain, keys["id_number"]):
                wanted.setdefault(("id_number", digest), []).append(index)
        if keys["credit_code"]:
            wanted.setdefault(("credit_code", keys["credit_code"]), []).append(index)
        if keys["name"]:
            wanted.setdefault(("company_name", keys["name"]), []).append(index)
    columns = {"phone": (Customer.phone_bidx, Customer.phone2_bidx), "id_number": (Customer.id_number_bidx,),
               "credit_code": (Customer.credit_code,), "company_name": (Customer.company_name,)}
    suspects = set()
    for kind, cols in columns.items():
        values = [v for k, v in wanted if k == kind]
        for start in range(0, len(values), chunk):
            part = values[start:start + chunk]
            for col in cols:
                for found in db.session.execute(select(col).where(in_values(col, part)).distinct()).scalars():
                    suspects.update(wanted[(kind, found)])
    return suspects


def _existing_customers(actor, rows, chunk=500):
    """{customer number: customer} of the numbers the file names that are in the actor's remit
    (a number outside it is not found, exactly like one that does not exist)."""
    numbers = sorted({values.get("number", "").strip() for _row, values in rows} - {""})
    found = {}
    for start in range(0, len(numbers), chunk):
        stmt = scoped(select(Customer), actor, Customer).where(in_values(Customer.number, numbers[start:start + chunk]))
        for customer in db.session.scalars(stmt.options(selectinload(Customer.subject_key),
                                                        selectinload(Customer.owner))):
            found[customer.number] = customer
    return found


def _reveal_levels(actor):
    return {level for level, perm in ((L2, "customers.reveal_l2"), (L3, "customers.reveal_l3"))
            if can(actor, perm)}


def _changed_values(customer, values, reveal):
    """The cells of an update row that differ from what an export shows for the customer now: a
    cell left as exported (masked, or in clear text when the importer may reveal it) changes nothing; an emptied cell clears the
    field (the number, type, owner and status cannot be cleared)."""
    changed = {"kind": values.get("kind", "")}
    for key, text in values.items():
        if key in ("number", "kind"):
            continue
        text = text.strip()
        if not text and key in ("owner", "status"):
            continue
        if key in FIELDS and customer.kind not in FIELDS[key].kinds and not text:
            continue
        shown = set()  # as a masked export shows it, and as a clear-text one would for this importer
        for levels in (set(), reveal) if reveal else (set(),):
            try:
                shown.add((_value(customer, key, levels) or "").strip())
            except crypto.DecryptionError:
                shown.add("")
        if text not in shown:
            changed[key] = text
    return changed


def validate_import_row(actor, kind, clean, owner, consent, *, _memo=None):
    """The rules ``services.create_customer`` applies to one new customer, for the import's batch
    (which stores rows without going through it one by one): the owner, the department and the
    consent needed for sensitive fields. Returns (owner, clean consent or None, {field: message})."""
    from . import services
    memo = {} if _memo is None else _memo  # an import's batch: the same owners and consent again and again
    errors = {}
    owner_key = ("owner", getattr(owner, "id", owner))
    if owner_key not in memo:
        owner_errors = {}
        memo[owner_key] = (services._resolve_owner(actor, owner, owner_errors), owner_errors)
    owner, owner_errors = memo[owner_key]
    errors.update(owner_errors)
    if owner is not None and actor.department_id is not None and owner.department_id != actor.department_id:
        errors["department"] = _("The department of a customer is its owner's department.")
    consent_clean = None
    if consent is not None and (consent.get("purposes") or consent.get("sensitive")):
        consent_key = ("consent", repr(sorted(consent.items())))
        if consent_key not in memo:
            memo[consent_key] = services.clean_consent_data(consent)
        consent_clean, consent_errors = memo[consent_key]
        errors.update({f"consent_{k}": v for k, v in consent_errors.items()})
    sensitive = services._has_sensitive(clean)
    if sensitive and not (consent_clean and consent_clean["sensitive"]):
        message = _("An ID number or bank account may only be recorded with the customer's separate "
                    "consent to processing sensitive personal information (PIPL art. 29).")
        for name in sensitive:
            errors.setdefault(name, message)
    return owner, consent_clean, errors


STORE_BATCH = 500  # rows numbered, flushed and audited together


class _NewRow:
    """A customer row being prepared for the batch insert: the Encrypted fields of Customer seal
    into it exactly as into a Customer (same AAD, same blind indexes), without an ORM object."""

    __tablename__ = Customer.__tablename__

    def __init__(self):
        import uuid
        self.uid = uuid.uuid4().hex


_NOT_SEALED = ("status", "source", "tags")  # set by _store_new, not counted in completeness


def _seal_batch(batch):
    """The sealed columns of new customers [(kind, clean data)]: for each, (KEK id, wrapped data
    key, {column: value}) with its uid, ciphertexts, blind and partial indexes and completeness
    (crypto.BulkSealer: the same wrapping, ciphertexts and indexes as new_subject_key and the
    Encrypted fields, the keyring read once for the batch). Pure, no database: a command runs it
    ahead in a helper process (core.parallel.map_ahead) while it writes the previous batch."""
    from . import quality
    sealer = crypto.BulkSealer()
    sealed = []
    for kind, clean in batch:
        clean = {name: value for name, value in clean.items() if name not in _NOT_SEALED}
        dek, kek_id, wrapped = sealer.new_data_key()
        cipher_key = sealer.cipher_key(dek)
        new = _NewRow()
        for name in _COLUMN_FIELDS:
            setattr(new, name, None)
        for name, value in clean.items():
            attr = vars(Customer).get(name)
            if isinstance(attr, crypto.Encrypted):
                sealer.set_field(attr, new, value, cipher_key)
                if isinstance(attr, Searchable):  # what Searchable.__set__ adds
                    search.set_partial_indexes(new, name, value, sealer.blind_index)
            elif name in _COLUMN_FIELDS:
                setattr(new, name, value)
            else:
                raise KeyError(f"customers_customer has no field {name}")
        values = {name: getattr(new, name) for name in _COLUMN_FIELDS}
        values.update(uid=new.uid, completeness=quality.score_of(kind, clean))
        sealed.append((kek_id, wrapped, values))
    return sealed


def _store_new(actor, batch, sealed, result, memo=None):
    """Create the customers of one batch, as ``services.create_customer`` does one by one: numbers
    reserved in one counter update; data keys, customers, status history and consents inserted
    with one statement per table (core.db.insert_rows); one audit entry per customer, naming its
    consent, appended in one go. ``batch`` is [(row, kind, clean, owner, consent)], ``sealed``
    what ``_seal_batch`` gave for its (kind, clean)."""
    from core.api import insert_rows, next_numbers, reserve_ids

    from . import services
    from .models import StatusChange
    prepared = []
    for (row, kind, clean, owner, consent), seal in zip(batch, sealed, strict=True):
        owner, consent_clean, errors = validate_import_row(actor, kind, clean, owner, consent, _memo=memo)
        if errors:  # the same rules as check_rows: should not happen
            result.errors += [RowError(row, _error_column(n), str(m)) for n, m in errors.items()]
            continue
        prepared.append((kind, clean, owner, consent_clean, seal))
    if result.errors or not prepared:
        return
    numbers = next_numbers(services.NUMBER_PREFIX, len(prepared))
    now = utcnow()
    key_table = crypto.SubjectKey.__table__
    key_ids = reserve_ids(key_table, len(prepared))
    insert_rows(key_table, [{"id": i, "kek_id": kek_id, "wrapped": wrapped, "created_at": now}
                            for i, (*_item, (kek_id, wrapped, _values)) in zip(key_ids, prepared, strict=True)])
    customers, created = [], []
    for (kind, clean, owner, consent_clean, seal), number, key_id in zip(prepared, numbers, key_ids, strict=True):
        values = seal[2]
        status = clean.get("status") or "prospect"
        values.update(number=number, number_rev=number[::-1], kind=kind, status=status, status_changed_at=now,
                      source=clean.get("source"), owner_id=owner.id, department_id=owner.department_id,
                      tags=clean.get("tags") or "", subject_key_id=key_id, created_at=now, updated_at=now, version=1)
        customers.append(values)
        fields = sorted(k for k, v in clean.items() if v is not None and k not in _NOT_SEALED)
        created.append((number, kind, fields, owner, consent_clean, status))
    table = Customer.__table__
    ids = reserve_ids(table, len(customers))
    for values, cid in zip(customers, ids, strict=True):
        values["id"] = cid
    insert_rows(table, customers)
    insert_rows(StatusChange.__table__, [
        {"customer_id": cid, "from_status": None, "to_status": item[5], "reason": "", "changed_by": actor.id,
         "changed_at": now} for cid, item in zip(ids, created, strict=True)])
    consent_rows = [(cid, item[4]) for cid, item in zip(ids, created, strict=True) if item[4] is not None]
    consent_ids = []
    if consent_rows:
        ctable = Consent.__table__
        consent_ids = reserve_ids(ctable, len(consent_rows))
        insert_rows(ctable, [
            {"id": consent_id, "customer_id": cid, "purposes": ",".join(c["purposes"]), "scope": c["scope"],
             "sensitive": c["sensitive"], "channel": c["channel"], "notice_version": c["notice_version"],
             "recorded_by": actor.id, "recorded_at": now} for consent_id, (cid, c) in zip(consent_ids, consent_rows, strict=True)])
    # one entry per customer, naming the consent recorded with it (an import's consent is part of
    # creating the customer; a separate entry each cost a tenth of the import)
    consent_of = {cid: (consent_id, c) for (cid, c), consent_id in zip(consent_rows, consent_ids, strict=True)}
    audit.record_many("customers.customer.created", [
        {"target_type": Customer.__tablename__, "target_id": cid, "kind": kind, "fields": fields, "owner_id": owner.id,
         **(services.consent_details(*consent_of[cid]) if cid in consent_of else {})}
        for cid, (_number, kind, fields, owner, _consent, _status) in zip(ids, created, strict=True)], actor=actor)
    result.created += len(created)
    result.consents += len(consent_rows)
    result.numbers += [item[0] for item in created]


# the customer's own columns a cleaned row may fill (plain fields and the ciphertext/index columns)
_COLUMN_FIELDS = tuple(c.name for c in Customer.__table__.columns
                       if c.name not in ("id", "uid", "number", "number_rev", "kind", "status", "status_changed_at", "source",
                                         "owner_id", "department_id", "tags", "subject_key_id", "completeness",
                                         "created_at", "updated_at", "version"))


def _register_duplicates(actor, row, clean, elsewhere, exclude_id=None):
    """Row errors for the customers of the register this row may duplicate. One outside the
    actor's remit is reported as a possible match only: no number, holder or field (it is
    added to ``elsewhere`` for the audit trail)."""
    from . import quality
    found = quality.find_duplicates(actor, **_lookup_keys(clean), exclude_id=exclude_id)
    mine, others = quality.split_by_remit(actor, found)
    errors = [RowError(row, _error_column(_REASON_FIELD.get(reason, "")), _(
        "Possible duplicate of customer %(number)s: %(reason)s.",
        number=customer.number, reason=str(quality.REASONS[reason]))) for customer, reason in mine]
    if others:
        elsewhere += [(customer.id, reason) for customer, reason in others]
        errors.append(RowError(row, "", str(quality.ELSEWHERE_MESSAGE)))
    return errors


ANALYZE_AFTER = 1000  # customers created by one import


def _refresh_statistics(created):
    """After a large import on PostgreSQL, vacuum and analyze the register at once (what
    autovacuum does later, if it runs at all): with stale statistics the planner took a remit of
    thousands for a handful, and without the visibility map the list's pages walked the primary
    key past other remits instead of the remit's own index (at 1M customers, 300 ms a head's page
    when the department's customers were not the newest; 0.2 ms after; the VACUUM took 0.5 s)."""
    from sqlalchemy import text as sql  # ``text`` is a cell's text everywhere else in this file
    if created >= ANALYZE_AFTER and db.session.get_bind().dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sql("VACUUM (ANALYZE) customers_customer"))  # not inside a transaction


def _store_checked(actor, checked, matched, sealed, consent_channel, result, step):
    """Store the checked rows in file order: a row naming a customer updates it at once, new ones
    are created batch by batch (``sealed`` gives each batch's sealed fields, in order). Errors go
    to ``result``; the caller rolls back when there are any."""
    from . import services
    batch, memo, consents = [], {}, {}
    for row, kind, clean, owner in checked:
        consent = _import_consent(clean, consent_channel, consents)
        if row in matched:
            customer, version = matched[row]
            if consent is not None and (services.has_sensitive_consent(customer) if consent["sensitive"]
                                        else any(c.active for c in customer.consents)):
                consent = None  # on record already
            try:
                changed = services.update_customer(actor, customer, clean, version, owner=owner,
                                                   consent=consent)
            except services.StaleEdit:
                result.errors.append(RowError(row, COLUMN_BY_KEY["number"].header, _(
                    "Customer %(number)s was changed by someone else during the import; import the "
                    "file again.", number=customer.number)))
                break
            except services.InvalidData as exc:
                result.errors += [RowError(row, _error_column(n), m) for n, m in _error_list(exc.errors)]
                continue
            if changed or consent is not None:
                result.updated += 1
            else:
                result.unchanged += 1
            result.consents += consent is not None
            result.numbers.append(customer.number)
        else:
            batch.append((row, kind, clean, owner, consent))
            if len(batch) >= STORE_BATCH:
                _store_new(actor, batch, next(sealed), result, memo)
                batch = []
        if step is not None:
            step(1)
    if batch and not result.errors:
        _store_new(actor, batch, next(sealed), result, memo)


def import_customers(actor, data: bytes, filename: str = "", *, consent_channel=None, dry_run=False,
                     progress=None, helper_process=False):
    """Import one file, all or nothing, and audit the outcome. Commits on success; on any error
    nothing is stored and the refusal is audited with counts. Raises ImportFileError for a file
    that cannot be read at all (also audited). ``progress(phase, total)`` returns a callable
    taking a step count (the CLI draws its progress bars with it). ``helper_process``: seal the
    new customers' fields in a helper process while writing (the CLI; never a web request)."""
    from core.api import bulk_cache
    with bulk_cache():  # SQLite: the register's indexes stay in memory while the file is checked and stored
        return _import_customers(actor, data, filename, consent_channel=consent_channel, dry_run=dry_run,
                                 progress=progress, helper_process=helper_process)


def _import_customers(actor, data, filename, *, consent_channel, dry_run, progress, helper_process):
    from core.api import map_ahead

    from . import quality
    from .fields import CHANNELS
    result = ImportResult(dry_run=dry_run)
    fmt = "?"
    elsewhere = []  # matches outside the remit, audited after any rollback below
    try:
        _check_importer(actor)
        if consent_channel and consent_channel not in CHANNELS:
            raise ImportFileError(_("Unknown consent channel %(ch)s; use one of: %(all)s.",
                                    ch=consent_channel, all=", ".join(CHANNELS)), code="consent_channel")
        fmt, columns, rows = read_table(data, filename)
        result.rows, result.columns = len(rows), [c.key for c in columns]
        if not rows:
            raise ImportFileError(_("The file has a header but no customers."), code="empty")
        step = progress("check", len(rows)) if progress else None
        matched = {}
        checked, result.errors = check_rows(actor, rows, consent_channel=consent_channel, progress=step,
                                            elsewhere=elsewhere, matched=matched, helper_process=helper_process)
        result.to_update = sum(1 for entry in checked if entry[0] in matched)
        result.to_create = len(checked) - result.to_update
        if result.errors or dry_run:
            db.session.rollback()
            quality.record_elsewhere(actor, elsewhere, via="import")
            _audit_import(actor, "customers.import.checked" if result.ok else "customers.import.refused",
                          fmt, result, "refused" if result.errors else "ok")
            db.session.commit()
            return result
        step = progress("store", len(checked)) if progress else None
        # the new customers' fields sealed batch by batch, ahead in a helper process if allowed
        new_rows = [(kind, clean) for row, kind, clean, _owner in checked if row not in matched]
        batches = [new_rows[k:k + STORE_BATCH] for k in range(0, len(new_rows), STORE_BATCH)]
        with closing(map_ahead(_seal_batch, batches, helper=helper_process)) as sealed:
            _store_checked(actor, checked, matched, sealed, consent_channel, result, step)
        if result.errors:
            db.session.rollback()
            quality.record_elsewhere(actor, elsewhere, via="import")
            result.created = result.updated = result.unchanged = result.consents = 0
            result.numbers = []
            _audit_import(actor, "customers.import.refused", fmt, result, "refused")
            db.session.commit()
            return result
        _audit_import(actor, "customers.import.completed", fmt, result, "ok")
        db.session.commit()
        _refresh_statistics(result.created)
        return result
    except ImportFileError as exc:
        db.session.rollback()
        quality.record_elsewhere(actor, elsewhere, via="import")
        # the code, not the message: a header row may hold a customer's data
        audit.record("customers.import.refused", actor=actor, result="refused", format=fmt, reason=exc.code)
        db.session.commit()
        raise
    except BaseException:
        db.session.rollback()
        raise


def _audit_import(actor, action, fmt, result, outcome):
    columns = [c for c in result.columns if c != "number"]
    audit.record(action, actor=actor, result=outcome, format=fmt, rows=result.rows,
                 created=result.created, updated=result.updated, consents=result.consents,
                 errors=len(result.errors),
                 error_rows=result.error_rows, dry_run=result.dry_run, columns=columns,
                 error_columns=sorted({e.column for e in result.errors if e.column}))


# --- export -------------------------------------------------------------------------------------

class ExportError(ValueError):
    """An export that may not run; the message is for the user."""


def neutralise(text: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (CSV)."""
    return "'" + text if text and text.startswith(FORMULA_TRIGGERS) else text


def _sanitise_xlsx(text: str) -> str:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _value(customer, key, reveal):
    """The exported text of one column: L2/L3 masked unless the actor may reveal the class."""
    if key == "number":
        return customer.number
    if key == "kind":
        return CUSTOMER_KINDS[customer.kind]["zh_CN"]
    if key == "display_name":
        return customer.display_name or ""
    if key == "status":
        return STATUSES.get(customer.status, {}).get("zh_CN", customer.status)
    if key == "source":
        return SOURCES.get(customer.source, {}).get("zh_CN", customer.source or "") if customer.source else ""
    if key == "tags":
        return customer.tags or ""
    if key == "owner":
        return customer.owner.username if customer.owner else ""
    spec = FIELDS[key]
    if customer.kind not in spec.kinds:
        return ""
    value = getattr(customer, key)
    if value in (None, ""):
        return ""
    if key == "gender":
        return GENDERS.get(value, {}).get("zh_CN", value)
    value = str(value)
    level = level_of(customer, key)  # a birth date from the ID number is masked as the ID is
    if level in (L2, L3) and level not in reveal:
        return mask_value(key, value)
    if key in ("phone", "phone2", "fax"):  # as people write it ("138 0013 8000"); imports back the same
        from core.api import validation
        return validation.display_phone(value)
    return value


def _customers(actor, marketing, where=None):
    """The customers of the export in id order, a batch at a time (bounded memory); ``where``
    narrows them (a selection or the list's filter), never widens the remit."""
    stmt = scoped(select(Customer), actor, Customer).order_by(Customer.id)
    if where is not None:
        stmt = stmt.where(where)
    if marketing:
        stmt = stmt.where(Customer.id.in_(select(Consent.customer_id).where(
            Consent.withdrawn_at.is_(None), Consent.purposes.contains("marketing"))))
    stmt = stmt.options(selectinload(Customer.subject_key), selectinload(Customer.owner),
                        *([selectinload(Customer.consents)] if marketing else []))
    last = 0
    while True:
        batch = db.session.execute(stmt.where(Customer.id > last).limit(500)).scalars().all()
        if not batch:
            return
        yield from batch
        last = batch[-1].id


def _has_marketing_consent(services, customer):
    has = getattr(services, "has_consent", None)
    if has is not None:
        return bool(has(customer, "marketing"))
    try:
        services.require_consent(customer, "marketing")
    except services.ConsentMissing:
        return False
    return True


def _export_grant(actor, request):
    """The approved request ``request`` (id or number) of the actor, from the module that keeps
    requests (hook customers.export_grant), or ExportError."""
    from core.api import hooks
    for _module, grant in hooks.call("customers.export_grant", actor, request, all_departments=True):
        if grant is not None:
            return grant
    raise ExportError(_("Request %(request)s is not an approved disclosure request of yours that is still "
                        "to be produced.", request=request))


def export_customers(actor, fmt, reason, *, marketing=False, request=None, where=None, keep=None, selection=None):
    """The export file as bytes, audited (with the reason and row count) and committed before it
    is returned: an export the trail cannot record is not handed out.

    L2/L3 fields are masked for everyone unless ``request`` names an approved disclosure request
    of the actor (customers.export_grant): then the file carries the request's fields in clear
    text for its customers, once, under a first line naming the request.

    ``where`` (SQL clause) and ``keep`` (customer -> bool) narrow the export to a selection or
    the customer list's filter; ``selection`` (extra audit details: "selected" customer numbers
    or the list's "filter") describes it in the audit entry."""
    from .consent_rules import allows
    grant = None
    if request is not None and str(request).strip():
        if marketing:
            raise ExportError(_("A marketing list is never exported in clear text."))
        grant = _export_grant(actor, str(request).strip())
    if fmt not in FORMATS:
        raise ExportError(_("Choose CSV or XLSX as the export format."))
    permission = "customers.marketing_export" if marketing else "customers.export"
    if grant is None and not can(actor, permission):  # an approved request is its own authority
        raise ExportError(_("You may not export marketing lists.") if marketing
                          else _("You may not export customers."))
    reason = " ".join((reason or "").split())
    if len(reason) < 2:
        raise ExportError(_("State the reason for this export."))
    if len(reason) > 500:
        raise ExportError(_("The reason must have at most 500 characters."))
    keys = MARKETING_COLUMNS if marketing else tuple(c.key for c in COLUMNS)
    reveal = set()  # clear text only through an approved request (issue 17), whatever the role
    if grant is not None:
        keys = ("number", "kind", "display_name") + tuple(c.key for c in COLUMNS if c.key in grant.fields
                                                          and c.key not in ("number", "kind", "display_name"))
        reveal = {L2, L3}
    rows, unreadable, skipped = [], 0, 0
    wanted = None if grant is None or grant.customer_ids is None else set(grant.customer_ids)
    for customer in _customers(actor, marketing, where):
        if marketing and not allows(customer, "marketing"):
            continue
        if wanted is not None and customer.id not in wanted:
            continue
        if grant is not None and grant.purpose and not allows(customer, grant.purpose):
            skipped += 1  # no consent to this purpose (e.g. disclosure to third parties): left out
            continue
        if keep is not None and not keep(customer):
            continue
        try:
            rows.append([_value(customer, key, reveal) for key in keys])
        except crypto.DecryptionError:  # a destroyed (crypto-shredded) customer has nothing to export
            unreadable += 1
    headers = [COLUMN_BY_KEY[k].header for k in keys]
    watermark = grant.watermark if grant is not None else None
    data = (write_csv(headers, rows, watermark=watermark) if fmt == "csv"
            else write_xlsx(headers, rows, watermark=watermark))
    revealed = sorted(k for k in keys if k in FIELDS and column_level(k) in reveal)
    masked = sorted(k for k in keys if k in FIELDS and column_level(k) in (L2, L3) and k not in revealed)
    extra = {}
    if grant is not None:
        import hashlib
        extra = {"request": grant.number, "sha256": hashlib.sha256(data).hexdigest(), "skipped_no_consent": skipped}
    audit.record("customers.export.completed", actor=actor, format=fmt, marketing=marketing,
                 reason=reason, rows=len(rows), columns=list(keys), masked=masked, revealed=revealed,
                 unreadable=unreadable, **extra, **(selection or {}))
    if grant is not None:
        grant.produced(extra["sha256"], len(rows), skipped)
    if revealed and rows:
        audit.record("customers.export.revealed", actor=actor, fields=revealed, rows=len(rows), reason=reason)
    db.session.commit()
    return data, len(rows)


def write_csv(headers, rows, *, watermark=None) -> bytes:
    """UTF-8 with BOM (so Excel opens it as UTF-8), RFC 4180 quoting, formulas neutralised;
    ``watermark`` is a first line above the headers (the request a clear-text file comes from)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    if watermark:
        writer.writerow([neutralise(watermark)])
    writer.writerow(headers)
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def write_xlsx(headers, rows, *, notes=None, watermark=None) -> bytes:
    """Every cell a string cell (never a formula or a number that loses its digits); cells a
    spreadsheet would run as formulas also carry Excel's quote prefix."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)

    def cell(text, header=False):
        c = WriteOnlyCell(sheet, value=_sanitise_xlsx(str(text)))
        c.data_type = "s"
        if header:
            c.font = bold
        elif c.value.startswith(FORMULA_TRIGGERS):
            c.quotePrefix = True
        return c

    for i, header in enumerate(headers):
        letter = _column_letter(i)
        sheet.column_dimensions[letter].width = max(10, 2 * len(header) + 4)
    if watermark:
        sheet.append([cell(watermark, header=True)])
    sheet.append([cell(h, header=True) for h in headers])
    for row in rows:
        sheet.append([cell(v) for v in row])
    if notes:
        info = workbook.create_sheet("填写说明")
        for line in notes:
            info.append([cell(v) for v in line])
    buf = io.BytesIO()
    workbook.save(buf)
    return buf.getvalue()


def _column_letter(index):
    from openpyxl.utils import get_column_letter
    return get_column_letter(index + 1)


def import_template() -> bytes:
    """The import template: every importable header, one example row, and a sheet of notes."""
    columns = [c for c in COLUMNS if c.importable]
    headers = [c.header for c in columns]
    example = [TEMPLATE_EXAMPLE.get(c.key, "") for c in columns]
    kinds = "、".join(v["zh_CN"] for v in CUSTOMER_KINDS.values())
    notes = [
        ("列", "说明"),
        ("类型", f"必填：{kinds}"),
        ("名称", "必填：个人客户填姓名，企业客户填企业名称"),
        ("性别", "、".join(v["zh_CN"] for v in GENDERS.values())),
        ("出生日期", "如 1990-01-31"),
        ("手机", "11 位手机号或带区号的固定电话"),
        ("身份证号、银行账号", "敏感个人信息：须已取得客户的单独同意，导入时需确认同意方式"),
        ("统一社会信用代码", "企业客户：18 位，含校验位"),
        ("状态", "、".join(v["zh_CN"] for v in STATUSES.values()) + "；留空为潜在"),
        ("来源", "、".join(v["zh_CN"] for v in SOURCES.values())),
        ("负责人", "本部门销售、客服或负责人的用户名；留空为导入人"),
        ("其他", "仅适用于个人客户的列（如家庭住址）在企业行中须留空，反之亦然"),
        ("", "整个文件要么全部导入，要么（有任何错误时）全部不导入。示例行导入前请删除。"),
    ]
    return write_xlsx(headers, [example], notes=notes)
