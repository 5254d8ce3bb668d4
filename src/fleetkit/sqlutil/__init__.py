"""SQL plumbing shared by every adapter that keeps data in a database (store, sandbox book)."""
