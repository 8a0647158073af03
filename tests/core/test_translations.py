"""Every text the interface shows has its Simplified Chinese translation.

Each catalogue covers its own sources: the core's (translations/) covers core/**.py and
templates/**.html, and every module folder with a translations/ folder covers its own .py files
and templates (the notices test module too). For each, every msgid extracted from the sources
must have a non-empty, non-fuzzy zh_Hans_CN msgstr with the same %(name)s placeholders. All
catalogues merge into one domain at run time, core first and later ones winning, so a module must
not translate a core text differently either."""
import os
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from markupsafe import Markup

ROOT = Path(__file__).resolve().parents[2]
PO = Path("zh_Hans_CN", "LC_MESSAGES", "messages.po")
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)}
JINJA = "jinja2.ext:babel_extract"
STRICT = {"silent": "false"}  # a template that does not parse fails the test instead of yielding nothing
PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
# Python 3.11 tokenises an f-string as one string, so `f"{_('ext.')}"` escapes the extractor.
IN_FSTRING = re.compile(r"""\{\s*(?:_|_l|gettext|lazy_gettext)\(\s*(["'])((?:(?!\1)[^\\])+)\1\s*\)\s*\}""")


def _module_sources(folder):
    return [(folder, [("**/migrations/**", "ignore"), ("**.py", "python"), ("**/templates/**.html", JINJA)],
             {"**/templates/**.html": STRICT})]


CATALOGUES = {
    "core": (ROOT / "translations" / PO,
             [(ROOT / "core", [("**.py", "python")], {}),
              (ROOT / "templates", [("**.html", JINJA)], {"**.html": STRICT})]),
    **{folder.name: (folder / "translations" / PO, _module_sources(folder))
       for folder in sorted((ROOT / "modules").iterdir()) if (folder / "translations").is_dir()},
    "notices": (ROOT / "tests/fixtures/kehu-notices/notices/translations" / PO,
                _module_sources(ROOT / "tests/fixtures/kehu-notices/notices")),
}


def _msgids(sources):
    """{msgid: "file:line"} of the texts the sources hand to gettext."""
    found = {}
    for folder, methods, options in sources:
        for filename, lineno, message, _comments, _context in extract_from_dir(
                str(folder), methods, options, keywords=KEYWORDS):
            msgid = message if isinstance(message, str) else message[0]  # ngettext: its singular
            found.setdefault(msgid, f"{folder.name}/{filename}:{lineno}")
        for path in folder.rglob("*.py"):
            if "migrations" not in path.relative_to(folder).parts:
                for match in IN_FSTRING.finditer(path.read_text(encoding="utf-8")):
                    found.setdefault(match.group(2), f"{path.relative_to(folder)} (f-string)")
    return found


def _translations(po):
    """{msgid: msgstrs} of a catalogue, without the fuzzy entries (they are not compiled): one msgstr
    per entry, or one per plural form keyed by the singular msgid."""
    with po.open("rb") as handle:
        catalog = read_po(handle, locale="zh_Hans_CN")
    found = {}
    for message in catalog:
        if message.id and not message.fuzzy:
            msgid = message.id if isinstance(message.id, str) else message.id[0]
            strings = (message.string,) if isinstance(message.string, str) else message.string
            found[msgid] = tuple(string or "" for string in strings)
    return found


def _placeholders(text):
    return sorted(PLACEHOLDER.findall(text))


@pytest.mark.parametrize("name", CATALOGUES)
def test_every_msgid_has_a_chinese_translation(name):
    po, sources = CATALOGUES[name]
    assert po.is_file(), f"{name}: no catalogue at {os.path.relpath(po, ROOT)}"
    msgids = _msgids(sources)
    assert msgids, f"{name}: nothing extracted from its sources"
    translations = _translations(po)
    missing = {msgid: where for msgid, where in sorted(msgids.items())
               if not translations.get(msgid) or not all(string.strip() for string in translations[msgid])}
    assert missing == {}, f"{name}: {len(missing)} of {len(msgids)} msgids lack a Chinese translation in " \
                          f"{os.path.relpath(po, ROOT)}"


@pytest.mark.parametrize("name", CATALOGUES)
def test_placeholders_survive_translation(name):
    po, _sources = CATALOGUES[name]
    wrong = {msgid: string for msgid, strings in _translations(po).items() for string in strings
             if string and _placeholders(msgid) != _placeholders(string)}
    assert wrong == {}


@pytest.mark.parametrize("name", [name for name in CATALOGUES if name != "core"])
def test_no_module_changes_a_core_text(name):
    """Module catalogues are merged over the core's: the same msgid must read the same."""
    core = _translations(CATALOGUES["core"][0])
    ours = _translations(CATALOGUES[name][0])
    clashes = {msgid: (core[msgid], strings) for msgid, strings in ours.items()
               if any(strings) and any(core.get(msgid, ())) and core[msgid] != strings}
    assert clashes == {}


def test_no_two_catalogues_translate_one_msgid_differently():
    """All catalogues merge into one gettext domain (later ones win): a msgid two modules share
    must read the same in both, or one module's pages change when the other is installed."""
    seen, clashes = {}, []
    for name, (po, _sources) in CATALOGUES.items():
        for msgid, strings in _translations(po).items():
            if not any(strings):
                continue
            first = seen.setdefault(msgid, (name, strings))
            if first[1] != strings:
                clashes.append((msgid, first, (name, strings)))
    assert len(CATALOGUES) >= 7 and clashes == []


@pytest.mark.parametrize("name", [name for name in CATALOGUES if name != "core"])
def test_a_module_catalogue_holds_nothing_stale(name):
    """Every entry of a module's catalogue is still used by the module's code or templates."""
    po, sources = CATALOGUES[name]
    stale = sorted(set(_translations(po)) - set(_msgids(sources)))
    assert stale == []


def _h1(html):
    return re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1).strip()


def test_sign_in_page_is_chinese_by_default_and_english_on_request(client):
    html = client.get("/login").get_data(as_text=True)
    assert _h1(html) == "登录"
    assert "用户名" in html and "密码" in html and "Sign in" not in html

    response = client.post("/language", data={"locale": "en", "next": "/login"})
    assert response.status_code == 302
    html = client.get("/login").get_data(as_text=True)
    assert _h1(html) == "Sign in"
    assert "User name" in html and "登录" not in html


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_template_underscore_gives_what_jinjas_newstyle_gettext_gives(app, locale):
    """`_()` in templates is core.i18n's one-call version of Jinja's newstyle gettext: the same
    text, escaping and %-formatting, with autoescape on and off, in both languages."""
    from flask import session
    from jinja2.ext import _make_new_gettext

    from core.i18n import _translations
    jinjas = _make_new_gettext(lambda s: _translations().ugettext(s))
    cases = ['_("Customers")', '_("Next contact %(date)s", date="<b>&")', '_("Search")',
             '_("%(n)s%%", n=5)', '_("all 100%% <ok>")', '_("Next contact %(date)s", date=safe)', 'gettext("Sign out")']
    with app.test_request_context("/"):
        session["locale"] = locale
        for autoescape in (True, False):
            for case in cases:
                source = f"{{% autoescape {str(autoescape).lower()} %}}{{{{ {case} }}}}{{% endautoescape %}}"
                ours = app.jinja_env.from_string(source).render(safe=Markup("<i>x</i>"))
                env = app.jinja_env.overlay()
                env.globals["_"] = env.globals["gettext"] = jinjas
                theirs = env.from_string(source).render(safe=Markup("<i>x</i>"))
                assert ours == theirs, (locale, autoescape, case)
        assert app.jinja_env.from_string('{{ _("Customers") }}').render() == \
            {"zh_CN": "客户", "en": "Customers"}[locale]
