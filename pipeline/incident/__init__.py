"""Incidents (事件处置): lifecycle, escalation policy and SLA arithmetic, pure (no faust)."""
