"""gunicorn.conf.py, read by gunicorn when started from the checkout."""
import gc
import runpy
from pathlib import Path


def test_a_worker_freezes_the_loaded_app_for_the_collector():
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        conf["post_worker_init"](worker=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
