"""The local backend: each worker is a process on this machine.

``backend`` is the ``ClusterBackend``; ``launch`` builds a worker's command and environment,
``state`` keeps what must survive a server restart, ``warm_launcher`` forks workers from a
process that has torch imported, ``relay`` carries a worker's traffic into its network
namespace, and ``limits`` holds each worker to its CPUs and bandwidth.
"""
