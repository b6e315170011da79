"""RUM Guard: per-monitor metrics, abuse detection and blocking for Amazon CloudWatch RUM app monitors."""

__version__ = "0.1.0"
