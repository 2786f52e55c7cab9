"""erapi: an asynchronous Entity-Relationship service for Brick building metadata."""

from importlib.metadata import PackageNotFoundError, version


def installed_version() -> str:
    """The installed distribution's version; ``0+unknown`` when run from a checkout that was never installed."""
    try:
        return version("erapi")
    except PackageNotFoundError:
        return "0+unknown"
