"""Evaluation: metrics, and the landmark completer's evaluation on held-out speakers."""
