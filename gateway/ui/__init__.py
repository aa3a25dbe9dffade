"""The server-rendered web UI: pages over the same tracking queries and authorization as the API."""
