"""Normalisation, validation and masking of classified personal fields.

Every accepted form of a value becomes one canonical string, so its blind index (and therefore
search and duplicate checks) is the same however it was typed. Structured values (ID numbers,
codes, phone numbers) are NFKC-normalised before validation; names and free text only NFC,
because NFKC can change a name.

Masking follows JR/T 0171-2020 Annex A and GB/T 35273-2020 7.2 and is done on the server:
the browser never receives the hidden part.
"""
from __future__ import annotations

import datetime
import functools
import re
import unicodedata

import phonenumbers
from flask_babel import lazy_gettext as _l
from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength
from wtforms.validators import ValidationError as FormValidationError


class ValidationError(ValueError):
    """A value that cannot be accepted; ``message`` is translatable and safe to show the user."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return str(self.message)


# --- text --------------------------------------------------------------------------------------

_ZERO_WIDTH = "\u200b\u200c\u200d\ufeff"
_JOINERS = "\u200c\u200d"  # kept in free text: emoji ZWJ sequences and some scripts need them
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_SEPARATORS = re.compile(f"[\\s{re.escape(_HYPHENS + _ZERO_WIDTH)}]+")
FIELD_KINDS = ("name", "text")


def clean_text(value: str, *, field_kind: str = "name") -> str:
    """Names ("name": one line) and free text ("text": may have line breaks and tabs).

    NFC, surrounding whitespace (including U+3000) stripped, zero-width characters removed;
    NUL and other control characters, lone surrogates and bidi controls are refused.
    """
    if field_kind not in FIELD_KINDS:
        raise ValueError(f"field_kind must be one of {FIELD_KINDS}")
    if _SURROGATES.search(value):
        raise ValidationError(_l("The text contains an invalid character (a lone surrogate): "
                                 "please type it again"))
    if _BIDI_CONTROLS.search(value):
        raise ValidationError(_l("The text contains an invisible text-direction control character: "
                                 "please remove it"))
    value = unicodedata.normalize("NFC", value)
    if field_kind == "name":
        value = _remove(value, _ZERO_WIDTH)
        allowed_controls = ""
    else:
        value = _remove(value, "\u200b\ufeff")
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        allowed_controls = "\n\t"
    value = value.strip()
    if any(unicodedata.category(c) == "Cc" and c not in allowed_controls for c in value):
        raise ValidationError(_l("The text contains a control character (such as NUL or a line break "
                                 "in a one-line field) that cannot be stored"))
    return value


def normalise_structured(value: str) -> str:
    """NFKC (full-width digits and letters become ASCII), then no spaces or hyphens anywhere."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", value))


def _remove(value: str, chars: str) -> str:
    return value.translate({ord(c): None for c in chars})


def _is_ascii_digits(value: str) -> bool:
    # str.isdigit() also accepts Arabic-Indic and other digits, which no Chinese number uses
    return value.isascii() and value.isdigit()


# --- identifiers -------------------------------------------------------------------------------


def id_number(value: str) -> str:
    """An 18-character 居民身份证号 (GB 11643-1999), uppercase X.

    Policy: 15-digit numbers (issued before 1999) are refused, not upgraded; every holder has
    had an 18-digit number since 2013, and an upgraded number is a guess about the century.
    """
    number = normalise_structured(value).upper()
    if len(number) == 15 and _is_ascii_digits(number):
        raise ValidationError(_l("15-digit ID numbers are no longer accepted: enter the 18-digit "
                                 "number on the current ID card"))
    if len(number) != 18:
        raise ValidationError(_l("Invalid ID number: it must have 18 characters"))
    if not _is_ascii_digits(number[:17]) or number[17] not in "0123456789X":
        raise ValidationError(_l("Invalid ID number: use the digits 0-9, with X allowed only "
                                 "as the last character"))
    if ric.calc_check_digit(number) != number[17]:
        raise ValidationError(_l("Invalid ID number: the check digit does not match"))
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        birth = None
    if birth is None or birth.year < 1900:
        raise ValidationError(_l("Invalid ID number: the birth date in it does not exist"))
    if birth > datetime.date.today():
        raise ValidationError(_l("Invalid ID number: the birth date in it is in the future"))
    if not _region_known(number[:6]):
        raise ValidationError(_l("Invalid ID number: the region code in it does not exist"))
    return number


@functools.lru_cache(maxsize=8192)  # an import meets the same few thousand codes again and again
def _region_known(code: str) -> bool:
    # stdnum's ric.validate() also requires the region to have existed in the birth year, which
    # refuses real people who first registered later in a district created after their birth
    # (e.g. 110112 通州区 since 1997). Any code that ever existed is accepted here.
    info = {k: v for _part, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    return bool(info.get("county"))


def credit_code(value: str) -> str:
    """An 18-character 统一社会信用代码 (GB 32100-2015)."""
    code = normalise_structured(value).upper()
    try:
        return uscc.validate(code)
    except InvalidLength:
        raise ValidationError(_l("Invalid unified social credit code: it must have 18 characters")) from None
    except InvalidFormat:
        raise ValidationError(_l("Invalid unified social credit code: it contains a character that "
                                 "is not allowed")) from None
    except InvalidChecksum:
        raise ValidationError(_l("Invalid unified social credit code: the check character does "
                                 "not match")) from None


# --- phone -------------------------------------------------------------------------------------

_EXTENSION = re.compile(r"\s*(?:转|分机|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-]+")
# An 11-digit mobile number as written, which phonenumbers.parse(text, "CN") reads as exactly this
# national number (not 179xx..., where it strips the 17951-style IP dialling prefixes): parsing
# costs three times the type check, and an import parses thousands.
_PLAIN_MOBILE = re.compile(r"1(?:[3-68-9]\d|7[0-8])\d{8}")
_PHONE_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def phone(value: str) -> str:
    """A Chinese mobile or landline number in E.164 ("+8613800138000"); an extension is kept
    as "+861012345678;ext=123" (RFC 3966)."""
    text = _remove(unicodedata.normalize("NFKC", value), _ZERO_WIDTH).strip()
    extension = ""
    match = _EXTENSION.search(text)
    if match:
        extension, text = match.group(1), text[:match.start()]
    if not _PHONE_CHARS.fullmatch(text):
        raise ValidationError(_l("Invalid phone number: use digits only, with an optional +86 "
                                 "and extension"))
    if _PLAIN_MOBILE.fullmatch(text):
        number = phonenumbers.PhoneNumber(country_code=86, national_number=int(text))
    else:
        try:
            number = phonenumbers.parse(text, "CN")
        except phonenumbers.NumberParseException:
            number = None
    # For a CN number is_valid_number() is number_type() != UNKNOWN against the same metadata:
    # the type alone (computed once, not twice: an import validates thousands of numbers)
    if (number is None or phonenumbers.region_code_for_number(number) != "CN"
            or phonenumbers.number_type(number) not in _PHONE_TYPES):
        raise ValidationError(_l("Invalid phone number: enter an 11-digit mobile number or a "
                                 "landline with its area code"))
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{canonical};ext={extension}" if extension else canonical


def display_phone(value, extension_word=None) -> str:
    """A stored E.164 number as people write it in China: mobile "+8613800138000" ->
    "138 0013 8000"; landline "+861088886666" -> "010-8888 6666"; a foreign number in its
    international form ("+852 9123 4567"). An extension follows as "转 123" (``extension_word``,
    default the Chinese 转). Anything unparsable is returned as it is. Reading it back through
    :func:`phone` gives the same E.164 value."""
    if value in (None, ""):
        return ""
    number_text, _sep, extension = str(value).partition(";ext=")
    try:
        number = phonenumbers.parse(number_text, "CN")
    except phonenumbers.NumberParseException:
        return str(value)
    if number.country_code != 86:
        shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    else:
        national = str(number.national_number)
        area = (phonenumbers.length_of_geographical_area_code(number)
                if phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE else 0)
        if area and len(national) - area in (7, 8):
            local = national[area:]
            shown = f"0{national[:area]}-{local[:-4]} {local[-4:]}"
        else:
            shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    if extension:
        shown = f"{shown} {extension_word or '转'} {extension}"
    return shown


# --- other fields ------------------------------------------------------------------------------

_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def email(value: str) -> str:
    """An e-mail address; the domain is lowercased (the local part is the mail server's business)."""
    address = _remove(unicodedata.normalize("NFKC", value), _ZERO_WIDTH).strip()
    local, at, domain = address.rpartition("@")
    message = _l("Invalid e-mail address")
    if not at or len(address) > 254 or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise ValidationError(message)
    domain = domain.lower()
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(message) from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(message)
    return f"{local}@{domain}"


def bank_account(value: str) -> str:
    """A bank card or account number: 12 to 30 digits, spaces and hyphens ignored."""
    number = normalise_structured(value)
    if not _is_ascii_digits(number):
        raise ValidationError(_l("Invalid bank account number: use digits only"))
    if not 12 <= len(number) <= 30:
        raise ValidationError(_l("Invalid bank account number: it must have 12 to 30 digits"))
    return number


def postcode(value: str) -> str:
    code = normalise_structured(value)
    if len(code) != 6 or not _is_ascii_digits(code):
        raise ValidationError(_l("Invalid postcode: it must have 6 digits"))
    return code


# --- masking -----------------------------------------------------------------------------------

# Common two-character surnames; a name starting with one keeps both characters.
_COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "令狐", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "澹台", "公冶",
    "太史", "申屠", "闻人", "赫连", "钟离", "宗政", "濮阳", "淳于", "单于", "拓跋", "第五",
))


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _keep_ends(value: str, head: int, tail: int) -> str:
    """Show ``head`` and ``tail`` characters; a value too short for that shows only its first."""
    if len(value) > head + tail:
        return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail:]
    if len(value) > 2:
        return value[:1] + "*" * (len(value) - 1)
    return "*" * len(value)


def mask_id_number(value) -> str:
    """"11010519491231002X" -> "110105********002X"."""
    return _keep_ends(_text(value), 6, 4)


_STORED_MOBILE = re.compile(r"\+861[3-9]\d{9}")


def mask_phone(value) -> str:
    """Mobile "+8613800138000" -> "138****8000"; landline "+861012345678" -> "010-******78"."""
    text = _text(value)
    if _STORED_MOBILE.fullmatch(text):  # the stored form of a mainland mobile: no parsing needed
        return _keep_ends(text[3:], 3, 4)
    try:
        number = phonenumbers.parse(text.split(";", 1)[0], "CN")
    except phonenumbers.NumberParseException:
        return _keep_ends(text, 3, 4)
    national = str(number.national_number)
    if number.country_code != 86:
        return _keep_ends(text, 3, 4)
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE:
        return _keep_ends(national, 3, 4)
    area = phonenumbers.length_of_geographical_area_code(number)
    if area and len(national) > area + 2:
        return f"0{national[:area]}-" + _keep_ends(national[area:], 0, 2)
    return _keep_ends(national, 3, 4)


def mask_bank_account(value) -> str:
    """"6222021234567890123" -> "622202*********0123"."""
    return _keep_ends(_text(value), 6, 4)


def mask_text(value) -> str:
    """Addresses and emergency contacts: the first two characters, then a fixed "****" that
    does not reveal the length."""
    text = _text(value)
    if not text:
        return ""
    return text[:min(2, len(text) - 1)] + "****"  # a short value shows less, never all of it


def mask_name(value) -> str:
    """"张三" -> "张*", "欧阳娜娜" -> "欧阳**": the surname stays, one star per hidden character."""
    name = _text(value)
    if len(name) <= 1:
        return "*" if name else ""
    surname = name[:2] if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else name[:1]
    return surname + "*" * (len(name) - len(surname))


# --- WTForms validators ------------------------------------------------------------------------


class _Normalise:
    """Validate a field and replace ``field.data`` with its canonical form. Empty data passes:
    combine with ``Optional()`` or ``DataRequired()``."""

    clean = None  # the normalising function, set by each subclass

    def __init__(self, message=None):
        self.message = message

    def __call__(self, form, field):
        if field.data is None or (isinstance(field.data, str) and not field.data.strip()):
            return
        try:
            field.data = self.normalise(field.data)
        except ValidationError as exc:
            raise FormValidationError(self.message or exc.message) from None

    def normalise(self, data):
        return type(self).clean(data)


class IdNumber(_Normalise):
    clean = staticmethod(id_number)


class CreditCode(_Normalise):
    clean = staticmethod(credit_code)


class Phone(_Normalise):
    clean = staticmethod(phone)


class Email(_Normalise):
    clean = staticmethod(email)


class BankAccount(_Normalise):
    clean = staticmethod(bank_account)


class Postcode(_Normalise):
    clean = staticmethod(postcode)


class CleanText(_Normalise):
    def __init__(self, field_kind="name", message=None):
        super().__init__(message)
        self.field_kind = field_kind

    def normalise(self, data):
        return clean_text(data, field_kind=self.field_kind)
