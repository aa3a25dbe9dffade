"""Routes the gateway itself serves: users, tokens, login."""
