"""What the project has stored: the SQLite store (every SQL statement lives here), the
USearch wrapper, the reference vectors that keep the two in step, and media files."""
