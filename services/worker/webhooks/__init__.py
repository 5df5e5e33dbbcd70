"""Sending the webhooks state changes staged (shared/webhooks/staging.py): signed, retried, recorded."""
