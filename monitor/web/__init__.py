"""The analyst's workspace: server-rendered pages of `monitor serve` (stories, one story with its
matches and near misses, feeds, articles) and the forms that correct the monitor.

    add_workspace(app, svc)     # mounts /stories, /feeds, /articles, /login and /assets/workspace

Pages work without JavaScript; templates autoescape everything; nothing loads from elsewhere.
"""
from monitor.web.pages import add_workspace

__all__ = ["add_workspace"]
