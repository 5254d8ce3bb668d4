"""Health and metrics: what the fleet exposes to monitoring."""
