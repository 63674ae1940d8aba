"""The asyncio side: listeners and per-connection sessions wired to the sans-IO codecs."""
