"""SCIM 2.0 provisioning (RFC 7643, RFC 7644): the protocol's parsing rules and the accounts it manages."""
