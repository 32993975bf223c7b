"""gunicorn's configuration: `gunicorn -c config/gunicorn.py`.

Threaded workers (gthread): a `?wait=N` request holds its thread for up to
CLIPMATCH_API_MAX_WAIT seconds while it polls for the verdict, so each process has
threads to spare for it, and the timeout outlasts the longest wait.
Read from the environment like the settings, and documented in the same table.
"""

import environ

env = environ.Env()

wsgi_app = "config.wsgi:application"
bind = env.list("GUNICORN_BIND", default=["127.0.0.1:8000"])
# Each process that answers /check/ loads the model once (about 540 MB resident
# with the bundled one, mostly torch; ViT-B/32 adds its 600 MB of weights): size
# workers by memory, threads by waiting.
workers = env.int("GUNICORN_WORKERS", default=2)
worker_class = "gthread"
threads = env.int("GUNICORN_THREADS", default=8)
timeout = env.int("GUNICORN_TIMEOUT", default=60)
graceful_timeout = 30
keepalive = 5
# A worker that has answered this many requests is replaced (leaks stay bounded);
# the jitter keeps them from all restarting at once.
max_requests = env.int("GUNICORN_MAX_REQUESTS", default=5000)
max_requests_jitter = max_requests // 10
# The app writes one line per request itself (clipmatch.request, with its id);
# GUNICORN_ACCESS_LOG=- adds gunicorn's own, which names the request id and the pid.
accesslog = env("GUNICORN_ACCESS_LOG", default="") or None
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s request_id=%({x-request-id}o)s'
)
errorlog = "-"
# The proxy in front (on this machine by default) may say the client used HTTPS.
forwarded_allow_ips = env("GUNICORN_FORWARDED_ALLOW_IPS", default="127.0.0.1,::1")
# The app is imported in each worker after the fork, never in the arbiter: the
# model (torch) must not be loaded before a fork.
preload_app = False


def child_exit(server, worker):
    """A dead worker's live gauges leave the metrics (prometheus multiprocess mode)."""
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
