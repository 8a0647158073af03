"""Forms of the visits module. The way-of-contact choices are filled in by the view (labels per
language); the services check dates and choices again for callers without a form."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from core.api import validation

from .models import NEXT_STEP_MAX, NOTES_MAX, PURPOSE_MAX

DATE_FORMAT = _l("Enter a date like 2026-03-31.")


class VisitForm(FlaskForm):
    visited_on = DateField(_l("Date of the contact"), validators=[DataRequired(message=DATE_FORMAT)])
    channel = SelectField(_l("Way of contact"),
                          validators=[DataRequired(message=_l("Choose the way of contact."))])
    purpose = StringField(_l("Purpose of the contact"), validators=[
        DataRequired(message=_l("Enter the purpose of the contact.")), validation.CleanText("name"),
        Length(max=PURPOSE_MAX)], description=_l("In a few words, e.g. contract renewal, after-sales call."))
    notes = TextAreaField(_l("Notes"), validators=[Optional(), validation.CleanText("text"), Length(max=NOTES_MAX)],
                          description=_l("What was discussed; stored encrypted."))
    next_step = StringField(_l("Next step"), validators=[Optional(), validation.CleanText("name"),
                                                         Length(max=NEXT_STEP_MAX)])
    next_contact_on = DateField(_l("Next contact on"), validators=[Optional()],
                                description=_l("Optional; today or later."))
    version = HiddenField()

    def data_dict(self):
        return {name: getattr(self, name).data for name in
                ("visited_on", "channel", "purpose", "notes", "next_step", "next_contact_on")}
