"""Simplified Chinese by default, English selectable."""
import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app, g, has_request_context, session
from flask_babel import Babel, get_locale, get_translations, lazy_gettext
from flask_login import current_user
from jinja2 import pass_eval_context
from markupsafe import Markup

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
CORE_TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

babel = Babel()


def select_locale():
    if not has_request_context():  # the CLI
        return os.environ.get("KEHU_LOCALE", DEFAULT_LOCALE)
    if current_user and current_user.is_authenticated and current_user.locale in LOCALES:
        return current_user.locale
    if session.get("locale") in LOCALES:
        return session["locale"]
    return DEFAULT_LOCALE


# --- the company's time zone: stored times are UTC, shown times are local ----------------------

def company_timezone():
    """KEHU_TIMEZONE (default Asia/Shanghai): the zone of every time shown, in pages, PDFs,
    exports, file names and the audit log."""
    try:
        name = current_app.config["BABEL_DEFAULT_TIMEZONE"]
    except RuntimeError:  # outside a request or command
        name = os.environ.get("KEHU_TIMEZONE") or "Asia/Shanghai"
    return ZoneInfo(name)  # ZoneInfo keeps each zone it made


def to_local(value):
    """A stored (UTC) datetime in the company's zone; naive values are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(company_timezone())


def local_now():
    return datetime.now(company_timezone())


def local_today():
    """Today's date in the company's zone (not the server's, not UTC)."""
    return local_now().date()


def local_datetime(value, fmt="%Y-%m-%d %H:%M"):
    """Jinja filter ``|local_datetime``: "2026-12-01 09:30" in the company's zone; dates pass."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return value.isoformat()
    if fmt == "%Y-%m-%d %H:%M":  # a list's every row: isoformat is half the cost of strftime
        return to_local(value).isoformat(" ", "minutes")[:16]
    return to_local(value).strftime(fmt)


def local_date(value):
    """Jinja filter ``|local_date``: the company's calendar day of a stored time (or a date)."""
    return local_datetime(value, "%Y-%m-%d")


def current_locale():
    try:
        name = g.get("kehu_locale")
    except RuntimeError:  # outside an app context
        return _locale_name()
    if name is None:
        name = g.kehu_locale = _locale_name()
    return name


def _locale_name():
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh_CN"


def _translations():
    """The translations of this request or command. Flask-Babel finds them anew for every string
    (context, domain, locale identifier), and a list page translates hundreds: look them up once
    per app context, which is also how long Flask-Babel keeps the locale."""
    try:
        found = g.get("kehu_translations")
    except RuntimeError:  # outside an app context
        return get_translations()
    if found is None:
        found = g.kehu_translations = get_translations()
    return found


def pick(labels):
    """Choose the text of a {"zh_CN": ..., "en": ...} label for the current language."""
    if isinstance(labels, dict):
        return labels.get(current_locale()) or labels.get(DEFAULT_LOCALE) or ""
    return str(labels)


def compile_catalogs(folders, logger=None):
    """Compile each .po into its .mo when the .mo is missing or older, so a checkout or a
    pip-installed module needs no build step for its translations."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for folder in folders:
        for po in Path(folder).glob("*/LC_MESSAGES/*.po"):
            mo = po.with_suffix(".mo")
            if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                continue
            try:
                with po.open("rb") as src:
                    catalog = read_po(src)
                # One file per process: gunicorn's workers (or two test runs) may start together.
                tmp = mo.with_suffix(f".mo.{os.getpid()}.tmp")
                with tmp.open("wb") as out:
                    write_mo(out, catalog)
                tmp.replace(mo)
            except OSError as exc:  # a read-only install: the texts stay in English
                if logger:
                    logger.warning("translations: cannot compile %s: %s", po, exc)


# WTForms' own messages that kehu words the way its catalogues do, so a form says one thing for
# one fault whichever module made it (DataRequired and InputRequired say "This field is required.").
FORM_WORDING = (lazy_gettext("This field is required."),)


class _FormTranslations:
    """What Flask-WTF forms translate their validators' messages with: kehu's catalogues first
    (one wording for a required field everywhere), then WTForms' own translations."""

    def __init__(self, fallback):
        self.fallback = fallback

    def gettext(self, string):
        ours = get_translations().ugettext(string)
        if ours != string or self.fallback is None:
            return ours
        return self.fallback.gettext(string)

    def ngettext(self, singular, plural, n):
        if self.fallback is None:
            return singular if n == 1 else plural
        return self.fallback.ngettext(singular, plural, n)


def _word_forms_our_way():
    import flask_wtf.form
    current = getattr(flask_wtf.form, "translations", None)
    if not isinstance(current, _FormTranslations):
        flask_wtf.form.translations = _FormTranslations(current)


@pass_eval_context
def _template_gettext(eval_ctx, string, **variables):
    """What Jinja's newstyle ``gettext`` gives: the translation, marked safe when autoescaping,
    always %-formatted with ``variables`` (escaped when they are not safe themselves)."""
    text = _translations().ugettext(string)
    if eval_ctx.autoescape:
        text = Markup(text)  # noqa: S704 -- catalogue text, marked safe as Jinja marks it; the variables are escaped
    # formatting is what most of a call cost; without variables it only turns "%%" into "%"
    return text % variables if variables or "%" in text else text


def init_app(app, translation_paths):
    _word_forms_our_way()
    compile_catalogs([CORE_TRANSLATIONS, *translation_paths], app.logger)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LOCALE
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join([str(CORE_TRANSLATIONS), *translation_paths])
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True)
    # ``_()`` and ``gettext()`` in templates: one call instead of Jinja's three (its alias, its
    # newstyle wrapper, the callable above), the same text; a list page translates ~50 strings
    app.jinja_env.globals["_"] = app.jinja_env.globals["gettext"] = _template_gettext
    app.jinja_env.globals["pick"] = pick
    app.jinja_env.globals["current_locale"] = current_locale
