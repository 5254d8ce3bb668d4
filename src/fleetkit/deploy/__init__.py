"""Deployment generated from the fleet config: Docker Compose and systemd."""
