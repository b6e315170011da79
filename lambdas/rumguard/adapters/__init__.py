"""Adapters: one small class per AWS resource, wrapping a boto3 client passed in."""
