"""Page tokens round-trip and refuse garbage, tampering, foreign queries and negative offsets."""

from __future__ import annotations

import base64
import json

import pytest

from tracking.errors import MlflowError
from tracking.search.page_token import _checksum, decode_page_token, encode_page_token, fingerprint


def _forge(body: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_round_trip_and_no_token_means_offset_zero():
    fp = fingerprint("filter", ["order"], {"1", "2"})
    assert decode_page_token(encode_page_token(4000, fp), fp) == 4000
    assert decode_page_token(None, fp) == 0
    assert decode_page_token("", fp) == 0


def test_fingerprint_is_stable_for_equal_sets_and_differs_for_other_queries():
    assert fingerprint(frozenset({"b", "a", "c"})) == fingerprint(frozenset({"c", "a", "b"}))
    assert fingerprint("a", 1) != fingerprint("a", 2)


BAD = [
    "!!!not base64!!!",
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    _forge({"offset": 10}),  # MLflow's own token shape is not accepted
    _forge([1, 2, 3]),
    "x" * 600,
]


@pytest.mark.parametrize("token", BAD)
def test_garbage_is_refused_with_400(token):
    with pytest.raises(MlflowError) as info:
        decode_page_token(token, fingerprint("q"))
    assert info.value.status == 400
    assert info.value.message == "Invalid page_token: it is malformed or was not issued by this server."


def test_edited_offset_is_refused():
    fp = fingerprint("q")
    body = json.loads(base64.urlsafe_b64decode(encode_page_token(10, fp) + "=="))
    body["o"] = 20
    with pytest.raises(MlflowError, match="malformed or was not issued"):
        decode_page_token(_forge(body), fp)


def test_negative_offset_is_refused_even_with_a_matching_checksum():
    fp = fingerprint("q")
    token = _forge({"v": 1, "o": -5, "f": fp, "c": _checksum(-5, fp)})
    with pytest.raises(MlflowError) as info:
        decode_page_token(token, fp)
    assert info.value.message == "Invalid page_token: offset -5 is out of range."


def test_token_from_another_query_is_refused():
    token = encode_page_token(3, fingerprint("metrics.a > 1"))
    with pytest.raises(MlflowError) as info:
        decode_page_token(token, fingerprint("metrics.a > 2"))
    assert info.value.status == 400
    assert "belongs to a different query" in info.value.message
