"""The router package's exception root."""


class RouterError(Exception):
    """The router is misconfigured or cannot score a request."""
