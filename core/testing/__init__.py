"""The conformance kit for connector authors (a pytest plugin)."""
