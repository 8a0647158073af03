"""Normalisation, validation and masking of personal fields (security.md IV-01..IV-03)."""
import phonenumbers
import pytest
from flask import Flask
from flask_babel import Babel
from flask_babel.speaklater import LazyString
from stdnum.cn import ric, uscc
from werkzeug.datastructures import MultiDict
from wtforms import Form, StringField, TextAreaField

from core import validation as v
from core.validation import ValidationError

ID = "11010519491231002X"
USCC = "91350100M000100Y43"


@pytest.fixture(autouse=True)
def app():
    app = Flask(__name__)
    Babel(app)
    with app.test_request_context():
        yield app


def message_of(func, value, **kwargs):
    with pytest.raises(ValidationError) as info:
        func(value, **kwargs)
    assert isinstance(info.value.message, LazyString)  # translatable, not a fixed string
    return str(info.value)


def test_sample_numbers_are_really_valid():
    assert ric.is_valid(ID) and uscc.is_valid(USCC)


# --- ID number (IV-01) -------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [
    ID, "11010519491231002x", "１１０１０５１９４９１２３１００２Ｘ", "１１０１０５１９４９１２３１００２ｘ",
    " 110105 19491231 002X ", "110105-19491231-002X", "\u3000110105\u200b19491231002X\u3000",
])
def test_every_accepted_form_of_an_id_number_is_the_same_value(typed):
    assert v.id_number(typed) == ID


@pytest.mark.parametrize("typed, fragment", [
    ("110105194912310021", "check digit"),
    ("110105199902300023", "does not exist"),  # 1999-02-30, check digit right
    ("110105189912310023", "does not exist"),  # before 1900
    ("110105209912310029", "future"),
    ("11010519491231002", "18 characters"),
    ("11010519491231002X1", "18 characters"),
    ("110105491231002", "15-digit"),
    ("1101051949123100X2", "digits 0-9"),
    ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "digits 0-9"),  # Arabic-Indic digits
    ("000000198001010021", "region"),
])
def test_bad_id_numbers_get_distinct_messages(typed, fragment):
    assert fragment in message_of(v.id_number, typed)


def test_id_number_in_a_district_created_after_the_birth_year_is_accepted():
    # 110112 通州区 exists since 1997; its residents born earlier hold such numbers
    assert v.id_number("110112196001011232") == "110112196001011232"


def test_credit_code():
    assert v.credit_code(" 9135 0100-m000 100y43 ") == USCC
    assert "check character" in message_of(v.credit_code, "91350100M000100Y44")
    assert "18 characters" in message_of(v.credit_code, "91350100M000100Y4")
    assert "not allowed" in message_of(v.credit_code, "91350100M000100YI3")


# --- phone (IV-02) -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [
    "13800138000", "+86 138 0013 8000", "0086-13800138000", "１３８００１３８０００", "＋８６ １３８-００１３-８０００",
    "138 0013 8000\u200b",
])
def test_every_form_of_a_mobile_number_is_the_same_value(typed):
    assert v.phone(typed) == "+8613800138000"


@pytest.mark.parametrize("typed, canonical", [
    ("010-12345678", "+861012345678"),
    ("(010) 1234 5678", "+861012345678"),
    ("010-12345678转123", "+861012345678;ext=123"),
    ("010-12345678 ext 123", "+861012345678;ext=123"),
    ("０１０－１２３４５６７８ 分机 123", "+861012345678;ext=123"),
])
def test_landlines_and_extensions(typed, canonical):
    assert v.phone(typed) == canonical


@pytest.mark.parametrize("typed", [
    "1380013800", "138001380001", "1380013800a", "abc", "+1 650 253 0000", "=1+13800138000",
])
def test_invalid_phone_numbers_are_refused(typed):
    assert "phone number" in message_of(v.phone, typed)


def _phone_by_parsing(text):
    """What v.phone gives when phonenumbers parses the text (the path every number took before
    plain mobile numbers skipped it)."""
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(number) != "CN" or phonenumbers.number_type(number) not in (
            phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_eleven_digit_numbers_are_read_as_parsing_reads_them():
    # every 4-digit start from 1000 to 1999 (179xx are IP dialling prefixes that parsing strips)
    for start in range(1000, 2000):
        for tail in ("0000000", "4001829", "8004700", "3008383", "9999999"):
            text = f"{start}{tail}"
            try:
                got = v.phone(text)
            except ValidationError:
                got = None
            assert got == _phone_by_parsing(text), text


# --- other fields ------------------------------------------------------------------------------


def test_email():
    assert v.email(" Zhang.San@EXAMPLE.com ") == "Zhang.San@example.com"
    assert v.email("ｌｉ＠ｅｘａｍｐｌｅ．ｃｎ") == "li@example.cn"
    for bad in ("no-at-sign", "a@b", "a b@example.com", "a@@example.com", "a@-example.com", ".a@example.com"):
        assert "e-mail" in message_of(v.email, bad)


def test_bank_account():
    assert v.bank_account("6222 0212 3456 7890 123") == "6222021234567890123"
    assert v.bank_account("６２２２０２１２３４５６７８９０") == "6222021234567890"
    assert "digits only" in message_of(v.bank_account, "6222O21234567890")
    assert "12 to 30" in message_of(v.bank_account, "62220212345")
    assert "12 to 30" in message_of(v.bank_account, "1" * 31)


def test_postcode():
    assert v.postcode(" １００ ０２０ ") == "100020"
    for bad in ("10002", "1000200", "10002a"):
        assert "6 digits" in message_of(v.postcode, bad)


# --- text (IV-03) ------------------------------------------------------------------------------


def test_clean_text_normalises_names():
    assert v.clean_text("\u3000 张\u200b三 \ufeff") == "张三"
    assert v.clean_text("e\u0301") == "\u00e9"  # NFC
    assert v.clean_text("ＡＢＣ") == "ＡＢＣ"  # not NFKC: names stay as typed
    assert v.clean_text("服务太差***  ", field_kind="text") == "服务太差***"


def test_free_text_keeps_line_breaks_and_emoji_sequences():
    family = "👨\u200d👩\u200d👧"
    assert v.clean_text(f"第一行\r\n第二行\t{family}", field_kind="text") == f"第一行\n第二行\t{family}"


@pytest.mark.parametrize("value, fragment", [
    ("张\x00三", "control character"),
    ("张\n三", "control character"),  # a name is one line
    ("invoice\u202efdp.exe", "text-direction"),
    ("\u2066张三\u2069", "text-direction"),
    ("张\ud800三", "lone surrogate"),
])
def test_clean_text_refuses_dangerous_characters(value, fragment):
    assert fragment in message_of(v.clean_text, value)


def test_free_text_refuses_nul_and_bidi_too():
    assert "control character" in message_of(v.clean_text, "a\x00b", field_kind="text")
    assert "text-direction" in message_of(v.clean_text, "a\u202eb", field_kind="text")


# --- masking -----------------------------------------------------------------------------------


def test_masks():
    assert v.mask_id_number(ID) == "110105********002X"
    assert v.mask_phone("+8613800138000") == "138****8000"
    assert v.mask_phone("13800138000") == "138****8000"
    assert v.mask_phone("+861012345678;ext=123") == "010-******78"
    assert v.mask_phone("+8675512345678") == "0755-******78"
    assert v.mask_bank_account("6222021234567890123") == "622202*********0123"
    assert v.mask_text("北京市朝阳区建国路88号") == "北京****"
    assert v.mask_text("张三的妈妈 13800138000") == "张三****"
    assert v.mask_name("张三") == "张*"
    assert v.mask_name("张小明") == "张**"
    assert v.mask_name("欧阳娜娜") == "欧阳**"
    assert v.mask_name("欧阳") == "欧*"


@pytest.mark.parametrize("mask", [v.mask_id_number, v.mask_phone, v.mask_bank_account, v.mask_text, v.mask_name])
@pytest.mark.parametrize("odd", [None, "", " ", "1", "12", "abc", "😀", "𠮷野家", "+", "+86", ";ext=", 12345, "x" * 200])
def test_masking_never_fails_nor_reveals_short_values(mask, odd):
    masked = mask(odd)
    assert isinstance(masked, str)
    text = "" if odd is None else str(odd).strip()
    if len(text) >= 1:
        assert masked != text and "*" in masked


# --- WTForms validators ------------------------------------------------------------------------


class CustomerForm(Form):
    name = StringField(validators=[v.CleanText()])
    note = TextAreaField(validators=[v.CleanText("text")])
    id_number = StringField(validators=[v.IdNumber()])
    credit_code = StringField(validators=[v.CreditCode()])
    phone = StringField(validators=[v.Phone()])
    email = StringField(validators=[v.Email()])
    bank_account = StringField(validators=[v.BankAccount()])
    postcode = StringField(validators=[v.Postcode()])


def test_form_validators_normalise_in_place():
    form = CustomerForm(MultiDict({
        "name": " 张三\u200b ", "note": "服务太差***\r\n", "id_number": "１１０１０５１９４９１２３１００２ｘ",
        "credit_code": USCC.lower(), "phone": "+86 138 0013 8000", "email": "a@EXAMPLE.com",
        "bank_account": "6222 0212 3456 7890 123", "postcode": "100 020",
    }))
    assert form.validate(), form.errors
    assert form.data == {
        "name": "张三", "note": "服务太差***", "id_number": ID, "credit_code": USCC,
        "phone": "+8613800138000", "email": "a@example.com", "bank_account": "6222021234567890123",
        "postcode": "100020",
    }


def test_form_validators_report_field_errors_and_keep_input():
    form = CustomerForm(MultiDict({"id_number": "110105194912310021", "phone": "12345",
                                   "name": "a\u202eb", "postcode": "100020"}))
    assert not form.validate()
    assert set(form.errors) == {"id_number", "phone", "name"}
    assert "check digit" in str(form.errors["id_number"][0])
    assert form.id_number.raw_data == ["110105194912310021"]  # redisplayed as typed


def test_form_validators_let_empty_fields_through():
    form = CustomerForm(MultiDict({"id_number": "", "phone": "   ", "name": ""}))
    assert form.validate(), form.errors


def test_custom_message_replaces_the_default():
    class F(Form):
        phone = StringField(validators=[v.Phone(message="请填写手机号")])

    form = F(MultiDict({"phone": "123"}))
    assert not form.validate()
    assert form.errors == {"phone": ["请填写手机号"]}


@pytest.mark.parametrize("stored, shown", [
    ("+8613800138000", "138 0013 8000"), ("+861088886666", "010-8888 6666"),
    ("+8657187654321", "0571-8765 4321"), ("+861088886666;ext=123", "010-8888 6666 转 123"),
    ("+85291234567", "+852 9123 4567"), ("", ""), (None, "")])
def test_phone_numbers_are_shown_in_national_format_and_read_back_the_same(stored, shown):
    from core.validation import display_phone, phone
    assert display_phone(stored) == shown
    if shown and not shown.startswith("+"):
        assert phone(shown) == stored  # a prefilled form saves the same E.164 value

