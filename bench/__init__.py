"""Benchmarks (not tests): the service against the stack's ceiling; see docs/PERFORMANCE.md."""
