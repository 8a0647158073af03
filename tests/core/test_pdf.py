"""core.pdf: the one PDF renderer (security.md 2.1, 2.6, 2.10; IN-02, PD-01..PD-04)."""

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unicodedata
import uuid
from io import BytesIO
from pathlib import Path

import flask_babel
import pytest
from flask import Flask
from fontTools.ttLib import TTFont
from jinja2 import ChoiceLoader, FileSystemLoader
from pypdf import PdfReader
from pypdf.generic import StreamObject

from core import pdf

pytestmark = pytest.mark.pdf

HERE = Path(__file__).parent
TEMPLATES = HERE.parents[1] / "templates"  # the checkout's own, wherever it is cloned
RARE_NAME = "张三丰 𠮷 𡃁 䶮"  # U+20BB7 and U+210C1 are CJK Ext-B, U+4DAE Ext-A


@pytest.fixture
def app():
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.jinja_loader = ChoiceLoader(
        [FileSystemLoader(str(TEMPLATES)), FileSystemLoader(str(HERE / "pdf_templates"))]
    )
    app.config.update(TESTING=True, COMPANY_NAME="客户信息测试公司")
    flask_babel.Babel(app)
    pdf.init_app(app)
    return app


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connect() — also in the forked render child — leaves a marker file and fails."""
    marker = tmp_path / "connect-attempted"

    def connect(self, address):
        marker.write_text(repr(address))
        raise AssertionError(f"outbound connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    yield marker
    assert not marker.exists(), f"a connection was attempted: {marker.read_text()}"


@pytest.fixture
def private_tmp(monkeypatch, tmp_path):
    """Route the renderer's temp directories into an empty folder we can inspect."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def render_form(app, **context):
    values = {
        "title": "客户档案表",
        "name": RARE_NAME,
        "address": "北京市海淀区中关村大街1号",
        "note": "无",
        "rows": [("2024-01-02", "电话回访，客户满意。")],
    }
    values.update(context)
    with app.app_context():
        return pdf.render("pdftest/form.html", **values)


def pdftotext(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def pdffonts(data: bytes, tmp_path: Path) -> list[dict]:
    path = tmp_path / f"{uuid.uuid4().hex}.pdf"
    path.write_bytes(data)
    lines = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    rows = []
    for line in lines:
        # name, type (may contain spaces), encoding, emb, sub, uni, object id, generation
        match = re.match(r"(\S+)\s+(.+?)\s+(\S+)\s+(yes|no)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+$", line)
        assert match, line
        rows.append({"name": match[1], "type": match[2], "emb": match[4], "uni": match[6]})
    return rows


def embedded_font_programs(data: bytes) -> dict[str, TTFont]:
    """The embedded font programs by their own PostScript name (not the PDF's alias)."""
    programs = {}
    for page in PdfReader(BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            program = descriptor.get("/FontFile3") or descriptor.get("/FontFile2")
            ttfont = TTFont(BytesIO(program.get_object().get_data()))
            programs[ttfont["name"].getDebugName(6)] = ttfont
    return programs


def all_stream_bytes(data: bytes) -> bytes:
    """Every object of the PDF, streams decompressed, so a canary cannot hide inside Flate."""
    reader = PdfReader(BytesIO(data))
    chunks = [data]
    for num in range(1, int(reader.trailer["/Size"])):
        try:
            obj = reader.get_object(num)
        except Exception:  # sparse object numbers
            continue
        if isinstance(obj, StreamObject):
            chunks.append(obj.get_data())
        elif obj is not None:
            chunks.append(repr(obj).encode())
    return b"\n".join(chunks)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def child_zombies() -> list[str]:
    me = str(os.getpid())
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] == "Z":
            zombies.append(stat.parent.name)
    return zombies


# --------------------------------------------------------------------------- fonts, text, layout


def test_start_up_checks_pass_here(app):
    assert pdf.check() == [], "fonts-noto-cjk and libharfbuzz-subset0 must be installed"
    assert app.config["PDF_TIMEOUT"] == 30
    assert app.config["PDF_MAX_CONCURRENT"] == 2
    located = pdf.locate_cjk_fonts()
    assert located["regular"] and located["bold"]


def test_weasyprint_version_and_render_options(monkeypatch):
    import weasyprint

    assert int(weasyprint.__version__.split(".")[0]) >= 70  # URL-fetcher security fixes
    seen = {}
    original = weasyprint.HTML.render

    def spy(self, *args, **options):
        seen.update(options, url_fetcher=type(self.url_fetcher).__name__, base_url=self.base_url)
        return original(self, *args, **options)

    monkeypatch.setattr(weasyprint.HTML, "render", spy)
    html = '<html lang="zh-CN"><link rel="stylesheet" href="kehu-asset:/pdf.css"><p>张三</p></html>'
    data = pdf._render_in_process(html, [], [], pdf._load_fonts())
    assert data.startswith(b"%PDF-")
    assert not seen.get("presentational_hints")
    assert seen["url_fetcher"] == "AllowListFetcher" and seen["base_url"] == "kehu-asset:/"


def test_chinese_and_rare_characters_with_embedded_noto(app, tmp_path, no_network, private_tmp):
    data = render_form(app)
    assert data.startswith(b"%PDF-")

    text = pdftotext(data, tmp_path)
    for word in ["张三丰", "𠮷", "𡃁", "䶮", "客户档案表", "北京市海淀区中关村大街1号", "客户信息测试公司"]:
        assert word in unicodedata.normalize("NFC", text), word

    # pdftotext "reads" Chinese even from empty boxes: the font must really be Noto Sans CJK SC.
    fonts = pdffonts(data, tmp_path)
    assert fonts and all(row["emb"] == "yes" and row["uni"] == "yes" for row in fonts), fonts
    assert {re.sub(r"^[A-Z]{6}\+", "", row["name"]) for row in fonts} <= {"KehuCJK", "KehuCJK-Bold"}, fonts
    assert not any("DejaVu" in row["name"] for row in fonts)
    # KehuCJK is only the @font-face alias; the embedded programs are the SC faces (not JP).
    programs = embedded_font_programs(data)
    assert sorted(programs) == ["NotoSansCJKsc-Bold", "NotoSansCJKsc-Regular"]
    # No .notdef boxes: the embedded subset maps every code point of the name (PD-04).
    for program in programs.values():
        cmap = program.getBestCmap()
        assert [c for c in RARE_NAME.replace(" ", "") if ord(c) not in cmap] == []

    reader = PdfReader(BytesIO(data))
    page_text = reader.pages[0].extract_text()
    assert "第 1 页" in page_text and "共 1 页" in page_text
    assert "第1页/共1页" in squeeze(text)
    assert re.search(r"打印时间：\d{4}-\d\d-\d\d \d\d:\d\d", page_text)
    assert reader.metadata.title == "客户档案表"
    assert "WeasyPrint" not in (reader.metadata.producer or "")
    assert list(private_tmp.iterdir()) == []  # the child's @font-face copies are gone


def test_data_table_header_repeats_across_pages(app, tmp_path):
    rows = [(f"2024-01-{i % 28 + 1:02d}", f"第{i}条联系记录") for i in range(120)]
    data = render_form(app, rows=rows)
    reader = PdfReader(BytesIO(data))
    assert len(reader.pages) >= 2
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert "日期" in text and "内容" in text
        assert f"第 {number} 页" in text and f"共 {len(reader.pages)} 页" in text


# --------------------------------------------------------------------------- injection (IN-02, PD-01, PD-02)


def test_markup_in_user_text_is_printed_literally(app, tmp_path, no_network, private_tmp, caplog):
    canary_value = f"KEHU-CANARY-{uuid.uuid4().hex}"
    canary = tmp_path / "canary.env"
    canary.write_text(canary_value)
    payloads = {
        "name": '<img src="file:///etc/passwd">',
        "address": '<link rel=attachment href="file:///etc/hostname">',
        "note": "<style>@import url(http://127.0.0.1:9/x)</style>{{ config }}",
    }
    rows = [
        (f'<link rel="attachment" href="file://{canary}">', f"<img src='file://{canary}'>"),
        ("<a href=javascript:alert(1)>x</a>", '<object data="file:///etc/passwd"></object>'),
    ]
    caplog.set_level(logging.INFO)
    data = render_form(app, rows=rows, **payloads)

    text = squeeze(pdftotext(data, tmp_path))
    for value in payloads.values():
        assert squeeze(value) in text, value
    assert squeeze(f"file://{canary}") in text
    assert "SECRET_KEY" not in text  # {{ config }} was not evaluated

    everything = all_stream_bytes(data)
    assert canary_value.encode() not in everything
    hostname = Path("/etc/hostname").read_bytes().strip()
    if len(hostname) >= 6:
        assert hostname not in everything
    assert b"root:x:0:0" not in everything

    reader = PdfReader(BytesIO(data))
    root = reader.trailer["/Root"]
    assert "/EmbeddedFiles" not in root.get("/Names", {})
    assert "/JavaScript" not in root.get("/Names", {})
    assert "/OpenAction" not in root and "/AA" not in root
    assert b"/JavaScript" not in everything and b"/Launch" not in everything
    for page in reader.pages:
        assert "/Annots" not in page  # no links at all in this form
    # Content never initiated a fetch.
    assert not [r for r in caplog.records if "blocked resource" in r.getMessage()]


@pytest.mark.parametrize(
    "template, url",
    [
        ("pdftest/evil_img.html", "file:///etc/passwd"),
        ("pdftest/evil_stylesheet.html", "http://127.0.0.1:9/x.css"),
        ("pdftest/evil_css_import.html", "ftp://127.0.0.1:9/x.css"),
        ("pdftest/evil_data_url.html", "data:image/png;base64,iVBORw0KGgo="),
    ],
)
def test_template_resource_outside_allow_list_fails_closed(
    app, template, url, no_network, private_tmp, caplog
):
    caplog.set_level(logging.WARNING)
    with app.app_context(), pytest.raises(pdf.PdfError) as info:
        pdf.render(template, title="恶意模板", name="张三")
    assert str(info.value) == "The PDF could not be generated."
    blocked = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"pdf: blocked resource {url[:80]!r}" in blocked
    assert list(private_tmp.iterdir()) == []
    assert child_zombies() == []


def test_template_attachment_link_is_dropped(app, tmp_path, no_network, caplog):
    caplog.set_level(logging.WARNING)
    with app.app_context():
        data = pdf.render("pdftest/evil_attachment.html", title="附件", name="张三")
    root = PdfReader(BytesIO(data)).trailer["/Root"]
    assert "/EmbeddedFiles" not in root.get("/Names", {})
    hostname = Path("/etc/hostname").read_bytes().strip()
    if len(hostname) >= 6:
        assert hostname not in all_stream_bytes(data)


def test_fetcher_allow_list_is_exact():
    from weasyprint.urls import FatalURLFetchingError

    fetcher = pdf.AllowListFetcher(fonts={"regular": b"OTTO", "bold": None})
    assert fetcher.fetch(pdf.CSS_URL).content_type == "text/css"
    assert fetcher.fetch(pdf.FONT_URLS["regular"]).read() == b"OTTO"
    with pytest.raises(FileNotFoundError):  # allow-listed but not installed: not fatal
        fetcher.fetch(pdf.FONT_URLS["bold"])
    for url in [
        "kehu-asset:/pdf.css?x=1",
        "kehu-asset:/../pdf.css",
        "kehu-asset:/PDF.css",
        (HERE.parents[1] / "core" / "pdf_assets" / "pdf.css").as_uri(),
        "http://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "gopher://127.0.0.1/",
        "data:text/css,body{}",
        "pdf.css",
    ]:
        with pytest.raises(FatalURLFetchingError):
            fetcher.fetch(url)
    assert len(fetcher.blocked) == 9


@pytest.mark.parametrize("name", ["pdftest/plain.txt", "pdftest/form.html.j2", "pdftest/form.HTML", "", None])
def test_non_html_template_is_refused(app, name):
    with app.app_context(), pytest.raises(ValueError):
        pdf.render(name, title="x")


# --------------------------------------------------------------------------- limits (PD-03)


def test_timeout_kills_the_child(app, private_tmp):
    app.config["PDF_TIMEOUT"] = 0.05  # a real render takes ~0.3 s
    started = time.monotonic()
    with pytest.raises(pdf.PdfError):
        render_form(app)
    assert time.monotonic() - started < 3
    assert child_zombies() == []
    assert list(private_tmp.iterdir()) == []


def test_hanging_child_is_killed_and_reaped(app, monkeypatch, tmp_path, private_tmp):
    pid_file = tmp_path / "child.pid"

    def hang(html, blocked, notes, fonts):
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)

    monkeypatch.setattr(pdf, "_render_in_process", hang)
    monkeypatch.setattr(pdf, "_warm", True)
    app.config["PDF_TIMEOUT"] = 0.5
    started = time.monotonic()
    with pytest.raises(pdf.PdfError):
        render_form(app)
    assert time.monotonic() - started < 3
    child = int(pid_file.read_text())
    assert child != os.getpid()
    assert not Path(f"/proc/{child}").exists()  # killed and reaped: not even a zombie
    assert list(private_tmp.iterdir()) == []


def test_memory_limit_fails_cleanly(app, monkeypatch):
    def hog(html, blocked, notes, fonts):
        return bytes(16 * 1024**3)  # far beyond what the child inherits plus its budget

    monkeypatch.setattr(pdf, "_render_in_process", hog)
    monkeypatch.setattr(pdf, "_warm", True)
    with pytest.raises(pdf.PdfError) as info:
        render_form(app)
    assert "MemoryError" in info.value.detail
    assert child_zombies() == []


def test_concurrent_renders_from_threads(app, private_tmp):
    app.config.update(PDF_MAX_CONCURRENT=2, PDF_QUEUE_TIMEOUT=20)
    results, errors = [], []

    def work(i):
        try:
            results.append(render_form(app, name=f"线程{i}"))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(results) == 3
    assert all(data.startswith(b"%PDF-") for data in results)
    assert child_zombies() == []
    assert list(private_tmp.iterdir()) == []


def test_busy_when_all_slots_are_taken(app):
    app.config.update(PDF_MAX_CONCURRENT=1, PDF_QUEUE_TIMEOUT=0.1)
    semaphore = app.extensions["kehu.pdf"].semaphore(1)
    assert semaphore.acquire(timeout=1)
    try:
        with pytest.raises(pdf.PdfBusy) as info:
            render_form(app)
        assert isinstance(info.value, pdf.PdfError)
        assert "try again" in str(info.value)
    finally:
        semaphore.release()


def test_pdftools_available():
    assert shutil.which("pdftotext") and shutil.which("pdffonts")


def _alive(pid):
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return not done


def test_warm_renderers_are_reused_recycled_and_ended(app):
    """The pool: one warm process renders document after document, is replaced after
    PDF_RENDERS_PER_PROCESS, ends when the app shuts it down, and ends by itself when idle."""
    import time

    from core import pdf
    app.config.update(PDF_RENDERS_PER_PROCESS=2, PDF_IDLE_SECONDS=0.3)
    html = "<p>池</p>"
    with app.app_context():
        state = app.extensions["kehu.pdf"]
        assert pdf.render_html_to_pdf(html).startswith(b"%PDF")
        first = state.idle[0].pid
        assert pdf.render_html_to_pdf(html).startswith(b"%PDF")  # second document: the same process, then retired
        assert not state.idle and not _alive(first)
        pdf.render_html_to_pdf(html)
        second = state.idle[0].pid
        assert second != first and _alive(second)
        pdf.shutdown(app)
        assert not state.idle and not _alive(second)
        pdf.render_html_to_pdf(html)
        idle_one = state.idle[0].pid
        deadline = time.monotonic() + 5
        while _alive(idle_one) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(idle_one)  # gone by itself after 0.3 s (+ margin) without a document
        assert pdf.render_html_to_pdf(html).startswith(b"%PDF")  # a fresh one takes over

