"""Storage functions of the tracking core: SQLAlchemy Core over the tables of ``tracking.db``."""
