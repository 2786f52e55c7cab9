import logging

import structlog

pytest_plugins = ["tests.storage_fixtures", "tests.api_fixtures"]

# the service's per-item DEBUG lines would flood the captured output of every test; and tracebacks plain, not
# structlog's default rich rendering, which spent most of a test's teardown highlighting the job worker's logged
# errors after a storage outage (14 s of test_readyz_follows_the_database_down_and_up_without_a_restart)
structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    processors=[*structlog.get_config()["processors"][:-1],
                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)],
)
