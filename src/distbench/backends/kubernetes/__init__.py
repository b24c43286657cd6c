"""The Kubernetes backend: each run is an Indexed Job and a headless Service.

``backend`` is the ``ClusterBackend``; ``manifests`` builds the objects, ``status`` reads pods
back, ``client`` wraps the kubernetes package (an optional extra, imported only here).
"""
