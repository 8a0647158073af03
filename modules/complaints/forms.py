"""Forms of the complaints module. Choices are filled in by the views (labels per language and
the department's categories and colleagues)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from core.api import validation

from .services import COMMENT_MAX, TEXT_MAX

TEXT = validation.CleanText("text")


def _coerce_int_or_none(value):
    return int(value) if value not in (None, "", "None") else None


class IntakeForm(FlaskForm):
    customer_number = StringField(_l("Customer number"), validators=[Optional(), validation.CleanText("name"),
                                                                     Length(max=20)],
                                  description=_l("For example KH-2026-000001."))
    channel = SelectField(_l("Channel"), choices=[], validators=[DataRequired()])
    category = SelectField(_l("Category"), choices=[], validators=[DataRequired()])
    severity = SelectField(_l("Severity"), choices=[], validators=[DataRequired()])
    description = TextAreaField(_l("Description of the complaint"),
                                validators=[DataRequired(), TEXT, Length(max=TEXT_MAX)])
    customer_request = TextAreaField(_l("What the customer asks for"), validators=[Optional(), TEXT,
                                                                                     Length(max=TEXT_MAX)])
    handler_id = SelectField(_l("Handler"), choices=[], coerce=_coerce_int_or_none, validate_choice=False)
    attachment = FileField(_l("Attachment (PDF, JPEG or PNG)"))


class EditForm(FlaskForm):
    channel = SelectField(_l("Channel"), choices=[], validators=[DataRequired()])
    category = SelectField(_l("Category"), choices=[], validators=[DataRequired()])
    severity = SelectField(_l("Severity"), choices=[], validators=[DataRequired()])
    description = TextAreaField(_l("Description of the complaint"),
                                validators=[DataRequired(), TEXT, Length(max=TEXT_MAX)])
    customer_request = TextAreaField(_l("What the customer asks for"), validators=[Optional(), TEXT,
                                                                                     Length(max=TEXT_MAX)])


class StepForm(FlaskForm):
    """Every workflow step posts this form; each step reads the fields it needs."""
    comment = TextAreaField(_l("Comment"), validators=[Optional(), TEXT, Length(max=COMMENT_MAX)])
    handler_id = SelectField(_l("Handler"), choices=[], coerce=_coerce_int_or_none, validate_choice=False)
    cause = TextAreaField(_l("Cause"), validators=[Optional(), TEXT, Length(max=TEXT_MAX)])
    measures = TextAreaField(_l("Measures taken"), validators=[Optional(), TEXT, Length(max=TEXT_MAX)])
    result = TextAreaField(_l("Result"), validators=[Optional(), TEXT, Length(max=TEXT_MAX)])
    compensation = TextAreaField(_l("Compensation (if any)"), validators=[Optional(), TEXT, Length(max=TEXT_MAX)])
    satisfaction = SelectField(_l("Customer satisfaction"), choices=[("", "")] + [(str(i), str(i)) for i in range(1, 6)],
                               validate_choice=False)
    visit_comment = TextAreaField(_l("The customer's comment"),
                                  validators=[Optional(), TEXT, Length(max=COMMENT_MAX)])


class AttachmentForm(FlaskForm):
    attachment = FileField(_l("Attachment (PDF, JPEG or PNG)"))


class PolicyForm(FlaskForm):
    categories = TextAreaField(_l("Categories (one per line)"), validators=[DataRequired(), TEXT, Length(max=2000)])
    normal_response = IntegerField(_l("Normal: hours to the first response"), validators=[InputRequired(), NumberRange(1, 8760)])
    normal_resolution = IntegerField(_l("Normal: hours to the resolution"), validators=[InputRequired(), NumberRange(1, 8760)])
    serious_response = IntegerField(_l("Serious: hours to the first response"), validators=[InputRequired(), NumberRange(1, 8760)])
    serious_resolution = IntegerField(_l("Serious: hours to the resolution"), validators=[InputRequired(), NumberRange(1, 8760)])
    urgent_response = IntegerField(_l("Urgent: hours to the first response"), validators=[InputRequired(), NumberRange(1, 8760)])
    urgent_resolution = IntegerField(_l("Urgent: hours to the resolution"), validators=[InputRequired(), NumberRange(1, 8760)])
    important_percent = IntegerField(_l("Deadlines of important customers (% of the above)"),
                                     validators=[InputRequired(), NumberRange(10, 100)],
                                     description=_l("Applied when the customer grading module is enabled."))
    working_days = BooleanField(_l("Count working days only (Monday to Friday)"))

    def data_dict(self):
        return {f.name: f.data for f in self if f.name != "csrf_token"}
