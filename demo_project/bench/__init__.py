"""Benchmarks against the alternatives users would pick instead (``make bench``)."""
