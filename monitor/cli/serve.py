"""`monitor serve`: the Miniflux webhook, the read API and the workspace over HTTP."""
from __future__ import annotations

import argparse

from monitor.config import Settings
from monitor.exceptions import ConfigError


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from monitor.server import serve

    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigError(f"--port must lie in 1-65535, got {args.port}")
    return serve(settings, host=args.host, port=args.port)
