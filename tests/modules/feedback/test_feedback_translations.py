"""Every text the feedback module shows has its Chinese translation in the module's catalogue,
and the catalogue changes no other module's texts (all catalogues merge into one domain)."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import modules.feedback

MODULE = Path(modules.feedback.__file__).resolve().parent
CATALOGUE = MODULE / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
METHODS = [("**/migrations/**", "ignore"), ("**.py", "python"), ("**/templates/**.html", "jinja2.ext:babel_extract")]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None}


def _msgids():
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(str(MODULE), METHODS, keywords=KEYWORDS):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def _catalogue(path):
    with open(path, "rb") as handle:
        return {m.id: m.string for m in read_po(handle, locale="zh_Hans_CN") if m.id}


def test_every_message_has_a_chinese_translation():
    catalogue = _catalogue(CATALOGUE)
    msgids = _msgids()
    assert len(msgids) > 100
    assert {m: where for m, where in msgids.items() if not catalogue.get(m)} == {}
    assert sorted(m for m in catalogue if m not in msgids) == []  # nothing stale


def test_placeholders_survive_translation():
    for msgid, msgstr in _catalogue(CATALOGUE).items():
        assert sorted(re.findall(r"%\(\w+\)\w", msgid)) == sorted(re.findall(r"%\(\w+\)\w", msgstr)), msgid


def test_no_other_modules_text_is_changed(app):
    ours = _catalogue(CATALOGUE)
    clashes = []
    for folder in app.config["BABEL_TRANSLATION_DIRECTORIES"].split(";"):
        for po in Path(folder).glob("*/LC_MESSAGES/messages.po"):
            if po.resolve() == CATALOGUE.resolve():
                continue
            for msgid, msgstr in _catalogue(po).items():
                if msgstr and msgid in ours and ours[msgid] != msgstr:
                    clashes.append((str(po), msgid, msgstr, ours[msgid]))
    assert clashes == []


def test_pages_are_in_chinese_by_default_and_english_on_request(client, login_as, fdept):
    login_as(client, "f_head", role="head")
    html = client.get("/feedback/").get_data(as_text=True)
    assert "反馈表模板" in html and "新建模板" in html and "最近填写的反馈表" in html
    client.post("/language", data={"locale": "en", "next": "/feedback/"})
    html = client.get("/feedback/").get_data(as_text=True)
    assert "Feedback templates" in html and "New template" in html
