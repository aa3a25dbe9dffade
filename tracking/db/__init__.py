"""Database schema and engine construction for the tracking core."""
