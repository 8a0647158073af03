"""Forms of the incident module. Choices are filled in by the views (labels per language)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from core.api import validation

TIME_FORMAT = "%Y-%m-%dT%H:%M"
TIME_MESSAGE = _l("Enter a date and time like 2026-03-31 14:30.")


def _text(label, required=True, max_length=4000, **kwargs):
    checks = [DataRequired() if required else Optional(), validation.CleanText("text"), Length(max=max_length)]
    return TextAreaField(label, validators=checks, **kwargs)


class Checkboxes(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class ReportForm(FlaskForm):
    title = StringField(_l("Short title"), validators=[DataRequired(), validation.CleanText("name"), Length(max=200)])
    noticed_at = DateTimeLocalField(_l("When noticed (Beijing time)"), format=TIME_FORMAT,
                                    validators=[DataRequired(message=TIME_MESSAGE)])
    how_found = _text(_l("How it was found"), max_length=2000)
    description = _text(_l("What happened"))
    systems = _text(_l("Systems concerned"), required=False, max_length=2000)
    data_concerned = _text(_l("Data concerned"), required=False, max_length=2000,
                           description=_l("Which data, of which customers, as far as you know. "
                                          "Do not paste personal data here."))


class CommentForm(FlaskForm):
    body = _text(_l("Additional remark"), max_length=4000)


class AssessForm(FlaskForm):
    severity = SelectField(_l("Incident level"), validators=[DataRequired()])
    data_classes = Checkboxes(_l("Categories of personal data involved"),
                              validators=[DataRequired(message=_l("Choose at least one category."))])
    estimated_count = IntegerField(_l("Estimated number of affected customers"),
                                   validators=[Optional(), NumberRange(min=0, max=1_000_000_000)],
                                   description=_l("When the exact set of customers is not known."))
    triage_note = _text(_l("What was assessed"), required=False, max_length=4000)


class StepForm(FlaskForm):
    to_status = SelectField(_l("Next stage"), validators=[DataRequired()])
    note = _text(_l("What was done"), max_length=4000)


class RegulatorForm(FlaskForm):
    reported_at = DateTimeLocalField(_l("Reported to the authority at (Beijing time)"), format=TIME_FORMAT,
                                     validators=[DataRequired(message=TIME_MESSAGE)])
    regulator_note = _text(_l("To whom and how"), max_length=1000)


class NoticeTextForm(FlaskForm):
    notice_what = _text(_l("What happened and why"), max_length=2000)
    notice_harm = _text(_l("Possible harm"), required=False, max_length=2000)
    notice_measures = _text(_l("What the company has done"), max_length=2000)
    notice_advice = _text(_l("What the customer can do"), max_length=2000)
    notice_contact = _text(_l("Contact"), max_length=500)


class AffectedForm(FlaskForm):
    lines = _text(_l("Customers, one per line"), max_length=100_000,
                  description=_l("Customer numbers (KH-2026-000123), mobile or landline numbers, or ID "
                                 "numbers. They are matched through the search indexes."))


class NotificationForm(FlaskForm):
    channel = SelectField(_l("Channel"), validators=[DataRequired()])
    status = SelectField(_l("Status"), validators=[DataRequired()])


class CloseForm(FlaskForm):
    root_cause = _text(_l("Root cause"), max_length=4000)
    measures = _text(_l("Corrective measures"), max_length=4000)
    improvements = _text(_l("Improvements"), max_length=4000)
    responsible = _text(_l("Responsible people"), max_length=1000)
    closing_note = _text(_l("Closing note"), required=False, max_length=2000)


class EvidenceForm(FlaskForm):
    class Meta:
        csrf = False  # a search (GET): it changes nothing

    username = StringField(_l("Account (user name)"), validators=[DataRequired(), Length(max=64)])
    since = DateTimeLocalField(_l("From (Beijing time)"), format=TIME_FORMAT,
                               validators=[DataRequired(message=TIME_MESSAGE)])
    until = DateTimeLocalField(_l("Until (Beijing time)"), format=TIME_FORMAT,
                               validators=[DataRequired(message=TIME_MESSAGE)])
    kinds = Checkboxes(_l("What to look for"), validators=[Optional()])
