import logging

import structlog

pytest_plugins = ["tests.storage_fixtures", "tests.api_fixtures"]

# the service's per-item DEBUG lines would flood the captured output of every test
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
