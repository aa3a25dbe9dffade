"""Declarative policy: the policy file's schema and loader, the route table, and a pure ``decide()``.

Pure by contract: only the standard library, pydantic and PyYAML (import-linter checks it).
"""
