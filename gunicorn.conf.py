import gc

# gunicorn reads this file when started from the checkout: `gunicorn -w 4 'core:create_app()'`.
# With an access log (--access-logfile), its lines leave out query strings and the Referer:
# search terms (?q=<ID number>) are personal data and must not reach any log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'


def post_worker_init(worker):
    """Freeze the heap once the worker has loaded the app: the cyclic collector's full passes
    then scan what requests make, not the app's hundreds of thousands of long-lived objects (with
    wrk on the demo's list page: p99 70 ms instead of 120–144, requests/s +4 %). Then warm the PDF
    renderer in the background, so the first PDF after a restart is as quick as the next."""
    gc.freeze()
    from core import pdf
    pdf.prewarm(worker.wsgi)
