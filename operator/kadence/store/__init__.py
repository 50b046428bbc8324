"""PostgreSQL: migrations, the row-level-security session and the repositories. All SQL lives here."""
