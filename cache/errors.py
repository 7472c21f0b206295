"""The cache package's exception root."""


class CacheError(Exception):
    """Anything the cache cannot do; callers treat it as a miss, never as a failed request."""


class CacheUnavailable(CacheError):
    """The shared store (Redis) cannot be reached or is too slow right now."""
