"""Operations: probes (/health, /ready), request ids and access logs, Prometheus metrics, scale-out checks.

Each concern is one module; :func:`gateway.ops.install.install_operations` wires them into an app.
"""
