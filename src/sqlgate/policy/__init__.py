"""Statement policy: which policy applies to an identity and what it decides."""

from sqlgate.policy.engine import CompiledPolicy, CompiledRule, PolicySet
from sqlgate.policy.session import PolicyService, PolicySession

__all__ = ["CompiledPolicy", "CompiledRule", "PolicyService", "PolicySession", "PolicySet"]
