"""Forms of the lifecycle module."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
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
