pytest_plugins = ["tests.storage_fixtures", "tests.api_fixtures"]
