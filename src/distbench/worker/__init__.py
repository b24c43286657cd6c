"""What runs inside each worker: the environment contract, the process group, metric reporting.

``python -m distbench.worker`` is a worker; the same code runs under plain ``torchrun``. A
training script of one's own uses ``init()`` and its ``Session`` (see ``session``).
"""

from distbench.worker.env import WorkerEnv, WorkerEnvError, read_env
from distbench.worker.reporter import BatchReporter, NullReporter, Reporter
from distbench.worker.session import Session, init
from distbench.worker.timing import Timers

__all__ = [
    "BatchReporter",
    "NullReporter",
    "Reporter",
    "Session",
    "Timers",
    "WorkerEnv",
    "WorkerEnvError",
    "init",
    "read_env",
]
