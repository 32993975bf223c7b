"""`manage.py clip_benchmark`: the bare model, the seed's per-pair loop and the whole
pipeline through a real qcluster, interleaved on the same synthetic listings.

The command runs in two processes: the one a person starts makes a database, a
media folder and a queue name of the benchmark's own (`bench_environment`), and a
second `clip_benchmark` in that environment runs the arms (`benchmark_run`) and the
worker cluster; whatever either made is removed at the end. So the user's data and
queue are never touched, while the database engine, the broker and every setting
are the configured ones.
"""
