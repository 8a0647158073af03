"""Every text the grading module shows has its Chinese translation in the module's catalogue, and
the catalogue changes no other module's texts (all catalogues merge into one domain)."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import modules.grading

MODULE = Path(modules.grading.__file__).resolve().parent
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
    assert len(msgids) > 80
    assert {m: where for m, where in msgids.items() if not catalogue.get(m)} == {}
    assert sorted(m for m in catalogue if m not in msgids) == []  # nothing stale


def test_placeholders_survive_translation():
    for msgid, msgstr in _catalogue(CATALOGUE).items():
        assert sorted(re.findall(r"%\(\w+\)\w", msgid)) == sorted(re.findall(r"%\(\w+\)\w", msgstr)), msgid


def test_no_other_modules_text_is_changed(app):
    """A msgid another catalogue translates too must mean the same here, or the merge (later
    catalogues win) would change that module's pages."""
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


def test_pages_are_in_chinese_by_default(client, login_as, grading_dept):
    login_as(client, "g_head")
    html = client.get("/grading/").get_data(as_text=True)
    assert "客户等级分布" in html and "重新计算分级" in html and "符合以下条件的客户为重要客户" in html
    html = client.get("/grading/rules").get_data(as_text=True)
    assert "分级说明" in html and "近12个月交易金额下限（元）" in html
    client.post("/language", data={"locale": "en", "next": "/grading/"})
    html = client.get("/grading/").get_data(as_text=True)
    assert "Distribution of grades" in html and "A customer is important when" in html
