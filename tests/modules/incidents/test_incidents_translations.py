"""Every text the incident module shows has its Chinese translation in the module's catalogue, and
the catalogue changes no other module's texts (all catalogues merge into one domain)."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import modules.incidents

MODULE = Path(modules.incidents.__file__).resolve().parent
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


def test_pages_are_in_chinese_by_default(inc):
    incident_id = inc.report()
    sec = inc.security()
    html = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "研判" in html and "审计日志证据" in html and "已报告" in html
    sec.post("/language", data={"locale": "en", "next": "/incidents/"})
    html = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "Evidence from the audit trail" in html and "Reported" in html
