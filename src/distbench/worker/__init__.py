"""What runs inside each worker: the environment contract, the process group, metric reporting.

``python -m distbench.worker`` is a worker; the same code runs under plain ``torchrun``.
"""

from distbench.worker.env import WorkerEnv, WorkerEnvError, read_env
from distbench.worker.reporter import BatchReporter, NullReporter, Reporter
from distbench.worker.timing import Timers

__all__ = [
    "BatchReporter",
    "NullReporter",
    "Reporter",
    "Timers",
    "WorkerEnv",
    "WorkerEnvError",
    "read_env",
]
