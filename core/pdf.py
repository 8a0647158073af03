"""The one PDF renderer: a fixed Jinja ``.html`` template -> WeasyPrint, in a resource-limited child.

Callers check permissions first and pass plain text only; autoescaping turns anything a user typed
into literal text. The URL fetcher serves an exact allow-list of assets (the PDF stylesheet and the
CJK font faces) and refuses everything else, so no content can make the renderer open a file or a
socket (security.md 2.1, 2.6, 2.10; cases IN-02, PD-01..PD-04).

Public API::

    init_app(app)                     config defaults + start-up warnings from check()
    check() -> list[str]              human-readable start-up warnings (fonts, HarfBuzz, WeasyPrint)
    render(template_name, **context)  -> bytes, inside an app context
    render_html_to_pdf(html)          -> bytes, the HTML -> PDF step alone (child process + limits)
    PdfError, PdfBusy                 raised on failure / when the per-process queue stays full
    ASSET_BASE                        "kehu-asset:/", the only base URL templates may rely on

``weasyprint`` is imported lazily so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app, has_app_context, render_template
from flask_babel import lazy_gettext

log = logging.getLogger(__name__)

ASSET_BASE = "kehu-asset:/"
CSS_URL = ASSET_BASE + "pdf.css"
FONT_URLS = {
    "regular": ASSET_BASE + "fonts/NotoSansCJKsc-Regular.otf",
    "bold": ASSET_BASE + "fonts/NotoSansCJKsc-Bold.otf",
}
CJK_FAMILY = "Noto Sans CJK SC"
_CSS_PATH = Path(__file__).with_name("pdf_assets") / "pdf.css"

# Where Debian (fonts-noto-cjk), Fedora, Arch and Alpine put Noto Sans CJK; fc-match is asked first.
_KNOWN_FONT_PATHS = {
    "regular": (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/noto/NotoSansCJK-Regular.ttc",
    ),
    "bold": (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Bold.otf",
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/noto/NotoSansCJK-Bold.ttc",
    ),
}

DEFAULTS = {
    "PDF_TIMEOUT": 30,  # seconds of wall clock for one HTML -> PDF step
    "PDF_MAX_CONCURRENT": 2,  # renders at once per process
    "PDF_QUEUE_TIMEOUT": 5,  # seconds to wait for a free slot before PdfBusy
    "PDF_MAX_MEMORY": 1536 * 1024 * 1024,  # address space a render may add to what it inherits, bytes
    "PDF_RENDERS_PER_PROCESS": 20,  # a renderer process is replaced after this many documents
    "PDF_IDLE_SECONDS": 300,  # an idle renderer process ends after this long
}
_MAX_OUTPUT = 256 * 1024 * 1024  # a child answering more than this is killed
_FRAME = struct.Struct(">QI")  # pdf length, header length
_EXTENSION = "kehu.pdf"


class PdfError(RuntimeError):
    """The PDF could not be generated. ``str(exc)`` is the translated message for the user;
    ``exc.detail`` is for the log only."""

    message = lazy_gettext("The PDF could not be generated.")

    def __init__(self, detail: str | None = None):
        super().__init__(self.message)
        self.detail = detail


class PdfBusy(PdfError):
    """Too many PDFs are being rendered by this process right now."""

    message = lazy_gettext("Too many PDF documents are being generated. Please try again in a moment.")


# --------------------------------------------------------------------------- fonts


def _fc_match(weight: str) -> str | None:
    fc_match = shutil.which("fc-match")
    if not fc_match:
        return None
    pattern = f"{CJK_FAMILY}:lang=zh-cn:weight={weight}"
    try:
        out = subprocess.run(
            [fc_match, "-f", "%{file}", pattern], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _face_index(path: str, style: str) -> int | None:
    """Index of the "Noto Sans CJK SC" face of the given style (Regular/Bold) in a font file or
    collection, or None. (The Debian .ttc holds JP, KR, SC, TC, HK and Mono faces, JP first: a
    @font-face loading the whole collection renders Chinese with Japanese glyph forms.)"""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        fonts = (
            TTCollection(path, lazy=True).fonts
            if magic == b"ttcf"
            else [TTFont(path, lazy=True, fontNumber=-1)]
        )
        for index, font in enumerate(fonts):
            names = font["name"]
            family = names.getDebugName(16) or names.getDebugName(1)
            subfamily = names.getDebugName(17) or names.getDebugName(2)
            if family == CJK_FAMILY and (subfamily or "").lower() == style:
                return index
    except (OSError, TTLibError, KeyError, AssertionError, struct.error):
        return None
    return None


@functools.cache
def locate_cjk_fonts() -> dict[str, tuple[str, int] | None]:
    """{"regular": (path, face index) | None, "bold": ...} for Noto Sans CJK SC.

    fc-match is asked for the exact family with lang zh-cn (a bare ``:lang=zh`` fell back to
    DejaVu here) and the answer is verified by reading the font's own name table, since fc-match
    always answers something; then well-known package paths are tried."""
    found: dict[str, tuple[str, int] | None] = {}
    for style, weight in (("regular", "regular"), ("bold", "bold")):
        found[style] = None
        candidates = [_fc_match(weight), *_KNOWN_FONT_PATHS[style]]
        for path in dict.fromkeys(p for p in candidates if p):
            if os.path.isfile(path) and (index := _face_index(path, style)) is not None:
                found[style] = (path, index)
                break
    return found


def _extract_face(data: bytes, index: int) -> bytes:
    """One face of an OpenType collection as a standalone sfnt (tables copied byte for byte)."""
    if data[:4] != b"ttcf":
        return data
    (num_fonts,) = struct.unpack_from(">I", data, 8)
    if not 0 <= index < num_fonts:
        raise ValueError(f"face {index} not in collection of {num_fonts}")
    (offset,) = struct.unpack_from(">I", data, 12 + 4 * index)
    version, num_tables, search_range, selector, shift = struct.unpack_from(">4sHHHH", data, offset)
    records = [struct.unpack_from(">4sIII", data, offset + 12 + 16 * i) for i in range(num_tables)]
    directory = bytearray(struct.pack(">4sHHHH", version, num_tables, search_range, selector, shift))
    body = bytearray()
    start = 12 + 16 * num_tables
    for tag, checksum, table_offset, length in records:
        directory += struct.pack(">4sIII", tag, checksum, start + len(body), length)
        body += data[table_offset : table_offset + length]
        body += b"\0" * (-len(body) % 4)
    return bytes(directory + body)


_font_lock = threading.Lock()
_font_bytes: dict[str, bytes | None] = {}


def _load_fonts() -> dict[str, bytes | None]:
    """The SC faces as bytes, read once per process (before forking, so children share them)."""
    with _font_lock:
        if not _font_bytes:
            for style, where in locate_cjk_fonts().items():
                data = None
                if where:
                    try:
                        data = _extract_face(Path(where[0]).read_bytes(), where[1])
                    except (OSError, ValueError, struct.error) as exc:
                        log.warning("pdf: cannot read CJK font %s: %s", where[0], exc)
                _font_bytes[style] = data
        return dict(_font_bytes)


# --------------------------------------------------------------------------- checks


def _weasyprint_status() -> tuple[str | None, bool | None, str | None]:
    """(weasyprint version, HarfBuzz subsetter usable, import error)."""
    try:
        import weasyprint
        from weasyprint.text.ffi import harfbuzz, harfbuzz_subset
    except Exception as exc:  # reported as a start-up warning
        import ctypes.util

        return None, ctypes.util.find_library("harfbuzz-subset") is not None, str(exc)
    # The same test WeasyPrint 70 makes in pdf/fonts.py before choosing HarfBuzz over fontTools.
    usable = harfbuzz_subset is not None and bool(harfbuzz.hb_version_atleast(4, 1, 0))
    return weasyprint.__version__, usable, None


def check() -> list[str]:
    """Start-up checks; each entry is a warning for the administrator."""
    warnings: list[str] = []
    fonts = locate_cjk_fonts()
    if fonts["regular"] is None:
        warnings.append(
            "pdf: CJK font 'Noto Sans CJK SC' not found (install Debian package fonts-noto-cjk); "
            "Chinese text in PDFs will print as empty boxes."
        )
    elif fonts["bold"] is None:
        warnings.append("pdf: bold face of 'Noto Sans CJK SC' not found; bold text will be synthesised.")
    version, hb_subset, error = _weasyprint_status()
    if error:
        warnings.append(f"pdf: WeasyPrint cannot be loaded, PDFs cannot be generated: {error}")
    else:
        major = re.match(r"\d+", version)
        if not major or int(major.group()) < 70:
            warnings.append(f"pdf: WeasyPrint {version} is older than 70 (URL-fetcher security fixes).")
    if not hb_subset:
        warnings.append(
            "pdf: libharfbuzz-subset (>= 4.1) not found (install Debian package libharfbuzz-subset0); "
            "WeasyPrint falls back to fontTools and a one-page Chinese form takes ~9 s instead of ~0.2 s."
        )
    if not hasattr(os, "fork"):
        warnings.append("pdf: os.fork is unavailable; PDFs cannot be rendered in a limited child process.")
    return warnings


def init_app(app) -> None:
    # No check() here: it loads WeasyPrint and asks fc-match, a second of every `kehu` command's
    # start-up for warnings about printing. A server logs them as it starts (``prewarm``) or on
    # its first request; `kehu selfcheck` and the self-check page show them as a finding.
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.extensions[_EXTENSION] = _State()
    if app.config.get("PDF_PREWARM", True):
        app.before_request(lambda: _prewarm_in_background(app.logger))


_checks_logged = False


def _log_checks(logger) -> None:
    """Log ``check()``'s warnings, once per process (a server's start)."""
    global _checks_logged
    if _checks_logged:
        return
    _checks_logged = True
    for warning in check():
        logger.warning(warning)


def shutdown(app) -> None:
    """End the app's warm renderer processes now (a test's app, a worker shutting down) rather
    than when the app is collected."""
    state = app.extensions.get(_EXTENSION)
    if state is not None:
        with state._lock:
            _close_all(state.idle, os.getpid())


def _close_all(renderers: list, owner: int) -> None:
    if os.getpid() != owner:  # a forked copy of the list (in a renderer): not ours to end
        return
    while renderers:
        renderers.pop().close(kill=True)


class _State:
    def __init__(self):
        self._lock = threading.Lock()
        self._semaphore: threading.BoundedSemaphore | None = None
        self.idle: list[_Renderer] = []  # warm renderer processes waiting for a document
        weakref.finalize(self, _close_all, self.idle, os.getpid())  # ended and reaped with the app

    def semaphore(self, size: int) -> threading.BoundedSemaphore:
        with self._lock:
            if self._semaphore is None:
                self._semaphore = threading.BoundedSemaphore(size)
            return self._semaphore


_default_state = _State()


# --------------------------------------------------------------------------- fetcher


@functools.cache
def _fetcher_class():
    from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

    class AllowListFetcher(URLFetcher):
        """Serves exactly the allow-listed ``kehu-asset:/`` URLs; anything else stops the render.

        No protocol is allowed to the base class, redirects are off, and ``fetch`` never calls the
        base implementation, so no socket is opened and no local path is read for content."""

        def __init__(self, fonts: dict[str, bytes | None] | None = None):
            super().__init__(timeout=1, allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
            self.fonts = _load_fonts() if fonts is None else fonts
            self.blocked: list[str] = []

        def fetch(self, url, headers=None):
            if url == CSS_URL:
                return URLFetcherResponse(
                    url, _CSS_PATH.read_bytes(), {"Content-Type": "text/css; charset=utf-8"}
                )
            for style, font_url in FONT_URLS.items():
                if url == font_url:
                    data = self.fonts.get(style)
                    if data is None:  # allow-listed but not installed: WeasyPrint skips the face
                        raise FileNotFoundError(f"CJK font ({style}) is not installed")
                    return URLFetcherResponse(url, data, {"Content-Type": "font/otf"})
            self.blocked.append(url[:80])
            raise FatalURLFetchingError(f"pdf: blocked resource {url[:80]!r}")

    return AllowListFetcher


def __getattr__(name):  # lazy: AllowListFetcher subclasses a WeasyPrint class
    if name == "AllowListFetcher":
        return _fetcher_class()
    raise AttributeError(name)


def _finisher(document, pdf):
    """Last pass over the PDF objects: no attachments, no JavaScript, no auto-actions, no
    library version in the Producer field."""
    import pydyf

    pdf.info["Producer"] = pydyf.String("kehu")
    names = pdf.catalog.get("Names")
    if names is not None:
        for key in ("EmbeddedFiles", "JavaScript"):
            names.pop(key, None)
        if not names:
            del pdf.catalog["Names"]
    for key in ("OpenAction", "AA"):
        pdf.catalog.pop(key, None)


class _NoteHandler(logging.Handler):
    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record):
        if len(self.notes) < 20:
            with contextlib.suppress(Exception):  # a bad log record must not break the render
                self.notes.append(record.getMessage()[:200])


def _render_in_process(html: str, blocked: list[str], notes: list[str], fonts: dict) -> bytes:
    """HTML -> PDF in the current process. ``blocked`` and ``notes`` are filled in as it goes."""
    import weasyprint
    from weasyprint.logger import LOGGER

    fetcher = _fetcher_class()(fonts)
    fetcher.blocked = blocked
    handler = _NoteHandler(notes)
    LOGGER.addHandler(handler)
    try:
        document = weasyprint.HTML(string=html, base_url=ASSET_BASE, url_fetcher=fetcher).render()
        document.metadata.attachments = []  # <link rel=attachment> never reaches the fetcher
        return document.write_pdf(finisher=_finisher)
    finally:
        LOGGER.removeHandler(handler)


# --------------------------------------------------------------------------- child process


def _config(key):
    if has_app_context():
        return current_app.config.get(key, DEFAULTS[key])
    return DEFAULTS[key]


def _logger():
    return current_app.logger if has_app_context() else log


def _inherited_memory() -> int:
    """The address space the forked child starts with (the parent's): the render's budget comes on
    top, or a large parent (many threads, a long test run) would leave the child nothing."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _limit_child(max_memory: int, timeout: float) -> None:
    import resource

    address_space = _inherited_memory() + int(max_memory)
    for limit, value in ((resource.RLIMIT_AS, address_space), (resource.RLIMIT_CPU, int(timeout) + 1)):
        soft, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, hard))


def _reap(pid: int, deadline: float) -> int | None:
    """waitpid until deadline; None if the child is still running."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


_WARM_UP_HTML = """<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>预热</title>
<link rel="stylesheet" href="kehu-asset:/pdf.css"></head><body>
<div class="pdf-header"><span>kehu</span><span>预热</span></div>
<div class="pdf-footer"><span>打印时间：2000-01-01 00:00</span>
<span>第 <span class="pdf-page-number"></span> 页 / 共 <span class="pdf-page-count"></span> 页</span></div>
<h1>客户档案</h1><table class="pdf-kv"><tr><th>姓名</th><td>张三 Zhang San 123</td></tr></table>
<table class="pdf-data"><thead><tr><th>日期</th></tr></thead><tbody><tr><td>记录</td></tr></tbody></table>
<p><b>加粗</b> 正文</p></body></html>"""

# Forks wait while the parent warms up (so no child is born holding a fontconfig/pango lock).
_fork_lock = threading.Lock()
_warm = False


def _warm_up() -> None:
    """Render one fixed document in this process, once: WeasyPrint's cffi type cache and other
    lazy state are then inherited by every child instead of being rebuilt (~0.2 s) in each."""
    global _warm
    if _warm:
        return
    with _fork_lock:
        if _warm:
            return
        try:
            _render_in_process(_WARM_UP_HTML, [], [], _load_fonts())
        except BaseException as exc:  # a failed warm-up only costs speed
            log.warning("pdf: warm-up render failed: %s", exc)
        finally:
            gc.collect()  # WeasyPrint removes its @font-face temp folder when collected
            _warm = True


_prewarm_started = False


def prewarm(app) -> None:
    """Warm the renderer now, in the background, in a server process that has just started
    (gunicorn's post_worker_init, `kehu run`), so that the first PDF asked for after a restart
    finds WeasyPrint, the fonts and the warm-up render ready; ``check()``'s warnings are logged
    first, at once (with PDF_PREWARM off, only they). Nothing for an app that is not kehu's (the
    bench's bare baseline shares gunicorn.conf.py)."""
    if _EXTENSION not in getattr(app, "extensions", {}):
        return
    # before the worker serves: WeasyPrint is imported here (a second), not by the warm-up thread
    # while the first PDF waits for it
    _log_checks(app.logger)
    if app.config.get("PDF_PREWARM", True):
        _prewarm_in_background(app.logger)


def _prewarm_in_background(logger=None) -> None:
    """Log the start-up checks' warnings, load WeasyPrint and the fonts and render the warm-up
    document in a background thread (renderer forks wait for it), once per process: at a server's
    start (``prewarm``) or else on its first request, so the first PDF a user asks for does not pay
    for them. Command-line runs never serve a request and never load WeasyPrint for nothing."""
    global _prewarm_started
    if _prewarm_started or _warm:
        return
    _prewarm_started = True

    def warm():
        try:
            _log_checks(logger or log)
            _load_fonts()
            _warm_up()
        except Exception as exc:  # only speed is lost
            log.warning("pdf: background warm-up failed: %s", exc)

    threading.Thread(target=warm, name="kehu-pdf-warm-up", daemon=True).start()


_JOB = struct.Struct(">QId")  # html length, workdir length, timeout


def _read_exactly(fd: int, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _renderer_loop(job_fd: int, write_fd: int, fonts: dict, max_memory: int, idle: float) -> None:
    """A pooled renderer process (forked, never returns): the same limits as a one-off child
    (RLIMIT_AS once, RLIMIT_CPU re-armed for each document), one document at a time, each in the
    temp folder the parent made for it; ends on EOF (the parent closes it, or is gone), when idle
    for longer than PDF_IDLE_SECONDS, and after
    any failed document (the parent then starts a fresh one)."""
    import resource
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        logging.getLogger("weasyprint").propagate = False
        _limit_child(max_memory, 3600)
        waiting = select.poll()  # poll, not select: the pipe's number may be above FD_SETSIZE
        waiting.register(job_fd, select.POLLIN)
        while True:
            if not waiting.poll((idle + min(idle, 5)) * 1000):
                return  # idle for longer than the parent would reuse it: end rather than linger
            head = _read_exactly(job_fd, _JOB.size)
            if head is None:
                return
            html_len, dir_len, timeout = _JOB.unpack(head)
            html = (_read_exactly(job_fd, html_len) or b"").decode("utf-8")
            workdir = (_read_exactly(job_fd, dir_len) or b"").decode("utf-8")
            tempfile.tempdir = workdir  # WeasyPrint writes @font-face files here; the parent removes it
            os.environ["TMPDIR"] = workdir
            usage = resource.getrusage(resource.RUSAGE_SELF)
            used = int(usage.ru_utime + usage.ru_stime)
            soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
            cpu = used + int(timeout) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu if hard == resource.RLIM_INFINITY else min(cpu, hard), hard))
            blocked: list[str] = []
            notes: list[str] = []
            try:
                pdf = _render_in_process(html, blocked, notes, fonts)
                header = {"ok": True}
            except BaseException as exc:  # includes FatalURLFetchingError and MemoryError
                header = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
                pdf = b""
            gc.collect()  # WeasyPrint's temp files go with its objects, before the parent removes the folder
            header.update(blocked=blocked, notes=notes)
            head = json.dumps(header).encode()
            view = memoryview(_FRAME.pack(len(pdf), len(head)) + head + pdf)
            while view:
                view = view[os.write(write_fd, view) :]
            if not header["ok"]:
                return
    finally:
        os._exit(0)


class _Renderer:
    """The parent's handle on one pooled renderer process."""

    def __init__(self, max_memory: int, idle: float):
        fonts = _load_fonts()
        _warm_up()
        job_r, self.job_w = os.pipe()
        self.result_r, result_w = os.pipe()
        self.max_memory = max_memory
        self.renders = 0
        self.started = time.monotonic()
        self.last_used = self.started
        self.idle_limit = idle
        with _fork_lock:
            pid = os.fork()
        if pid == 0:
            try:
                # Keep nothing of the parent's but the two pipes: a long-lived renderer must not hold
                # its sockets, database files or other children's pipes open (a peer waiting for EOF
                # on one would wait for ever). Everything inherited is frozen first: no collection in
                # this process walks it (which would copy the parent's whole heap page by page) or
                # finalises an object whose descriptor number now means another file.
                gc.freeze()
                low, high = sorted((job_r, result_w))
                os.closerange(3, low)
                os.closerange(low + 1, high)
                os.closerange(high + 1, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
                _renderer_loop(job_r, result_w, fonts, max_memory, idle)
            finally:
                os._exit(1)
        self.pid = pid
        self.owner = os.getpid()
        os.close(job_r)
        os.close(result_w)

    def fresh(self) -> bool:
        """Still there, and not idle for longer than PDF_IDLE_SECONDS (then it is replaced)."""
        if time.monotonic() - self.last_used > self.idle_limit:
            return False
        try:
            done, _status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return not done

    def render(self, html: str, timeout: float) -> tuple[dict, bytes]:
        workdir = tempfile.mkdtemp(prefix="kehu-pdf-")
        try:
            data, folder = html.encode("utf-8"), workdir.encode("utf-8")
            job = _JOB.pack(len(data), len(folder), float(timeout)) + data + folder
            view = memoryview(job)
            while view:
                view = view[os.write(self.job_w, view) :]
            header, pdf = self._answer(timeout)
            self.renders += 1
            self.last_used = time.monotonic()
            return header, pdf
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _answer(self, timeout: float) -> tuple[dict, bytes]:
        deadline = time.monotonic() + timeout
        buf = bytearray()
        expected = None
        while expected is None or len(buf) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PdfError(f"timed out after {timeout}s")
            ready, _, _ = select.select([self.result_r], [], [], min(remaining, 0.05))
            if ready:
                chunk = os.read(self.result_r, 1 << 20)
                if not chunk:
                    raise PdfError("render process died without an answer")
                buf += chunk
                if expected is None and len(buf) >= _FRAME.size:
                    pdf_len, head_len = _FRAME.unpack_from(buf)
                    expected = _FRAME.size + head_len + pdf_len
                    if expected > _MAX_OUTPUT:
                        raise PdfError(f"output of {expected} bytes is too large")
        pdf_len, head_len = _FRAME.unpack_from(buf)
        try:
            header = json.loads(bytes(buf[_FRAME.size : _FRAME.size + head_len]))
        except ValueError as exc:
            raise PdfError(f"unreadable answer from render process: {exc}") from None
        return header, bytes(buf[_FRAME.size + head_len :])

    def close(self, kill: bool = False) -> None:
        """End the process (EOF on its job pipe, or SIGKILL) and reap it: no zombie is left."""
        if os.getpid() != self.owner:
            return
        for fd in (self.job_w, self.result_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            if _reap(self.pid, time.monotonic() + 5) is None:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass


def _render_pooled(state: _State, html: str, timeout: float, max_memory: int) -> tuple[dict, bytes]:
    """Render in a warm renderer process of the pool (started on demand, at most one per render
    slot), then put it back, or end it after PDF_RENDERS_PER_PROCESS documents or any failure."""
    renderer = None
    with state._lock:
        while state.idle:
            candidate = state.idle.pop()
            if candidate.fresh() and candidate.max_memory == max_memory:
                renderer = candidate
                break
            candidate.close(kill=True)
    if renderer is None:
        renderer = _Renderer(max_memory, float(_config("PDF_IDLE_SECONDS")))
    keep = False
    try:
        header, pdf = renderer.render(html, timeout)
        keep = header.get("ok") and renderer.renders < int(_config("PDF_RENDERS_PER_PROCESS"))
        return header, pdf
    finally:
        if keep:
            with state._lock:
                state.idle.append(renderer)
        else:
            renderer.close(kill=True)


def render_html_to_pdf(html: str) -> bytes:
    """The HTML -> PDF step: allow-list fetcher, a forked renderer process with RLIMIT_AS/RLIMIT_CPU
    and a wall-clock timeout (kept warm in a small pool, replaced after PDF_RENDERS_PER_PROCESS
    documents, after any failure and when it overruns), at most PDF_MAX_CONCURRENT at once per
    process. ``html`` must come from a
    fixed, autoescaped template (use ``render``)."""
    state = current_app.extensions.get(_EXTENSION, _default_state) if has_app_context() else _default_state
    semaphore = state.semaphore(int(_config("PDF_MAX_CONCURRENT")))
    logger = _logger()
    if not semaphore.acquire(timeout=float(_config("PDF_QUEUE_TIMEOUT"))):
        logger.warning("pdf: all %s render slots busy; request refused", _config("PDF_MAX_CONCURRENT"))
        raise PdfBusy("render slots busy")
    started = time.monotonic()
    try:
        header, pdf = _render_pooled(state, html, float(_config("PDF_TIMEOUT")), int(_config("PDF_MAX_MEMORY")))
    except PdfError as exc:
        logger.error("pdf: rendering failed: %s", exc.detail)
        raise
    finally:
        semaphore.release()
    for url in header.get("blocked", []):
        logger.warning("pdf: blocked resource %r", url[:80])
    for note in header.get("notes", []):
        logger.info("pdf: weasyprint: %s", note)
    if not header.get("ok"):
        logger.error("pdf: rendering failed: %s", header.get("error"))
        raise PdfError(header.get("error"))
    logger.debug("pdf: rendered %d bytes in %.2fs", len(pdf), time.monotonic() - started)
    return pdf


# --------------------------------------------------------------------------- templates


def _printed_at() -> str:
    now = datetime.now(UTC)
    if has_app_context() and "babel" in current_app.extensions:
        from flask_babel import to_user_timezone

        return to_user_timezone(now).strftime("%Y-%m-%d %H:%M")
    return now.astimezone().strftime("%Y-%m-%d %H:%M")


def render(template_name: str, **context) -> bytes:
    """Render ``templates/<template_name>`` (an autoescaped ``.html`` template, usually extending
    ``pdf/base.html``) and return the PDF bytes. Needs an app context; permission checks are the
    caller's job, and ``context`` holds plain text only (never HTML, CSS or URLs from users).

    ``title`` becomes the header title and the PDF metadata title; ``printed_at`` is filled in."""
    if not isinstance(template_name, str) or not template_name.endswith(".html"):
        raise ValueError(f"PDF templates must be .html templates, got {template_name!r}")
    env = current_app.jinja_env
    autoescape = env.autoescape(template_name) if callable(env.autoescape) else env.autoescape
    if not autoescape:
        raise ValueError(f"autoescape is off for {template_name!r}; refusing to render a PDF from it")
    context.setdefault("printed_at", _printed_at())
    html = render_template(template_name, **context)
    return render_html_to_pdf(html)


def response(template_name: str, *, filename: str, action: str, target=None, target_type=None,
             target_id=None, fallback: str, audit_details=None, **context):
    """A PDF view's whole answer: render ``template_name``, write ``action`` to the audit trail
    (``result="failed"`` when rendering fails) and return the PDF inline, never cached, under a
    file name that may be Chinese. On failure the user is sent to ``fallback`` with the reason.

    The caller checks permission and remit first and passes plain-text ``context`` only."""
    from urllib.parse import quote

    from flask import Response, flash, redirect

    from core import audit
    from core.db import db

    where = {"target": target, "target_type": target_type, "target_id": target_id}
    db.session.commit()  # end the read transaction: SQLite holds its write lock until then
    try:
        data = render(template_name, **context)
    except PdfError as exc:
        audit.record(action, result="failed", **where)
        db.session.commit()
        flash(str(exc), "danger")
        return redirect(fallback)
    audit.record(action, size=len(data), **where, **(audit_details or {}))
    db.session.commit()
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("_-.") or "kehu.pdf"
    resp = Response(data, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = (f"inline; filename=\"{ascii_name}\"; "
                                           f"filename*=UTF-8''{quote(filename)}")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
