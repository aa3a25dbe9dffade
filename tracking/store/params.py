"""Run params: immutable once logged (the same value again is accepted, a different one refused)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from tracking.db.tables import params
from tracking.errors import invalid_parameter
from tracking.store.upsert import insert_ignoring_conflicts

CHUNK = 500
_EXISTING = select(params.c.key, params.c.value).where(params.c.run_uuid == bindparam("run_id"),
                                                       params.c.key.in_(bindparam("keys", expanding=True)))


def log_params(conn: Connection, run_id: str, values: dict[str, str]) -> None:
    """Store new params of a run; 400 (and nothing written) if any key already holds another value."""
    if not values:
        return
    keys = list(values)
    existing: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        rows = conn.execute(_EXISTING, {"run_id": run_id, "keys": keys[start:start + CHUNK]})
        existing.update({r.key: r.value for r in rows})
    changed = [{"key": k, "old_value": existing[k], "new_value": v}
               for k, v in values.items() if k in existing and existing[k] != v]
    if changed:
        if len(changed) == 1:
            c = changed[0]
            raise invalid_parameter(
                f"Changing param values is not allowed. Param with key='{c['key']}' was already logged with "
                f"value='{c['old_value']}' for run ID='{run_id}'. Attempted logging new value '{c['new_value']}'.")
        raise invalid_parameter(
            f"Changing param values is not allowed. Params were already logged='{changed}' for run ID='{run_id}'.")
    # Sorted, so concurrent writers take row locks in one order.
    new = {k: v for k, v in sorted(values.items()) if k not in existing}
    insert_ignoring_conflicts(conn, params, [{"run_uuid": run_id, "key": k, "value": v} for k, v in new.items()],
                              ["run_uuid", "key"])
    if new:
        # A concurrent request may have stored one of these keys first; its value must then agree.
        stored = conn.execute(_EXISTING, {"run_id": run_id, "keys": list(new)[:CHUNK]}).all()
        for row in stored:
            if row.value != new[row.key]:
                raise invalid_parameter(
                    f"Changing param values is not allowed. Param with key='{row.key}' was already logged with "
                    f"value='{row.value}' for run ID='{run_id}'. Attempted logging new value '{new[row.key]}'.")
