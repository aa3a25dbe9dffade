"""Validated string types shared by the policy file's sections, each with a clear message and schema."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, SecretStr, WithJsonSchema

from policies.glob import check_pattern
from policies.model import DENY_LEVEL_NAMES, PERMISSION_NAMES, ResourceSelector, SubjectRef

MAX_NAME_LENGTH = 256
_NAME = re.compile(r"[^\s:\x00-\x1f\x7f]+")


def shown(value: Any) -> str:
    """A bounded rendering of a rejected value for a problem message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_of(names: tuple[str, ...]):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in names:
            raise ValueError(f"{shown(value)} is not one of {', '.join(names)}")
        return value

    return check


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a string")
    return value


def _principal(value: str) -> str:
    return SubjectRef.parse(value).key


def _resource(value: str) -> str:
    return ResourceSelector.parse(value).text


def _name(value: str) -> str:
    if len(value) > MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a valid name (1-{MAX_NAME_LENGTH} characters, no spaces, ':' "
                         "or control characters)")
    return value


# For sections that name users or groups in their own fields (auth.oidc's allowed and admin groups).
check_name = _name


def _member(value: str) -> str:
    # A bare name is a user; service accounts are written with their kind.
    if ":" in value:
        ref = SubjectRef.parse(value)
        if ref.kind == "group":
            raise ValueError(f"{shown(value)}: groups cannot be members of groups")
        return ref.key
    return f"user:{_name(value)}"


def _creator(value: str) -> str:
    return "*" if value == "*" else _principal(value)


def _glob(value: str) -> str:
    check_pattern(value)
    return value


def _enum_schema(names: tuple[str, ...], description: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(names), "description": description})


PermissionName = Annotated[
    str, BeforeValidator(_one_of(PERMISSION_NAMES)),
    _enum_schema(PERMISSION_NAMES, "NO_PERMISSIONS < READ < EDIT < MANAGE"),
]
DenyLevelName = Annotated[
    str, BeforeValidator(_one_of(DENY_LEVEL_NAMES)),
    _enum_schema(DENY_LEVEL_NAMES, "the lowest level vetoed: READ vetoes everything, EDIT leaves READ"),
]
Mode = Annotated[
    str, BeforeValidator(_one_of(("authoritative", "additive"))),
    _enum_schema(("authoritative", "additive"), "authoritative: API grants conflicting with the file are refused"),
]
PrincipalText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_principal),
    WithJsonSchema({"type": "string", "pattern": r"^(user|group|service):[^\s:]+$",
                    "description": "user:<name>, group:<name> or service:<name>"}),
]
CreatorText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_creator),
    WithJsonSchema({"type": "string", "pattern": r"^(\*|(user|group|service):[^\s:]+)$",
                    "description": "user:<name>, group:<name>, service:<name>, or * for any signed-in principal"}),
]
ResourceText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_resource),
    WithJsonSchema({"type": "string", "pattern": r"^(experiment:[0-9]+|experiment-name:.+|model:.+|model-name:.+)$",
                    "description": "experiment:<id>, experiment-name:<glob>, model:<name> or model-name:<glob>"}),
]
NameText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_name),
    WithJsonSchema({"type": "string", "pattern": r"^[^\s:]+$", "maxLength": MAX_NAME_LENGTH}),
]
MemberText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_member),
    WithJsonSchema({"type": "string", "pattern": r"^((user|service):)?[^\s:]+$",
                    "description": "a username, or user:<name> / service:<name>"}),
]
GlobText = Annotated[
    str, BeforeValidator(_string), AfterValidator(_glob),
    WithJsonSchema({"type": "string", "pattern": r"^[^\[\]]+$",
                    "description": "a name glob: * matches any characters, ? one character"}),
]

# A secret field: its value must be written as a ${ENV_VAR} reference, never literally in the file.
# Section owners type secret settings with this; the loader finds them by their SecretStr type.
Secret = Annotated[
    SecretStr,
    WithJsonSchema({"type": "string", "pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$", "writeOnly": True,
                    "description": "a secret: only as a ${ENV_VAR} reference"}),
]
