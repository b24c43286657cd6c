"""The only code that changes a run's state."""

from distbench.orchestrator.core import Orchestrator

__all__ = ["Orchestrator"]
