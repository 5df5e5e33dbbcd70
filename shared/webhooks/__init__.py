"""Signed webhooks (Standard Webhooks): where a job's state changes are announced, and how."""
