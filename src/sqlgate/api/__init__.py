"""The admin HTTP listener."""
