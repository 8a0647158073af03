"""Forms of the customer register. They only carry what the user typed: normalising and
validating is the services' job (one set of rules for the pages and the import), and the
views put the services' errors next to the fields."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.widgets import CheckboxInput, ListWidget

from core.api import pick

from .fields import CHANNELS, CONTACT_FIELDS, FIELDS, GENDERS, PURPOSES, SOURCES, STATUSES
from .services import TRANSACTION_CHANNELS, TRANSACTION_KINDS

PERSON_FIELDS = ("name", "gender", "birth_date", "phone", "phone2", "email", "id_number", "bank_account",
                 "home_address", "emergency_contact")
ORG_FIELDS = ("company_name", "credit_code", "legal_rep", "phone", "fax", "company_address", "postcode",
              "industry", "business_scope", "credit_rating")
KIND_FIELDS = {"person": PERSON_FIELDS, "org": ORG_FIELDS}
COMMON_FIELDS = ("source", "tags", "notes")
MASKED_FIELDS = tuple(name for name in PERSON_FIELDS if FIELDS[name].masked)
CONSENT_FIELDS = ("consent_purposes", "consent_channel", "consent_scope", "consent_sensitive")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _choices(labels, blank=None):
    choices = [(key, pick(label)) for key, label in labels.items()]
    return ([("", blank)] if blank is not None else []) + choices


class _Labelled(FlaskForm):
    """Labels of personal fields come from fields.py, in the user's language."""

    field_specs = FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for f in self:
            spec = self.field_specs.get(f.name)
            if spec is not None:
                f.label.text = pick(spec.label)


class _ConsentFields:
    consent_purposes = MultiCheckboxField(_l("Purposes the customer agreed to"), choices=[],
                                          validate_choice=False)
    consent_channel = SelectField(_l("How the consent was given"), choices=[], validate_choice=False)
    consent_scope = StringField(_l("Scope (which data, in the customer's words)"))
    consent_sensitive = BooleanField(_l("Separate consent: the customer separately consents to the "
                                        "processing of sensitive personal information (ID number, bank account)"))
    consent_notice_version = HiddenField()

    def _init_consent(self):
        self.consent_purposes.choices = _choices(PURPOSES)
        self.consent_channel.choices = _choices(CHANNELS, "—")

    def consent_data(self):
        return {"purposes": self.consent_purposes.data or [], "channel": self.consent_channel.data,
                "scope": self.consent_scope.data, "sensitive": self.consent_sensitive.data,
                "notice_version": self.consent_notice_version.data}


class CustomerForm(_ConsentFields, _Labelled):
    """Fields both kinds share; subclasses add the kind's own fields."""

    kind_fields = ()
    version = HiddenField()
    owner_id = SelectField(_l("Owner"), choices=[], validate_choice=False)
    source = SelectField(_l("Source channel"), choices=[], validate_choice=False)
    tags = StringField(_l("Tags"), description=_l("Separate tags with commas."))
    notes = TextAreaField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.source.choices = _choices(SOURCES, "—")
        self._init_consent()

    def customer_data(self, *, keep_masked=False):
        """The kind's fields and the common ones as typed. With ``keep_masked`` (editing), an
        empty masked field means "unchanged" unless its "clear" box is ticked."""
        data = {}
        for name in (*self.kind_fields, *COMMON_FIELDS):
            value = self[name].data
            if keep_masked and name in MASKED_FIELDS and not (value or "").strip():
                if self[f"clear_{name}"].data:
                    data[name] = ""
                continue
            data[name] = value
        return data


class PersonForm(CustomerForm):
    kind_fields = PERSON_FIELDS
    name = StringField()
    gender = SelectField(choices=[], validate_choice=False)
    birth_date = StringField(description=_l("e.g. 1990-05-17; taken from the ID number if left empty"))
    phone = StringField(description=_l("Mobile or landline with area code, e.g. 138 0013 8000"))
    phone2 = StringField()
    email = StringField()
    id_number = StringField(description=_l("18 characters; needs the customer's separate consent"))
    bank_account = StringField(description=_l("Needs the customer's separate consent"))
    home_address = StringField()
    emergency_contact = StringField(description=_l("Name and phone of the person to call"))
    clear_id_number = BooleanField(_l("Delete the stored value"))
    clear_bank_account = BooleanField(_l("Delete the stored value"))
    clear_home_address = BooleanField(_l("Delete the stored value"))
    clear_emergency_contact = BooleanField(_l("Delete the stored value"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gender.choices = _choices(GENDERS, "—")


class OrgForm(CustomerForm):
    kind_fields = ORG_FIELDS
    company_name = StringField()
    credit_code = StringField(description=_l("18 characters, as on the business licence"))
    legal_rep = StringField()
    phone = StringField(description=_l("Mobile or landline with area code, e.g. 010-8888 6666"))
    fax = StringField()
    company_address = StringField()
    postcode = StringField()
    industry = StringField()
    business_scope = TextAreaField()
    credit_rating = StringField(description=_l("e.g. AAA, AA, A"))


FORMS = {"person": PersonForm, "org": OrgForm}


class ConsentForm(_ConsentFields, FlaskForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_consent()


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"))


class RevealForm(FlaskForm):
    reason = StringField(_l("Reason for viewing"))


class StatusForm(FlaskForm):
    status = SelectField(_l("New status"), choices=[], validate_choice=False)
    reason = TextAreaField(_l("Reason"), description=_l("Required when the customer is lost."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.status.choices = _choices(STATUSES)


class ContactForm(_Labelled):
    field_specs = CONTACT_FIELDS
    name = StringField()
    title = StringField()
    phone = StringField()
    email = StringField()

    def contact_data(self):
        return {name: self[name].data for name in CONTACT_FIELDS}


class TransactionForm(FlaskForm):
    kind = SelectField(_l("Type"), choices=[], validate_choice=False)
    occurred_on = StringField(_l("Date"))
    amount = StringField(_l("Amount (yuan)"), description=_l("Required for a transaction."))
    product = StringField(_l("Product or service"))
    channel = SelectField(_l("Channel"), choices=[], validate_choice=False)
    notes = TextAreaField(_l("Notes"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = _choices(TRANSACTION_KINDS)
        self.channel.choices = _choices(TRANSACTION_CHANNELS, "—")

    def transaction_data(self):
        return {name: self[name].data for name in ("kind", "occurred_on", "amount", "product", "channel",
                                                   "notes")}


class TransactionCorrectionForm(TransactionForm):
    reason = TextAreaField(_l("Reason for the correction"))

    def transaction_data(self):
        return {**super().transaction_data(), "reason": self.reason.data}


class TransactionVoidForm(FlaskForm):
    reason = TextAreaField(_l("Reason for voiding"))


class ShareForm(FlaskForm):
    user_id = SelectField(_l("Colleague"), choices=[], validate_choice=False)
