"""Every text the visits module shows has its Chinese translation in the module's catalogue, and
the catalogue changes no other module's texts (all catalogues merge into one domain)."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import modules.visits

MODULE = Path(modules.visits.__file__).resolve().parent
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
    assert len(msgids) > 60
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
    folders = app.config["BABEL_TRANSLATION_DIRECTORIES"].split(";")
    assert str(MODULE / "translations") in folders
    for folder in folders:
        for po in Path(folder).glob("*/LC_MESSAGES/messages.po"):
            if po.resolve() == CATALOGUE.resolve():
                continue
            for msgid, msgstr in _catalogue(po).items():
                if msgstr and msgid in ours and ours[msgid] != msgstr:
                    clashes.append((str(po), msgid, msgstr, ours[msgid]))
    assert clashes == []


def test_pages_are_in_chinese_by_default_and_english_on_request(vw):
    client = vw.client("sales1")
    html = client.get("/visits/").get_data(as_text=True)
    assert "客户拜访" in html and "联系方式" in html and "起始日期" in html
    html = client.get("/visits/due").get_data(as_text=True)
    assert "已逾期" in html and "今天联系" in html and "未来 7 天" in html
    client.post("/language", data={"locale": "en", "next": "/visits/"})
    html = client.get("/visits/due").get_data(as_text=True)
    assert "Overdue" in html and "Due today" in html and "In the next 7 days" in html
    html = client.get(f"/visits/customers/{vw.c1}/new").get_data(as_text=True)
    assert "Way of contact" in html and "On-site visit" in html and "Purpose of the contact" in html
