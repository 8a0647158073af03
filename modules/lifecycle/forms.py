"""Forms of the lifecycle module."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


class PolicyForm(FlaskForm):
    prospect = IntegerField(_l("Prospect customers: years after the last activity"),
                            validators=[Optional(), NumberRange(min=0, max=100)],
                            description=_l("Leave blank to keep them while in this status."))
    active = IntegerField(_l("Active customers: years after the last activity"),
                          validators=[Optional(), NumberRange(min=0, max=100)],
                          description=_l("Leave blank to keep them while in this status."))
    lost = IntegerField(_l("Lost customers: years after the last activity"),
                        validators=[Optional(), NumberRange(min=0, max=100)],
                        description=_l("Leave blank to keep them while in this status."))


class HoldForm(FlaskForm):
    number = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=20)])
    reason = StringField(_l("Reason for the legal hold"), validators=[DataRequired(), Length(max=200)])


class RequestForm(FlaskForm):
    number = StringField(_l("Customer number"), validators=[DataRequired(), Length(max=20)])
    kind = SelectField(_l("The customer asks to"), choices=[
        ("copy", _l("See or copy their personal data")), ("correct", _l("Correct their personal data")),
        ("delete", _l("Delete their personal data"))])
    received_on = DateField(_l("Received on"), validators=[Optional()],
                            description=_l("Leave blank for today. The answer is due 15 working days later."))
    channel = StringField(_l("Received through"), validators=[Optional(), Length(max=32)])


class CloseForm(FlaskForm):
    status = SelectField(_l("Outcome"), choices=[("done", _l("Done")), ("refused", _l("Refused"))])
    outcome = StringField(_l("What was done, or why it is refused"), validators=[Optional(), Length(max=200)])
