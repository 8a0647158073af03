# gunicorn reads this file when started from the checkout: `gunicorn -w 4 'core:create_app()'`.
# With an access log (--access-logfile), its lines leave out query strings and the Referer:
# search terms (?q=<ID number>) are personal data and must not reach any log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s'
