"""Tables of the identity layer; Alembic targets this metadata too.

Times are epoch milliseconds (BigInteger), as in the tracking tables. Names carry an ``auth_`` prefix so
they never collide with MLflow's tables in the shared database.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "auth_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False, unique=True),
    # "user" (a human, may have a password) or "service" (token-only, never a password).
    Column("kind", String(16), nullable=False, default="user"),
    Column("password_hash", String(255), nullable=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Bumped on every change that must end cached credentials and sessions (password, admin flag,
    # disable, group membership): every process compares it with the value it cached.
    Column("generation", Integer, nullable=False, default=1),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Who manages the account: "local" (mlgate's own API and CLI), "oidc" (created by single sign-on) or
    # "scim" (provisioned by an identity provider, which manages only these; revision 0007) or "kubernetes"
    # (a service account created by the first token of a pod that auth.kubernetes.mappings maps to it).
    Column("source", String(16), nullable=False, default="local", server_default="local"),
    # SCIM (RFC 7643 section 3.1): the provider's own identifier, and the attributes mlgate only keeps for it
    # (displayName, name, emails) as JSON.
    Column("external_id", String(255), nullable=True),
    Column("profile", Text, nullable=True),
    # Account ids are never reused: caches, rate-limit keys and audit trails name accounts by id. SQLite
    # otherwise hands out max(id) + 1, the id of a just-deleted newest account (revision 0005);
    # PostgreSQL's sequence never goes back.
    sqlite_autoincrement=True,
)

groups = Table(
    "auth_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # Set for groups SCIM created (the only ones it manages): a random id never reused, and the provider's id.
    Column("scim_id", String(36), nullable=True),
    Column("external_id", String(255), nullable=True),
    Index("ix_auth_groups_scim_id", "scim_id", unique=True),
)

group_members = Table(
    "auth_group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("auth_groups.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("group_id", "user_id"),
    Index("ix_auth_group_members_user", "user_id"),
)

access_tokens = Table(
    "auth_access_tokens",
    metadata,
    # The public id (shown in listings, used to revoke); never the secret.
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    # SHA-256 hex of the whole token: a 256-bit random secret needs no slow hash.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("created_by", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    # A scoped token's limits as JSON ({"scope": [...], "cidrs": [...]}, policies.token_scope); NULL: unscoped.
    Column("scope", Text, nullable=True),
    Index("ix_auth_access_tokens_user", "user_id"),
)

sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    # The user's generation when the session began: a later bump (password change, disable,
    # "log out everywhere") ends the session on every process.
    Column("generation", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_auth_sessions_user", "user_id"),
)

# Resource grants made through the API; the authorization layer builds its policy grants from these rows.
grants = Table(
    "auth_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # "user:<name>" or "group:<name>".
    Column("subject", String(300), nullable=False),
    # experiment, registered_model, ...
    Column("resource_kind", String(64), nullable=False),
    # An exact resource id, or a name pattern (glob) when resource_id is NULL.
    Column("resource_id", String(255), nullable=True),
    Column("name_pattern", String(500), nullable=True),
    Column("permission", String(32), nullable=False),
    # "api" for grants made through the REST API, "owner" for automatic creator grants.
    Column("source", String(32), nullable=False, default="api"),
    Column("created_by", String(255), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # Epoch ms from which the grant no longer applies (decide() compares it with each request's clock).
    Column("expires_at", BigInteger, nullable=True),
    # Emergency access given by an administrator; always expires, and every use is audited.
    Column("break_glass", Boolean, nullable=False, server_default=false()),
    Index("ix_auth_grants_subject", "subject"),
    Index("ix_auth_grants_resource", "resource_kind", "resource_id"),
)

# Append-only: the store only inserts; nothing in mlgate updates or deletes these rows.
audit_log = Table(
    "auth_audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(255), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("client_address", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    # SHA-256 over the previous record's hash and this record's fields (auth.audit_chain): editing, deleting
    # or reordering a record breaks the chain from there on. NULL for records written before revision 0008.
    Column("hash", String(64), nullable=True),
    # The request's workspace (NULL: not a request in one, or written before migration 0009).
    Column("workspace", String(63), nullable=True),
    Index("ix_auth_audit_log_at", "at"),
    Index("ix_auth_audit_log_workspace", "workspace", "at"),
)

# The head of the audit hash chain: one row, updated in the transaction of every append, which also
# serialises appenders across processes (its row lock on PostgreSQL, the write lock on SQLite). It lets
# `mlgate audit verify` notice records deleted from the end of the log.
audit_chain = Table(
    "auth_audit_chain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    # Where the chain starts after retention pruned older records (auth.audit_chain.prune): the last pruned
    # record's id, hash and chain position. A signed checkpoint of exactly these values vouches for them.
    Column("anchor_id", Integer, nullable=False, server_default="0"),
    Column("anchor_hash", String(64), nullable=False, server_default="0" * 64),
    Column("anchor_count", BigInteger, nullable=False, server_default="0"),
)

# Signed checkpoints of the chain's head (auth.audit_checkpoints): Ed25519 signatures by a key the database
# does not hold, so a database writer can delete them but never forge one. Also written off-host (the
# checkpoint file, the SIEM export), where deleting them is out of the database writer's reach.
audit_checkpoints = Table(
    "auth_audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, nullable=False),  # the id of the last record covered
    Column("count", BigInteger, nullable=False),  # chained records from the genesis up to seq
    Column("hash", String(64), nullable=False),  # that record's chain hash
    Column("at", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # periodic | every | manual | anchor
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False),  # Ed25519, base64url without padding
    Index("ix_auth_audit_checkpoints_seq", "seq"),
)

# Single sign-on: which provider account (issuer-scoped subject) is which mlgate user. Matching on the
# immutable `sub`, never on a user name or e-mail the IdP lets users change (OIDC Core section 5.7).
oidc_identities = Table(
    "auth_oidc_identities",
    metadata,
    Column("provider", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("user_id", Integer, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("provider", "subject"),
    Index("ix_auth_oidc_identities_user", "user_id"),
)

# Sessions started through a provider: where to log out, and when the provider must vouch again.
oidc_sessions = Table(
    "auth_oidc_sessions",
    metadata,
    Column("session_id", String(64), ForeignKey("auth_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("revalidate_at", BigInteger, nullable=False),
    # The provider's refresh and ID tokens, sealed by auth.token_vault (never in a cookie, never plain).
    Column("refresh_token", Text, nullable=True),
    Column("id_token", Text, nullable=True),
    # A process renewing the session with the provider holds it until then (one refresh at a time).
    Column("refreshing_until", BigInteger, nullable=True),
    # Why re-validation last failed, shown on the sign-in page the browser is sent to.
    Column("notice", String(255), nullable=True),
)
