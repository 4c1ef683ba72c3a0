"""Imported by the extraction pool's forkserver, before it forks any worker: the language model is
loaded there once, so every worker (and every replacement of a stuck one) starts with it instead
of loading it again, about 0.6 s of CPU a worker."""
from monitor.extract import warm_up

warm_up()
