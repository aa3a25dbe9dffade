"""The tokenizer shared by filter strings and order_by clauses.

MLflow parses both with sqlparse; mlgate uses a small hand-written lexer so every accepted input is
known and every rejected one gets a message naming the offending token. Identifiers are split into
an optional prefix (``metrics``) and a key at the first dot, as MLflow does, so ``tags.mlflow.runName``
is the tag ``mlflow.runName``; a key with spaces or other characters is quoted with backquotes or
double quotes (``metrics.`my key```).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracking.errors import MlflowError, invalid_parameter

# Bare words are keywords only when they stand alone (no dot): ``tags.and`` is a tag named "and".
KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "ASC", "DESC"})
OPERATORS = ("!=", "<=", ">=", "<>", "==", "=", "<", ">")
# Characters a bare (unquoted) identifier segment may contain besides letters and digits.
_BARE_EXTRA = "_-/:"
# ASCII only: str.isdigit() also accepts superscripts and other scripts' digits.
_DIGITS = frozenset("0123456789")
MAX_FILTER_LENGTH = 50_000


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is ident, string, number, op, keyword, lparen, rparen or comma."""

    kind: str
    text: str  # the source text, for error messages
    pos: int
    value: object = None  # ident: (prefix | None, key); string: str; number: int | float; keyword: upper


def _error(detail: str) -> MlflowError:
    return invalid_parameter(detail)


def shown(text: str, limit: int = 60) -> str:
    """A token or fragment quoted for an error message, shortened when long."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _is_bare(ch: str) -> bool:
    return ch.isalnum() or ch in _BARE_EXTRA


def _read_quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Read a quoted run starting at ``start`` (the quote); a doubled quote stands for one quote."""
    quote = text[start]
    out = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _error(f"Invalid {what}: unterminated {quote} quote starting at {shown(text[start:])}.")


def _read_number(text: str, i: int) -> tuple[int | float, int] | None:
    """A numeric literal at ``i`` (optionally signed), or None when there is none."""
    j = i
    if j < len(text) and text[j] in "+-":
        j += 1
    digits_start = j
    while j < len(text) and text[j] in _DIGITS:
        j += 1
    is_float = False
    if j < len(text) and text[j] == ".":
        is_float = True
        j += 1
        while j < len(text) and text[j] in _DIGITS:
            j += 1
    mantissa = text[digits_start:j].replace(".", "")
    if not mantissa:
        return None
    if j < len(text) and text[j] in "eE":
        k = j + 1
        if k < len(text) and text[k] in "+-":
            k += 1
        if k < len(text) and text[k] in _DIGITS:
            while k < len(text) and text[k] in _DIGITS:
                k += 1
            is_float = True
            j = k
    if j < len(text) and (_is_bare(text[j]) or text[j] in "'\"`."):
        return None  # e.g. 1abc: not a number; the caller reports the whole word
    literal = text[i:j]
    return (float(literal) if is_float else int(literal)), j


def _read_ident(text: str, i: int, what: str) -> tuple[Token, int]:
    start = i
    if text[i] in "`\"":
        head, i = _read_quoted(text, i, what)
        head_quoted = True
    else:
        j = i
        while j < len(text) and _is_bare(text[j]):
            j += 1
        head, i = text[start:j], j
        head_quoted = False
    if i < len(text) and text[i] == ".":
        i += 1
        if i < len(text) and text[i] in "`\"'":
            key, i = _read_quoted(text, i, what)
        else:
            j = i
            while j < len(text) and (_is_bare(text[j]) or text[j] == "."):
                j += 1
            key, i = text[i:j], j
            if not key:
                raise _error(f"Invalid {what}: missing key after {shown(text[start:i])}.")
        return Token("ident", text[start:i], start, (head, key)), i
    if not head_quoted and head.upper() in KEYWORDS:
        return Token("keyword", head, start, head.upper()), i
    return Token("ident", text[start:i], start, (None, head)), i


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split ``text`` into tokens; ``what`` names the input in error messages."""
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(f"Invalid {what}: longer than {MAX_FILTER_LENGTH} characters.")
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; no stored key or value contains one.
        raise _error(f"Invalid {what}: it contains a NUL character.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from a JSON \ud800 escape: no database can store or compare it.
        raise _error(f"Invalid {what}: it is not valid Unicode text.") from None
    tokens: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            tokens.append(Token("lparen", ch, i))
            i += 1
        elif ch == ")":
            tokens.append(Token("rparen", ch, i))
            i += 1
        elif ch == ",":
            tokens.append(Token("comma", ch, i))
            i += 1
        elif ch == "'":
            value, end = _read_quoted(text, i, what)
            tokens.append(Token("string", text[i:end], i, value))
            i = end
        elif ch == '"' or ch == "`":
            # A double-quoted word is a string value or a quoted identifier; the parser decides by
            # position. A backquoted word is always an identifier.
            tok, end = _read_ident(text, i, what)
            if (ch == '"' and tok.value[0] is not None) or ch == "`":
                tokens.append(tok)
            else:
                tokens.append(Token("string", text[i:end], i, tok.value[1]))
            i = end
        elif ch in "<>=!":
            op = next((o for o in OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise _error(f"Invalid {what}: unexpected character {ch!r} at position {i}.")
            tokens.append(Token("op", op, i, op))
            i += len(op)
        elif ch in _DIGITS or (ch in "+-." and i + 1 < n and (text[i + 1] in _DIGITS or text[i + 1] == ".")):
            try:
                number = _read_number(text, i)
            except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
                raise _error(f"Invalid {what}: the number at position {i} is out of the 64-bit integer range.") \
                    from None
            if number is None:
                j = i + 1
                while j < n and (_is_bare(text[j]) or text[j] == "."):
                    j += 1
                raise _error(f"Invalid {what}: {shown(text[i:j])} is neither a number nor an identifier.")
            value, end = number
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise _error(f"Invalid {what}: the number {shown(text[i:end])} is out of the 64-bit integer range.")
            tokens.append(Token("number", text[i:end], i, value))
            i = end
        elif ch.isalnum() or ch == "_":
            tok, i = _read_ident(text, i, what)
            tokens.append(tok)
        else:
            raise _error(f"Invalid {what}: unexpected character {ch!r} at position {i}.")
    return tokens
