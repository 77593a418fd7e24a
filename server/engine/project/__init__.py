"""The project: its YAML file and schema, label naming, reference scanning, ``init``, and
the one-writer lock. The bottom floor: it imports nothing else of the engine but
``errors``."""
