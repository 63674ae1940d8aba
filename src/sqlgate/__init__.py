"""sqlgate: a database access gateway for AI agents and humans."""

__version__ = "0.1.0"
