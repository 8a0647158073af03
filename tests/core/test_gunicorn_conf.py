"""gunicorn.conf.py, read by gunicorn when started from the checkout."""
import gc
import runpy
import types
from pathlib import Path

from flask import Flask

from core import pdf

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_a_worker_freezes_the_loaded_app_for_the_collector():
    conf = runpy.run_path(str(CONF))
    gc.unfreeze()
    try:
        conf["post_worker_init"](worker=types.SimpleNamespace(wsgi=Flask("bare")))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_starting_worker_warms_the_pdf_renderer_of_kehus_app_only(app, monkeypatch):
    """The first PDF after a restart should not load WeasyPrint and the fonts: the worker starts
    the warm-up as it starts. The bench's bare baseline shares this file and is left alone, as is
    an app with PDF_PREWARM off."""
    started = []
    monkeypatch.setattr(pdf, "_prewarm_in_background", lambda *logger: started.append(True))
    monkeypatch.setattr(gc, "freeze", lambda: None)
    conf = runpy.run_path(str(CONF))
    conf["post_worker_init"](types.SimpleNamespace(wsgi=Flask("bare")))
    assert started == []  # not kehu's app: no WeasyPrint in its workers
    app.config["PDF_PREWARM"] = False
    conf["post_worker_init"](types.SimpleNamespace(wsgi=app))
    assert started == []
    app.config["PDF_PREWARM"] = True
    conf["post_worker_init"](types.SimpleNamespace(wsgi=app))
    assert started == [True]


def test_kehu_run_warms_the_pdf_renderer_before_serving(app, runner, monkeypatch):
    import werkzeug.serving
    events = []
    monkeypatch.setattr(pdf, "_prewarm_in_background", lambda *logger: events.append("warm"))
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda host, port, application, **kw:
                        events.append(("serve", host, port, application is app)))
    result = runner("run", "--port", "5999")
    assert result.exit_code == 0, result.output
    assert events == ["warm", ("serve", "127.0.0.1", 5999, True)]


def test_the_printing_checks_belong_to_a_servers_start_not_to_every_command(app, tmp_path, monkeypatch, caplog):
    """pdf.check() loads WeasyPrint and asks fc-match: a second of every `kehu` command's start-up
    when app creation ran it. A starting server logs its warnings once, with or without the warm-up."""
    from core.app import create_app
    from tests.conftest import make_config
    checked = []
    monkeypatch.setattr(pdf, "check", lambda: checked.append(True) or ["pdf: a warning for the administrator"])
    monkeypatch.setattr(pdf, "_checks_logged", False)
    create_app(make_config(tmp_path))  # a second app on the test instance
    assert checked == []
    app.config["PDF_PREWARM"] = False
    pdf.prewarm(app)
    pdf.prewarm(app)
    assert checked == [True]  # once per process
    assert [r.getMessage() for r in caplog.records] == ["pdf: a warning for the administrator"]
