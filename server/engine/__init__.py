"""The headless core of identify: no aiohttp, no Textual (checked by import-linter)."""
