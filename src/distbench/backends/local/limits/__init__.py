"""How the local backend holds a worker to its CPUs and its bandwidth."""
