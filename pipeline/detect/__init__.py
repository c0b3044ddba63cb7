"""Detectors (研判): pure state machines that turn located events and clock ticks into alerts.

No faust import anywhere in this package: `pipeline.detect_agents` wraps `DetectorHost` in
faust agents, and the benchmark, the tests and the archive replayer call it directly.
"""
