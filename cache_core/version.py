"""CacheKit's version (kept in step with pyproject.toml)."""

VERSION = "0.2.0"
