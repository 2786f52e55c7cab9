import pytest

from storage_plugins.base import KINDS


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    """Each kind of versioned document in turn."""
    return request.param
