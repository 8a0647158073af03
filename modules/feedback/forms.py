"""Forms of the feedback module. The answer form is built per template version from its
questions (``answer_form``), so each question gets its own field, errors and required mark."""
import re
from datetime import date

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional, StopValidation, ValidationError

from .services import HELP_MAX, LABEL_MAX, LINK_DAYS_MAX, LONG_MAX, NAME_MAX, PLAN_MAX, SHORT_MAX

NUMBER_RE = re.compile(r"^-?\d{1,12}(\.\d{1,6})?$")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class Required:
    """An answer is needed: empty or blank text is refused with a Chinese message."""

    def __call__(self, form, field):
        data = field.data
        if data is None or (isinstance(data, str) and not data.strip()) or data == []:
            field.errors[:] = []
            raise StopValidation(_l("This answer is required."))


def _number(form, field):
    if field.data and not NUMBER_RE.match(field.data):
        raise ValidationError(_l("Enter a number, for example 12 or 3.5."))


def _date(form, field):
    if field.data:
        try:
            date.fromisoformat(field.data)
        except ValueError:
            raise ValidationError(_l("Enter a date like 2026-12-01.")) from None


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def answer_form(questions, formdata=None):
    """A Flask-WTF form with one field per question, named by the question's key."""
    from flask_babel import gettext as _

    class AnswerForm(FlaskForm):
        pass

    for q in questions:
        first = [Required()] if q.get("required") else [Optional()]
        kind, label, help_text = q["kind"], q["label"], q.get("help") or ""
        if kind == "short":
            f = StringField(label, validators=[*first, Length(max=SHORT_MAX)], filters=[_strip], description=help_text)
        elif kind == "long":
            f = TextAreaField(label, validators=[*first, Length(max=LONG_MAX)], filters=[_strip],
                              description=help_text)
        elif kind == "single":
            f = RadioField(label, choices=[(o, o) for o in q["options"]], validators=first, description=help_text)
        elif kind == "multi":
            f = MultiCheckboxField(label, choices=[(o, o) for o in q["options"]], validators=first,
                                   description=help_text)
        elif kind == "rating":
            f = RadioField(label, choices=[(str(i), str(i)) for i in range(1, 6)], validators=first,
                           description=help_text)
        elif kind == "yesno":
            f = RadioField(label, choices=[("yes", _("Yes")), ("no", _("No"))], validators=first,
                           description=help_text)
        elif kind == "date":
            f = StringField(label, validators=[*first, _date], filters=[_strip], description=help_text,
                            render_kw={"type": "date"})
        else:  # number
            f = StringField(label, validators=[*first, _number], filters=[_strip], description=help_text,
                            render_kw={"inputmode": "decimal"})
        setattr(AnswerForm, q["key"], f)
    return AnswerForm(formdata=formdata) if formdata is not None else AnswerForm()


def answers_from(form, questions):
    """{key: value} of a validated answer form (ratings as numbers, choices as their text)."""
    out = {}
    for q in questions:
        value = form[q["key"]].data
        if value in (None, "", []):
            continue
        out[q["key"]] = int(value) if q["kind"] == "rating" else value
    return out


class TemplateForm(FlaskForm):
    name = StringField(_l("Template name"), validators=[InputRequired(), Length(max=NAME_MAX)], filters=[_strip])
    customer_kind = SelectField(_l("Customer type"), choices=[], validate_choice=False)
    customer_status = SelectField(_l("Customer status"), choices=[], validate_choice=False)
    grade = SelectField(_l("Customer grade"), choices=[], validate_choice=False)
    active = BooleanField(_l("In use"), default=True)


class QuestionForm(FlaskForm):
    kind = SelectField(_l("Field kind"), choices=[], validate_choice=False)
    label = StringField(_l("Question"), validators=[InputRequired(), Length(max=LABEL_MAX)], filters=[_strip])
    help = StringField(_l("Help text"), validators=[Optional(), Length(max=HELP_MAX)], filters=[_strip])
    options = TextAreaField(_l("Options (one per line, for choices)"), validators=[Optional()])
    required = BooleanField(_l("Required"))


class LinkForm(FlaskForm):
    version_id = SelectField(_l("Template"), choices=[], coerce=int, validate_choice=False)
    days = IntegerField(_l("Valid for (days)"), default=7, validators=[InputRequired(), NumberRange(1, LINK_DAYS_MAX)])
    output = RadioField(_l("Hand it out as"), choices=[("link", _l("Link on screen")),
                                                       ("pdf", _l("Paper form with QR code (PDF)"))], default="link")


class PlanForm(FlaskForm):
    problems = TextAreaField(_l("Problems found"), validators=[InputRequired(), Length(max=PLAN_MAX)],
                             filters=[_strip])


class CompleteForm(FlaskForm):
    result = TextAreaField(_l("Result"), validators=[InputRequired(), Length(max=PLAN_MAX)], filters=[_strip])
