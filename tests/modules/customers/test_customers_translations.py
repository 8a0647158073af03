"""Every text the register's pages and services show has a Chinese translation in the module's
catalogue (the import, export and handover files keep their own check)."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from modules.customers import services

MODULE = Path(services.__file__).resolve().parent
CATALOGUE = MODULE / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
SOURCES = ["services.py", "views.py", "forms.py", "quality.py", "api.py"]
TEMPLATES = ["list", "new_kind", "form", "detail", "status", "consent", "withdraw", "contact", "transaction",
             "transactions", "incomplete", "_errors", "_consent_fields", "_customer_heading",
             "_transactions_table"]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None}


def _msgids():
    found = {}
    files = [(MODULE / name, "python") for name in SOURCES] + [
        (MODULE / "templates" / "customers" / f"{name}.html", "jinja2") for name in TEMPLATES]
    for path, method in files:
        for lineno, message, _comments, _context in extract_from_file(method, str(path), keywords=KEYWORDS):
            found.setdefault(message if isinstance(message, str) else message[0], f"{path.name}:{lineno}")
    return found


def test_every_message_of_the_pages_has_a_chinese_translation():
    with CATALOGUE.open("rb") as handle:
        catalog = read_po(handle, locale="zh_Hans_CN")
    msgids = _msgids()
    assert len(msgids) > 150
    missing = {m: where for m, where in msgids.items() if not (catalog.get(m) and catalog.get(m).string)}
    assert missing == {}


def test_placeholders_survive_translation():
    with CATALOGUE.open("rb") as handle:
        catalog = read_po(handle, locale="zh_Hans_CN")

    for message in catalog:
        if message.id and message.string:
            assert sorted(re.findall(r"%\(\w+\)\w", message.id)) == sorted(re.findall(r"%\(\w+\)\w", message.string)), message.id
