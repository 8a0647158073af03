"""Every personal field of a customer, declared once with its information class.

The class decides storage (plain or encrypted), display (masked or not) and audit (reveal).
Labels are shown on screen; names are used in code, forms, the audit trail and exports."""
from dataclasses import dataclass

from core.api import validation

PUBLIC, L1, L2, L3 = 0, 1, 2, 3
CLASS_LABELS = {
    PUBLIC: {"zh_CN": "公开", "en": "Public"},
    L1: {"zh_CN": "一般", "en": "L1 general"},
    L2: {"zh_CN": "敏感", "en": "L2 sensitive"},
    L3: {"zh_CN": "高度敏感", "en": "L3 highly sensitive"},
}
CUSTOMER_KINDS = {"person": {"zh_CN": "个人", "en": "Individual"},
                  "org": {"zh_CN": "企业", "en": "Organisation"}}
STATUSES = {
    "prospect": {"zh_CN": "潜在", "en": "Prospect"},
    "active": {"zh_CN": "在册", "en": "Active"},
    "lost": {"zh_CN": "流失", "en": "Lost"},
}
GENDERS = {"M": {"zh_CN": "男", "en": "Male"}, "F": {"zh_CN": "女", "en": "Female"}}


@dataclass(frozen=True)
class Field:
    name: str
    level: int
    label: dict
    kinds: tuple = ("person", "org")  # which customers carry it
    search_domain: str | None = None  # blind-index domain for exact search
    mask: object = None  # masking function for L2/L3 display

    @property
    def encrypted(self):
        return self.level >= L1

    @property
    def masked(self):
        return self.level >= L2


def _f(name, level, zh, en, kinds=("person", "org"), search=None, mask=None):
    return Field(name, level, {"zh_CN": zh, "en": en}, kinds, search, mask)


FIELDS = {f.name: f for f in (
    # individuals
    _f("name", L1, "姓名", "Name", ("person",), "customers.name"),
    _f("gender", L1, "性别", "Gender", ("person",)),
    _f("birth_date", L1, "出生日期", "Birth date", ("person",)),
    _f("email", L1, "电子邮箱", "E-mail", ("person",)),
    _f("id_number", L2, "身份证号", "ID number", ("person",), "customers.id_number", validation.mask_id_number),
    _f("bank_account", L2, "银行账号", "Bank account", ("person",), None, validation.mask_bank_account),
    _f("home_address", L3, "家庭住址", "Home address", ("person",), None, validation.mask_text),
    _f("emergency_contact", L3, "紧急联系人", "Emergency contact", ("person",), None, validation.mask_text),
    # organisations
    _f("company_name", PUBLIC, "企业名称", "Company name", ("org",)),
    _f("credit_code", PUBLIC, "统一社会信用代码", "Unified social credit code", ("org",)),
    _f("legal_rep", L1, "法定代表人", "Legal representative", ("org",)),
    _f("company_address", PUBLIC, "企业地址", "Company address", ("org",)),
    _f("postcode", PUBLIC, "邮政编码", "Postcode", ("org",)),
    _f("fax", PUBLIC, "传真", "Fax", ("org",)),
    _f("industry", PUBLIC, "所属行业", "Industry", ("org",)),
    _f("business_scope", PUBLIC, "经营范围", "Business scope", ("org",)),
    _f("credit_rating", PUBLIC, "信用等级", "Credit rating", ("org",)),
    # both
    _f("phone", L1, "电话", "Phone", ("person", "org"), "customers.phone"),
    _f("phone2", L1, "备用电话", "Second phone", ("person",), "customers.phone"),
    _f("notes", L1, "备注", "Notes"),
)}

CONTACT_FIELDS = {f.name: f for f in (
    _f("name", L1, "姓名", "Name", search="customers.contact_name"),
    _f("title", PUBLIC, "职务", "Title"),
    _f("phone", L1, "电话", "Phone", search="customers.phone"),
    _f("email", L1, "电子邮箱", "E-mail"),
)}

# A value derived from a masked field belongs to that field's class: the birth date of an
# individual with an ID number is digits 7-14 of it, so showing it next to the masked number
# ("110105********002X") rebuilds the whole number. It is shown as its year at most unless
# revealed (with the source's permission, audited). Gender is one digit already shown.
DERIVED_FROM = {"birth_date": "id_number"}
DERIVED_MASKS = {"birth_date": lambda value: f"{str(value)[:4]}-**-**"}


def derived_source(customer, name):
    """The masked field ``name``'s value is derived from on this customer, or None."""
    source = DERIVED_FROM.get(name)
    if source is None or customer.kind not in FIELDS[source].kinds or not getattr(customer, source):
        return None
    return source


def level_of(customer, name):
    """The class of field ``name`` on this customer: its own, or that of the field it derives from."""
    source = derived_source(customer, name)
    own = FIELDS[name].level
    return max(own, FIELDS[source].level) if source else own


def column_level(name):
    """The highest class field ``name`` can have on any customer (exports, audit)."""
    source = DERIVED_FROM.get(name)
    return max(FIELDS[name].level, FIELDS[source].level) if source else FIELDS[name].level


def is_masked(customer, name):
    return level_of(customer, name) >= L2


def mask_value(name, value):
    """The masked display of a value of field ``name`` (L2/L3, or derived from one)."""
    if name in DERIVED_MASKS:
        return DERIVED_MASKS[name](value)
    spec = FIELDS[name]
    return spec.mask(value) if spec.mask else "****"


# What a complete record holds, per kind (for the completeness score).
REQUIRED_FOR_COMPLETENESS = {
    "person": ("name", "gender", "birth_date", "phone", "id_number", "home_address"),
    "org": ("company_name", "credit_code", "legal_rep", "company_address", "phone", "industry"),
}

# Consent purposes (PIPL art. 14/17): what the customer agreed their data may be used for.
PURPOSES = {
    "service": {"zh_CN": "提供产品与服务", "en": "Providing products and services"},
    "contract": {"zh_CN": "订立和履行合同", "en": "Concluding and performing contracts"},
    "marketing": {"zh_CN": "营销推广", "en": "Marketing"},
    "analysis": {"zh_CN": "客户分析与分级", "en": "Customer analysis and grading"},
    "disclosure": {"zh_CN": "向第三方提供", "en": "Disclosure to third parties"},
}
# Consent before collection (PIPL art. 13-14): a personal field beyond the name and the contact
# details may only be stored while an active consent covers one of the purposes it is collected
# for; an L2 field also needs the separate consent to sensitive data (art. 29). Fields not listed
# here (name, phone, e-mail, an organisation's public and business-contact fields, notes) are
# collected to reach the customer and need none.
COLLECTION_PURPOSES = {
    "gender": ("service", "contract"),
    "birth_date": ("service", "contract"),
    "id_number": ("contract", "service"),
    "bank_account": ("contract", "service"),
    "home_address": ("service", "contract"),
    "emergency_contact": ("service", "contract"),
}
CHANNELS = {
    "paper": {"zh_CN": "纸质签字", "en": "Signed paper form"},
    "online": {"zh_CN": "线上勾选", "en": "Online opt-in"},
    "phone": {"zh_CN": "电话录音", "en": "Recorded phone call"},
    "onsite": {"zh_CN": "现场确认", "en": "In person"},
}
SOURCES = {
    "visit": {"zh_CN": "上门拜访", "en": "Visit"}, "phone": {"zh_CN": "电话", "en": "Phone"},
    "web": {"zh_CN": "网站", "en": "Website"}, "referral": {"zh_CN": "转介绍", "en": "Referral"},
    "exhibition": {"zh_CN": "展会", "en": "Exhibition"}, "other": {"zh_CN": "其他", "en": "Other"},
}
