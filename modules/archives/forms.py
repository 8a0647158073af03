"""Forms of the customer archives. Choices are filled in by the views (labels per language)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, DecimalField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from core.api import validation


class DocumentForm(FlaskForm):
    doc_type = SelectField(_l("Document type"), validators=[DataRequired()])
    title = StringField(_l("Title"), validators=[DataRequired(), validation.CleanText("name"), Length(max=200)])
    doc_date = DateField(_l("Date"), validators=[DataRequired(message=_l("Enter a date like 2026-03-31."))])
    amount = DecimalField(_l("Amount (yuan)"), places=2,
                          validators=[Optional(), NumberRange(min=0, max=999_999_999_999)],
                          description=_l("Only for contracts, orders, invoices and payment vouchers."))
    keeper_id = SelectField(_l("Keeper"), coerce=int, validators=[DataRequired()])
    storage_location = StringField(_l("Storage location of the paper original"),
                                   validators=[Optional(), validation.CleanText("name"), Length(max=200)],
                                   description=_l("e.g. Archive room 2, cabinet B, shelf 3"))
    version = HiddenField()


class NewDocumentForm(DocumentForm):
    attachment = FileField(_l("Attachment (optional)"),
                           description=_l("PDF, JPEG, PNG, DOCX or XLSX; it is stored encrypted."))


class AttachmentForm(FlaskForm):
    attachment = FileField(_l("File"), validators=[FileRequired(_l("Choose a file."))],
                           description=_l("PDF, JPEG, PNG, DOCX or XLSX; it is stored encrypted."))


class RequestForm(FlaskForm):
    customer_number = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=20)],
                                  description=_l("The exact customer number, e.g. KH-2026-000123."))
    kind = SelectField(_l("Request"), validators=[DataRequired()])
    purpose = TextAreaField(_l("Purpose"), validators=[DataRequired(), validation.CleanText("text"), Length(max=500)])
    until = DateField(_l("Access until / return date"),
                      validators=[DataRequired(message=_l("Enter a date like 2026-03-31."))])


class DecisionForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Optional(), validation.CleanText("text"), Length(max=500)])
