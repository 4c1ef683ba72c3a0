"""Peak memory of one `monitor run --once` over the hostile site of the test suite and a good site.

    python bench/hostile_memory.py [--workers N] [--limit-mib 500]

The hostile site (tests/test_hostile.py: compression bombs, endless and trickling bodies, silent
servers, entity bombs, huge and binary pages, ...) is built against the monitor's DEFAULT size caps
(10 MiB per feed, 5 MiB per page), so every bomb and huge body is 2.5-40 times what the monitor
accepts; the good site is the bundled demo news site (monitor.demo). Both are served from this
process on 127.0.0.1; the monitor runs as a child process with its default settings except
allow_private_addresses (the sites are local) and shorter timeouts (3 s per request) so that
the trickling attacks end quickly.

Memory is measured two ways and both are printed:
- the monitor process alone: getrusage(RUSAGE_CHILDREN).ru_maxrss, taken by a small launcher
  process that runs the monitor and waits for it (not by this process: a child's ru_maxrss
  starts from the high-water mark of the process it was forked from, and this one has held the
  uncompressed bombs), cross-checked with its VmHWM read from /proc/PID/status every 20 ms;
- the monitor and all its descendants (extraction workers, forkserver): the largest sum of
  their VmRSS over the same 20 ms samples (a sample can miss a spike shorter than 20 ms).
Exit status 1 when either exceeds --limit-mib.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sitegen import serve_articles  # noqa: E402
from test_hostile import HostileSite, write_config  # noqa: E402

from monitor.config import FetchSettings  # noqa: E402

MIB = 1024 * 1024
# Runs the monitor (argv[2:]) and writes its ru_maxrss in KiB to the file argv[1].
_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL)
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=0, help="extract.workers (0 = one per core)")
    parser.add_argument("--limit-mib", type=float, default=500.0)
    args = parser.parse_args()
    defaults = FetchSettings()
    cap_feed, cap_page = defaults.max_feed_bytes, defaults.max_page_bytes

    with tempfile.TemporaryDirectory(prefix="monitor-hostile-bench-") as tmp_name, \
            HostileSite(cap=cap_feed) as hostile, \
            serve_articles(Path(tmp_name) / "good") as (_good, good_feeds):
        tmp = Path(tmp_name)
        config = write_config(tmp / "conf" / "monitor.toml", f"sqlite:///{tmp / 'bench.db'}",
                              [*hostile.feed_urls(), *good_feeds], total_timeout=3, read_timeout=2, connect_timeout=2)
        text = config.read_text(encoding="utf-8").replace("workers = 0", f"workers = {args.workers}")
        config.write_text(text, encoding="utf-8")
        print(f"hostile pass: {len(hostile.attacks)} hostile feeds + {len(good_feeds)} good feeds; caps "
              f"{cap_feed / MIB:g} MiB per feed, {cap_page / MIB:g} MiB per page (defaults); "
              f"extract.workers {args.workers or os.cpu_count()}")
        env = dict(os.environ, NO_COLOR="1")
        env.pop("MONITOR_CONFIG", None)
        started = time.monotonic()
        maxrss_file = tmp / "maxrss"
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(maxrss_file),
                                 sys.executable, "-m", "monitor", "--config", str(config), "run", "--once"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        hwm_kib = tree_kib = 0
        samples = 0
        while proc.poll() is None:
            monitor_pids = _descendants(proc.pid)[1:]          # without the launcher
            if monitor_pids:
                hwm_kib = max(hwm_kib, _status_kib(monitor_pids[0], "VmHWM"))
                tree_kib = max(tree_kib, sum(_status_kib(pid, "VmRSS") for pid in monitor_pids))
            samples += 1
            time.sleep(0.02)
        _, err = proc.communicate()
        seconds = time.monotonic() - started
        maxrss_kib = int(maxrss_file.read_text() or 0) if maxrss_file.exists() else 0
    summary = next((line for line in reversed(err.splitlines()) if "pass done" in line or "stopped" in line), "")
    print(f"monitor exit status {proc.returncode} after {seconds:.1f} s; {summary.strip()}")
    main_mib = max(hwm_kib, maxrss_kib) / 1024
    tree_mib = tree_kib / 1024
    print(f"peak RSS, monitor process alone: {main_mib:.1f} MiB "
          f"(ru_maxrss {maxrss_kib / 1024:.1f} MiB, VmHWM sampled {hwm_kib / 1024:.1f} MiB)")
    print(f"peak RSS, monitor + descendants (sum of VmRSS, {samples} samples every 20 ms): {tree_mib:.1f} MiB")
    ok = proc.returncode == 0 and main_mib < args.limit_mib and tree_mib < args.limit_mib
    print(f"{'OK' if ok else 'FAIL'}: limit {args.limit_mib:g} MiB")
    if proc.returncode != 0:
        print(err[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
