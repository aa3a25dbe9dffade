"""Personal access token format, hashing and query-string detection."""

import hashlib

from auth.tokens import looks_like_token, new_token, query_carries_token, token_hash


def test_tokens_are_prefixed_256_bit_and_distinct():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert token.startswith("mlg_")
        assert looks_like_token(token)
        assert len(token) == 4 + 43  # 32 bytes, URL-safe base64 without padding


def test_stored_form_is_sha256():
    token = new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in token_hash(token)


def test_shape_check_rejects_near_misses():
    token = new_token()
    assert not looks_like_token(token[:-1])
    assert not looks_like_token("mlg-" + token[4:])
    assert not looks_like_token(token + "x")


def test_query_string_credentials_are_detected():
    token = new_token()
    assert query_carries_token([("access_token", "x")])
    assert query_carries_token([("filter", "a"), ("q", token)])
    assert not query_carries_token([("run_id", "abc"), ("path", "mlg_model.pkl")])
