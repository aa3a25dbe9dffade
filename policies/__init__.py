"""Declarative policy: the policy file's schema and loader, the route table, and a pure ``decide()``.

Pure by contract: only the standard library, pydantic and PyYAML (import-linter checks it).

- ``policies.model``: Permission, Subject, Resource, Grant, Decision, ScopeSpec (frozen values)
- ``policies.file``: the policy file (``load_policy_file``, ``PolicyFile``, ``PolicyFileError``)
- ``policies.routes``: operation id -> Requirement (``requirement_for``); ``policies.locate`` reads its fields
- ``policies.decide``: ``compile_policy``, ``decide``, ``visible``; its docstring states the precedence
- ``policies.testing``: YAML decision cases (``run_cases``, ``run_case_file``)
"""
