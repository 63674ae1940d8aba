"""Statement analysis: what a SQL statement does, for the policy engine."""

from sqlgate.sql.model import (
    CATEGORIES,
    OPERATIONS,
    Category,
    SqlParseError,
    StatementAnalysis,
)
from sqlgate.sql.postgres import RESET_SEARCH_PATH, analyze

__all__ = [
    "CATEGORIES",
    "OPERATIONS",
    "RESET_SEARCH_PATH",
    "Category",
    "SqlParseError",
    "StatementAnalysis",
    "analyze",
]
