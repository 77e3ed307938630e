"""Benchmarks. Each prints its figure beside a floor measured in the same run (speed is never asserted)."""
