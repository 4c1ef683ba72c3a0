"""Imported by the extraction pool's forkserver, before it forks any worker: the language model is
loaded there once, so every worker (and every replacement of a stuck one) starts with it instead
of loading it again, about 0.6 s of CPU a worker.

It is the last module the server loads, so it also freezes what the server holds: a worker's
garbage collections then never walk those objects, whose headers they would write to, copying
the memory each worker shares with the server (some 10 MiB a worker after a full collection)."""
import gc

from monitor.extract import warm_up

warm_up()
gc.collect()
gc.freeze()
