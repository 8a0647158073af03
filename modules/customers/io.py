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
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.api import User, audit, can, crypto, db, module_setting, scoped

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
from .models import Consent, Customer

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


def check_rows(actor, rows, *, consent_channel=None, progress=None, elsewhere=None):
    """Clean every row and check it for duplicates. Writes nothing.

    Returns ([(row number, kind, clean data, owner)], [RowError]). Matches outside the actor's
    remit are appended to ``elsewhere`` as (customer id, reason) for the caller to audit once the
    transaction is settled; more of them than the actor's duplicate checks may still meet
    (quality.probes_left) refuse the file as a whole."""
    from . import quality, services
    elsewhere = [] if elsewhere is None else elsewhere
    left = quality.probes_left(actor)
    if not left:
        raise ImportFileError(str(quality.PROBE_LIMIT_MESSAGE), code="duplicate_probe_limit")
    owners = department_owners(actor)
    cleaned, errors, in_file = [], {}, {}
    for row, values in rows:
        row_errors = errors.setdefault(row, [])
        kind = KIND_CHOICES.get(values.get("kind", "").strip().casefold())
        if kind is None:
            row_errors.append(RowError(row, COLUMN_BY_KEY["kind"].header, _(
                "The customer type must be %(person)s or %(org)s.",
                person=CUSTOMER_KINDS["person"]["zh_CN"], org=CUSTOMER_KINDS["org"]["zh_CN"])))
        else:
            data, owner = _convert(values, kind, row_errors, row, owners, actor)
            clean, clean_errors = services.clean_customer_data(kind, data)
            row_errors += [RowError(row, _error_column(n), m) for n, m in _error_list(clean_errors)]
            if not clean_errors:
                sensitive = [n for n in SENSITIVE_FIELDS if clean.get(n)]
                if sensitive and not consent_channel:
                    row_errors.append(RowError(row, _error_column(sensitive[0]), _(
                        "ID numbers and bank accounts need the customer's separate consent: confirm that "
                        "it was collected (and how) to import this row.")))
                for domain, value, label in _duplicate_keys(clean):
                    first = in_file.setdefault((domain, value), row)
                    if first != row:
                        row_errors.append(RowError(row, _error_column(domain), _(
                            "Same %(what)s as row %(other)d of this file.", what=pick_label(label),
                            other=first)))
                cleaned.append((row, kind, clean, owner))
        if progress is not None:
            progress(1)
    suspects = _register_suspects([clean for _row, _kind, clean, _owner in cleaned])
    for index, (row, _kind, clean, _owner) in enumerate(cleaned):
        if index in suspects:
            errors[row] += _register_duplicates(actor, row, clean, elsewhere)
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
    from core.api import crypto
    wanted = {}  # (column, value) -> [row index]
    for index, clean in enumerate(cleans):
        keys = _lookup_keys(clean)
        if keys["phone"]:
            for digest in crypto.blind_index_candidates(FIELDS["phone"].search_domain, keys["phone"]):
                wanted.setdefault(("phone", digest), []).append(index)
        if keys["id_number"]:
            for digest in crypto.blind_index_candidates(FIELDS["id_number"].search_domain, keys["id_number"]):
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
                for found in db.session.execute(select(col).where(col.in_(part)).distinct()).scalars():
                    suspects.update(wanted[(kind, found)])
    return suspects


def _register_duplicates(actor, row, clean, elsewhere):
    """Row errors for the customers of the register this row may duplicate. One outside the
    actor's remit is reported as a possible match only: no number, holder or field (it is
    added to ``elsewhere`` for the audit trail)."""
    from . import quality
    found = quality.find_duplicates(actor, **_lookup_keys(clean))
    mine, others = quality.split_by_remit(actor, found)
    errors = [RowError(row, _error_column(_REASON_FIELD.get(reason, "")), _(
        "Possible duplicate of customer %(number)s: %(reason)s.",
        number=customer.number, reason=str(quality.REASONS[reason]))) for customer, reason in mine]
    if others:
        elsewhere += [(customer.id, reason) for customer, reason in others]
        errors.append(RowError(row, "", str(quality.ELSEWHERE_MESSAGE)))
    return errors


def import_customers(actor, data: bytes, filename: str = "", *, consent_channel=None, dry_run=False,
                     progress=None):
    """Import one file, all or nothing, and audit the outcome. Commits on success; on any error
    nothing is stored and the refusal is audited with counts. Raises ImportFileError for a file
    that cannot be read at all (also audited). ``progress(phase, total)`` returns a callable
    taking a step count (the CLI draws its progress bars with it)."""
    from . import quality, services
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
        checked, result.errors = check_rows(actor, rows, consent_channel=consent_channel, progress=step,
                                            elsewhere=elsewhere)
        if result.errors or dry_run:
            db.session.rollback()
            quality.record_elsewhere(actor, elsewhere, via="import")
            _audit_import(actor, "customers.import.checked" if result.ok else "customers.import.refused",
                          fmt, result, "refused" if result.errors else "ok")
            db.session.commit()
            return result
        step = progress("store", len(checked)) if progress else None
        for row, kind, clean, owner in checked:
            consent = None
            if consent_channel and any(clean.get(n) for n in SENSITIVE_FIELDS):
                consent = {"purposes": ["service", "contract"], "channel": consent_channel, "sensitive": True,
                           "scope": _("ID number and bank account (separate consent confirmed at import)")}
            try:
                customer = services.create_customer(actor, {**clean, "kind": kind}, owner=owner,
                                                    department=actor.department_id, consent=consent)
            except services.InvalidData as exc:  # the same rules as check_rows: should not happen
                result.errors += [RowError(row, _error_column(n), m) for n, m in _error_list(exc.errors)]
                continue
            result.consents += consent is not None
            result.created += 1
            result.numbers.append(customer.number)
            if step is not None:
                step(1)
        if result.errors:
            db.session.rollback()
            quality.record_elsewhere(actor, elsewhere, via="import")
            result.created = result.consents = 0
            result.numbers = []
            _audit_import(actor, "customers.import.refused", fmt, result, "refused")
            db.session.commit()
            return result
        _audit_import(actor, "customers.import.completed", fmt, result, "ok")
        db.session.commit()
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
                 created=result.created, consents=result.consents, errors=len(result.errors),
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


def _customers(actor, marketing):
    """The customers of the export in id order, a batch at a time (bounded memory)."""
    stmt = scoped(select(Customer), actor, Customer).order_by(Customer.id)
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


def export_customers(actor, fmt, reason, *, marketing=False):
    """The export file as bytes, audited (with the reason and row count) and committed before it
    is returned: an export the trail cannot record is not handed out."""
    from . import services
    if fmt not in FORMATS:
        raise ExportError(_("Choose CSV or XLSX as the export format."))
    permission = "customers.marketing_export" if marketing else "customers.export"
    if not can(actor, permission):
        raise ExportError(_("You may not export marketing lists.") if marketing
                          else _("You may not export customers."))
    reason = " ".join((reason or "").split())
    if len(reason) < 2:
        raise ExportError(_("State the reason for this export."))
    if len(reason) > 500:
        raise ExportError(_("The reason must have at most 500 characters."))
    keys = MARKETING_COLUMNS if marketing else tuple(c.key for c in COLUMNS)
    reveal = {level for level, perm in ((L2, "customers.reveal_l2"), (L3, "customers.reveal_l3"))
              if can(actor, perm)}
    rows, unreadable = [], 0
    for customer in _customers(actor, marketing):
        if marketing and not _has_marketing_consent(services, customer):
            continue
        try:
            rows.append([_value(customer, key, reveal) for key in keys])
        except crypto.DecryptionError:  # a destroyed (crypto-shredded) customer has nothing to export
            unreadable += 1
    headers = [COLUMN_BY_KEY[k].header for k in keys]
    data = write_csv(headers, rows) if fmt == "csv" else write_xlsx(headers, rows)
    revealed = sorted(k for k in keys if k in FIELDS and column_level(k) in reveal)
    masked = sorted(k for k in keys if k in FIELDS and column_level(k) in (L2, L3) and k not in revealed)
    audit.record("customers.export.completed", actor=actor, format=fmt, marketing=marketing,
                 reason=reason, rows=len(rows), columns=list(keys), masked=masked, revealed=revealed,
                 unreadable=unreadable)
    if revealed and rows:
        audit.record("customers.export.revealed", actor=actor, fields=revealed, rows=len(rows), reason=reason)
    db.session.commit()
    return data, len(rows)


def write_csv(headers, rows) -> bytes:
    """UTF-8 with BOM (so Excel opens it as UTF-8), RFC 4180 quoting, formulas neutralised."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def write_xlsx(headers, rows, *, notes=None) -> bytes:
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
