"""Lambda entry points: thin handlers, one per function."""
