"""Samples every live pod's resource counters on an interval and stores them as pod metrics."""

from distbench.collector.sampler import Collector

__all__ = ["Collector"]
