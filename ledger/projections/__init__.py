"""SQL read models built from events."""
