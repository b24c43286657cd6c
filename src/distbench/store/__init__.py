"""Storage: SQLAlchemy Core tables and the keyword-only functions that read and write them."""
