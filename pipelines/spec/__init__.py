"""Reading and checking pipeline files."""
