"""Routing rules (HUB_RULES_FILE) and silences: what users decide as data, not code."""
