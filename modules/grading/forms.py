"""Forms of the grading module."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DecimalField, HiddenField, IntegerField, SelectField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from core.api import validation

from . import rules as R
from .services import REASON_MAX


class RulesForm(FlaskForm):
    min_amount = DecimalField(
        _l("Minimum amount in the last 12 months (yuan)"), places=2,
        validators=[Optional(), NumberRange(min=0.01, max=float(R.AMOUNT_MAX))],
        description=_l("Leave blank to grade by the number of transactions only."))
    min_count = IntegerField(
        _l("Minimum number of transactions in the last 12 months"),
        validators=[Optional(), NumberRange(min=1, max=R.COUNT_MAX)],
        description=_l("Leave blank to grade by the amount only."))
    min_tenure_months = IntegerField(
        _l("Minimum tenure (full months as a customer)"),
        validators=[InputRequired(), NumberRange(min=0, max=R.TENURE_MAX)],
        description=_l("0 means no minimum."))
    escalate_open_complaints = IntegerField(
        _l("Open complaints that make a customer important"),
        validators=[Optional(), NumberRange(min=1, max=R.COMPLAINTS_MAX)],
        description=_l("Used only where the complaints module is enabled; leave blank for no escalation."))

    def validate(self, extra_validators=None):
        if not super().validate(extra_validators):
            return False
        if self.min_amount.data is None and self.min_count.data is None:
            self.min_amount.errors.append(_l("Set a minimum amount, a minimum number of transactions, or both."))
            return False
        return True

    def data_dict(self):
        return {name: getattr(self, name).data for name in
                ("min_amount", "min_count", "min_tenure_months", "escalate_open_complaints")}


class OverrideForm(FlaskForm):
    grade = SelectField(_l("Grade"), choices=[], validators=[DataRequired()])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), validation.CleanText("text"), Length(max=REASON_MAX)])
    next = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from core.api import pick
        self.grade.choices = [(key, pick(label)) for key, label in R.GRADES.items()]
