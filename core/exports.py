"""Files for Excel: CSV in UTF-8 with a BOM (so Excel opens Chinese text), RFC 4180 quoting, and
formulas neutralised, so a cell typed as "=HYPERLINK(…)" stays text on the reader's machine."""
from __future__ import annotations

import csv
import io
from urllib.parse import quote

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")


def neutralise(text):
    """A leading formula character gets a quote in front, as OWASP advises for CSV injection."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def csv_bytes(header, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def csv_response(header, rows, filename):
    """A download of ``rows`` as ``filename`` (may be Chinese), never cached."""
    from flask import Response
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename).strip("_-.")
    response = Response(csv_bytes(header, rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = (f"attachment; filename=\"{ascii_name or 'kehu.csv'}\"; "
                                               f"filename*=UTF-8''{quote(filename)}")
    response.headers["Cache-Control"] = "no-store"
    return response
