"""Result masking: column provenance, strategies and content detectors."""

from sqlgate.masking.planner import Catalog, Relation, ResultPlanner, RowPlan
from sqlgate.masking.rules import MaskSet
from sqlgate.masking.strategies import MaskSettings, build_masker

__all__ = [
    "Catalog",
    "MaskSet",
    "MaskSettings",
    "Relation",
    "ResultPlanner",
    "RowPlan",
    "build_masker",
]
