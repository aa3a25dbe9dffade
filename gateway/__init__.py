"""The composition root: settings, the ASGI app factory, middleware, the CLI and the web UI."""

__version__ = "0.1.0"
