"""Forms of the oversight module; the services check everything again for other callers."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from core.api import validation

DATE = _l("Enter a date like 2026-03-31.")


class PolicyForm(FlaskForm):
    title = StringField(_l("Title of the policy"), validators=[
        DataRequired(message=_l("Enter the title of the policy.")), validation.CleanText("name"), Length(max=200)],
        default="客户信息管理制度")
    body = TextAreaField(_l("Text of the policy"), validators=[
        DataRequired(message=_l("Enter the text of the policy.")), validation.CleanText("text"), Length(max=50000)],
        description=_l("Published as a new version: every user acknowledges it before working on."),
        render_kw={"rows": 16})


class AcknowledgeForm(FlaskForm):
    read = BooleanField(_l("I have read the policy and will follow it."),
                        validators=[DataRequired(message=_l("Tick the box to confirm that you read the policy."))])


class TrainingForm(FlaskForm):
    title = StringField(_l("Title of the session"), validators=[
        DataRequired(message=_l("Enter the title of the session.")), validation.CleanText("name"), Length(max=200)])
    held_on = DateField(_l("Held on"), validators=[DataRequired(message=DATE)])
    trainer = StringField(_l("Trainer"), validators=[
        DataRequired(message=_l("Enter who gave the training.")), validation.CleanText("name"), Length(max=100)])
    topics = TextAreaField(_l("Topics"), validators=[Optional(), validation.CleanText("text"), Length(max=5000)])
    attendees = SelectMultipleField(_l("Attendees"), coerce=int,
                                    validators=[DataRequired(message=_l("Choose who attended."))],
                                    render_kw={"size": 10})


class ReviewForm(FlaskForm):
    user_id = SelectField(_l("Person reviewed"), coerce=int, validators=[DataRequired(message=_l("Choose an active account."))])
    reviewed_on = DateField(_l("Reviewed on"), validators=[DataRequired(message=DATE)])
    expires_on = DateField(_l("Valid until"), validators=[DataRequired(message=DATE)])
    note = TextAreaField(_l("Note"), validators=[Optional(), validation.CleanText("text"), Length(max=500)],
                         description=_l("What was checked (confidentiality agreement signed, background, …)."))


class AlertNoteForm(FlaskForm):
    note = TextAreaField(_l("What you found and did"), validators=[
        DataRequired(message=_l("Write what you found and did about this alert.")), validation.CleanText("text"),
        Length(max=2000)])
