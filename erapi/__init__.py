"""erapi: an asynchronous Entity-Relationship service for Brick building metadata."""


def installed_version() -> str:
    """The installed distribution's version; ``0+unknown`` when run from a checkout that was never installed."""
    # imported here: importlib.metadata is 0.015 s of every erapi command's start (erapi import's, say)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("erapi")
    except PackageNotFoundError:
        return "0+unknown"
