"""MLflow's GraphQL endpoint (``POST /graphql``), the part MLflow's web UI queries, on tracking's store."""
