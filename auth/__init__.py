"""Identities: principals, passwords, tokens, sessions, SSO and lockout."""
