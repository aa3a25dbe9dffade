"""MLflow's search grammar: filter strings, order_by clauses, page tokens, and their SQL translation."""
