"""The HTTP API, live stream and dashboard (issue: command center)."""
