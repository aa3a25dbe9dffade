"""Refuse secrets written literally in the policy file.

A field is secret when its type is pydantic's ``SecretStr`` (section owners use
``policies.file.fields.Secret``). Its raw value, before substitution, must be exactly one
``${ENV_VAR}`` reference, so the file itself can be committed and reviewed without leaking.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr

from policies.file.environment import WHOLE_REFERENCE
from policies.file.problems import format_path


def literal_secret_problems(model: type[BaseModel], raw: Any, path: tuple = ()) -> list[str]:
    """One problem per secret field of ``model`` whose raw value is not a ``${ENV_VAR}`` reference."""
    if not isinstance(raw, dict):
        return []
    problems = []
    for name, info in model.model_fields.items():
        if name in raw:
            problems.extend(_check(info.annotation, raw[name], (*path, name)))
    return problems


def _check(annotation: Any, raw: Any, path: tuple) -> list[str]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _check(args[0], raw, path)
    if origin in (typing.Union, types.UnionType):
        if raw is None:
            return []
        return [p for arg in args if arg is not type(None) for p in _check(arg, raw, path)][:1]
    if annotation is SecretStr:
        if isinstance(raw, str) and WHOLE_REFERENCE.fullmatch(raw):
            return []
        return [f"{format_path(path)}: a secret must be given as a ${{ENV_VAR}} reference, not written in the file"]
    if origin in (list, tuple, set, frozenset) and isinstance(raw, list):
        return [p for i, item in enumerate(raw) for p in _check(args[0], item, (*path, i))]
    if origin is dict and isinstance(raw, dict) and len(args) == 2:
        return [p for key, item in raw.items() for p in _check(args[1], item, (*path, key))]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return literal_secret_problems(annotation, raw, path)
    return []
