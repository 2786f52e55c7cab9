"""erapi.config.load_config: defaults, the TOML file, ERAPI_* overrides, and start-up errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from erapi.app import create_app
from erapi.config import Config, load_config
from erapi.errors import ConfigurationError
from storage_plugins.base import create_storage, plugin_class
from tests.api_fixtures import TEST_SECRET, Api, entity

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOML = REPO / "config" / "default.toml"
MONGODB_TOML = REPO / "config" / "mongodb.toml"


def toml_file(tmp_path: Path, text: str, name: str = "erapi.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str, environ: dict | None = None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_config(toml_file(tmp_path, text), environ or {})
    return str(caught.value)


# ---- defaults and the file ------------------------------------------------------------------------------------------


def test_without_file_or_environment_the_built_in_defaults_apply():
    config = load_config(None, {})
    assert config == Config()
    assert config.storage == "memory"
    assert (config.server.host, config.server.port, config.server.public_url) == ("127.0.0.1", 8080, "")
    assert (config.server.max_body_bytes, config.server.max_items) == (4 * 1024 * 1024, 100)
    assert config.auth.mode == "local"
    assert config.acl.cache_ttl_seconds == 5.0
    assert config.storage_settings() == {}


def test_default_toml_loads_and_equals_the_built_in_defaults():
    assert DEFAULT_TOML.is_file(), "config/default.toml is the documented example and must exist"
    assert load_config(DEFAULT_TOML, {}) == Config()


def test_default_toml_names_every_key_of_every_section():
    import tomllib

    raw = tomllib.loads(DEFAULT_TOML.read_text(encoding="utf-8"))
    for field in dataclasses.fields(Config):
        default = getattr(Config(), field.name)
        if dataclasses.is_dataclass(default):
            assert set(raw[field.name]) == {f.name for f in dataclasses.fields(default)}, field.name
        elif field.name == "plugins":  # each storage plugin's own table
            for plugin in ("mongodb",):
                assert set(raw[plugin]) == {f.name for f in dataclasses.fields(plugin_class(plugin).settings)}, plugin
        else:
            assert field.name in raw


def test_file_values_are_read(tmp_path):
    path = toml_file(tmp_path, """
storage = "mongodb"
[server]
port = 9000
public_url = "https://er.example.com"
max_items = 50
[acl]
cache_ttl_seconds = 0.5
destination_access = "write"
[mongodb]
uri = "mongodb://db.example.com:27017"
journal = false
""")
    config = load_config(path, {})
    assert config.storage == "mongodb"
    assert (config.server.port, config.server.public_url, config.server.max_items) == (
        9000, "https://er.example.com", 50)
    assert config.server.host == "127.0.0.1"  # keys not given keep their defaults
    assert (config.acl.cache_ttl_seconds, config.acl.destination_access) == (0.5, "write")
    assert config.storage_settings()["uri"] == "mongodb://db.example.com:27017"
    assert config.storage_settings()["journal"] is False


def test_an_integer_is_accepted_where_a_float_is_expected(tmp_path):
    assert load_config(toml_file(tmp_path, "[acl]\ncache_ttl_seconds = 2\n"), {}).acl.cache_ttl_seconds == 2.0


def test_erapi_config_selects_the_file_and_an_explicit_path_wins(tmp_path):
    from_environment = toml_file(tmp_path, "[server]\nport = 9001\n", "env.toml")
    explicit = toml_file(tmp_path, "[server]\nport = 9002\n", "explicit.toml")
    assert load_config(None, {"ERAPI_CONFIG": str(from_environment)}).server.port == 9001
    assert load_config(explicit, {"ERAPI_CONFIG": str(from_environment)}).server.port == 9002


def test_a_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read config file .*absent.toml"):
        load_config(tmp_path / "absent.toml", {})


def test_a_file_that_is_not_toml_is_a_configuration_error(tmp_path):
    assert "is not valid TOML" in refused(tmp_path, "[server\nport = 1\n")


# ---- environment overrides ------------------------------------------------------------------------------------------

SECRET = "s" * 40


@pytest.mark.parametrize(
    "variable, value, read",
    [
        ("ERAPI_STORAGE", "mongodb", lambda c: c.storage),
        ("ERAPI_MONGODB_URI", "mongodb://user:pw@db:27017/?replicaSet=rs0", lambda c: c.plugins.get("mongodb", {}).get("uri")),
        ("ERAPI_AUTH_SECRET", SECRET, lambda c: c.auth.secret),
        ("ERAPI_PUBLIC_URL", "https://er.example.com/base", lambda c: c.server.public_url),
        ("ERAPI_LOG_LEVEL", "DEBUG", lambda c: c.log.level),
        ("ERAPI_METRICS_TOKEN", "scrape-" + "s" * 20, lambda c: c.metrics.token),
        ("ERAPI_WEBHOOKS_ALLOWED_TARGETS", "hooks.example.com", lambda c: ",".join(c.webhooks.allowed_targets)),
    ],
)
def test_every_environment_override_applies_and_beats_the_file(tmp_path, variable, value, read):
    assert read(load_config(None, {variable: value})) == value
    path = toml_file(tmp_path, f"""
storage = "memory"
[server]
public_url = "https://from-file.example.com"
[auth]
secret = "{'f' * 40}"
[log]
level = "ERROR"
[mongodb]
uri = "mongodb://from-file:27017"
""")
    assert read(load_config(path, {variable: value})) == value
    assert read(load_config(path, {})) != value


def test_mongodb_overrides_reach_the_storage_settings():
    config = load_config(None, {"ERAPI_STORAGE": "mongodb", "ERAPI_MONGODB_URI": "mongodb://db:1234"})
    assert config.storage_settings()["uri"] == "mongodb://db:1234"


def test_an_empty_environment_variable_is_ignored(tmp_path):
    path = toml_file(tmp_path, '[server]\npublic_url = "https://from-file.example.com"\n')
    assert load_config(path, {"ERAPI_PUBLIC_URL": ""}).server.public_url == "https://from-file.example.com"


def test_a_short_secret_from_the_environment_is_refused():
    with pytest.raises(ConfigurationError, match="auth.secret"):
        load_config(None, {"ERAPI_AUTH_SECRET": "short"})


def test_a_bad_choice_from_the_environment_names_the_key():
    with pytest.raises(ConfigurationError, match=r"config key log.level must be one of"):
        load_config(None, {"ERAPI_LOG_LEVEL": "LOUD"})


# ---- errors that name the key --------------------------------------------------------------------------------------


def test_unknown_top_level_key_is_named(tmp_path):
    message = refused(tmp_path, 'storage = "memory"\nstorrage = "mongodb"\n')
    assert message.startswith("unknown config key storrage; valid keys: storage, server, auth, acl")


def test_unknown_key_in_a_section_is_named(tmp_path):
    message = refused(tmp_path, "[server]\nport = 8080\nprot = 9090\n")
    assert message.startswith("unknown config key server.prot; valid keys: host, port")


def test_unknown_section_is_named(tmp_path):
    assert refused(tmp_path, "[servers]\nport = 1\n").startswith("unknown config key servers;")


@pytest.mark.parametrize(
    "text, key",
    [
        ('[server]\nport = "eighty"\n', "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nport = 8080.5\n", "server.port"),
        ("[server]\nmax_items = 1e2\n", "server.max_items"),
        ("[server]\nhost = 127\n", "server.host"),
        ('[mongodb]\njournal = "yes"\n', "mongodb.journal"),
        ('[acl]\ncache_ttl_seconds = "soon"\n', "acl.cache_ttl_seconds"),
        ('[metrics]\nenabled = "yes"\n', "metrics.enabled"),
        ("storage = 1\n", "storage"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(tmp_path, text, key):
    assert refused(tmp_path, text).startswith(f"config key {key} must be a ")


@pytest.mark.parametrize(
    "text, key",
    [
        ('[auth]\nmode = "oauth"\n', "auth.mode"),
        ('[acl]\ndestination_access = "admin"\n', "acl.destination_access"),
        ('[log]\nlevel = "TRACE"\n', "log.level"),
        ('[mongodb]\ndialect = "ferretdb2"\n', "mongodb.dialect"),
    ],
)
def test_a_value_outside_its_choices_names_the_key(tmp_path, text, key):
    assert refused(tmp_path, text).startswith(f"config key {key} must be one of ")


@pytest.mark.parametrize(
    "text, key",
    [
        ("[server]\nport = 0\n", "server.port"),
        ("[server]\nmax_body_bytes = -1\n", "server.max_body_bytes"),
        ("[server]\nmax_items = 0\n", "server.max_items"),
        ("[auth]\ntoken_ttl_seconds = 0\n", "auth.token_ttl_seconds"),
        ("[mongodb]\ntimeout_ms = 0\n", "mongodb.timeout_ms"),
    ],
)
def test_a_non_positive_value_names_the_key(tmp_path, text, key):
    assert refused(tmp_path, text).startswith(f"config key {key} must be positive, got ")


def test_webhook_targets_are_a_list_in_the_file_and_comma_separated_in_the_environment(tmp_path):
    path = toml_file(tmp_path, '[webhooks]\nallowed_targets = ["hooks.example.com", "10.0.0.0/8", "*.example.org"]\n')
    assert load_config(path, {}).webhooks.allowed_targets == ("hooks.example.com", "10.0.0.0/8", "*.example.org")
    environ = {"ERAPI_WEBHOOKS_ALLOWED_TARGETS": " 127.0.0.1 , ::1/128 ,"}
    assert load_config(None, environ).webhooks.allowed_targets == ("127.0.0.1", "::1/128")
    assert "webhooks.allowed_targets" in refused(tmp_path, '[webhooks]\nallowed_targets = [8080]\n')


def test_a_webhook_lease_must_outlast_an_attempt_and_a_poll(tmp_path):
    message = refused(tmp_path, "[webhooks]\nlease_seconds = 20.0\ntimeout_seconds = 10.0\n")
    assert "webhooks.lease_seconds" in message
    assert load_config(toml_file(tmp_path, "[webhooks]\nlease_seconds = 30.0\n"), {}).webhooks.lease_seconds == 30.0


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host", "*.", "http://x.example.com", "-bad.example.com"])
def test_a_bad_webhook_target_names_the_key_and_the_entry(tmp_path, entry):
    message = refused(tmp_path, f'[webhooks]\nallowed_targets = ["{entry}"]\n')
    assert "webhooks.allowed_targets" in message and repr(entry) in message


def test_a_negative_acl_cache_ttl_names_the_key(tmp_path):
    assert "acl.cache_ttl_seconds" in refused(tmp_path, "[acl]\ncache_ttl_seconds = -1\n")


def test_a_metrics_token_too_short_to_be_a_secret_is_refused(tmp_path):
    message = refused(tmp_path, '[metrics]\ntoken = "guessable"\n')
    assert message == "config key metrics.token (ERAPI_METRICS_TOKEN) must be 16 to 256 characters"


def test_jwks_mode_needs_a_jwks_url(tmp_path):
    assert "auth.jwks_url" in refused(tmp_path, '[auth]\nmode = "jwks"\n')


def test_a_section_that_is_not_a_table_is_named(tmp_path):
    assert refused(tmp_path, 'server = "fast"\n') == "config section server must be a table"


def test_a_section_that_is_not_a_table_is_named_even_with_an_override_for_it(tmp_path):
    message = refused(tmp_path, 'server = "fast"\n', {"ERAPI_PUBLIC_URL": "https://er.example.com"})
    assert message == "config section server must be a table"


def test_an_unknown_storage_plugin_lists_the_valid_ones():
    config = load_config(None, {"ERAPI_STORAGE": "redis"})
    with pytest.raises(ConfigurationError, match=r"unknown storage plugin 'redis'; valid plugins: .*memory"):
        create_storage(config.storage, config.storage_settings())


# ---- ERAPI_PUBLIC_URL in a live answer ------------------------------------------------------------------------------


async def tracker_of(aiohttp_client, environ: dict) -> tuple[str, str]:
    config = load_config(None, {"ERAPI_AUTH_SECRET": TEST_SECRET, **environ})
    api = Api(await aiohttp_client(create_app(config)))
    await api.register("site")
    body = await api.entities("site", entity("ahu-1"))
    [success] = body["data"]["responses"]["success"]
    return success["tracker"], body["transactionId"]


async def test_public_url_sets_the_tracker_base_in_a_207(aiohttp_client):
    tracker, transaction = await tracker_of(aiohttp_client, {"ERAPI_PUBLIC_URL": "https://er.example.com/base/"})
    assert tracker == f"https://er.example.com/base/apollo/status/logs?entityid=ahu-1&transactionid={transaction}"


async def test_without_public_url_the_tracker_base_is_the_request_host(aiohttp_client):
    tracker, transaction = await tracker_of(aiohttp_client, {})
    assert tracker.startswith("http://127.0.0.1:")
    assert tracker.endswith(f"/apollo/status/logs?entityid=ahu-1&transactionid={transaction}")


def test_the_package_reads_the_repository_s_schemas_and_config_examples():
    # erapi/schemas and erapi/config_examples link to the top-level directories the wheel ships (setup.py)
    from erapi.packaged import package_dir

    for packaged, top in (("schemas", "schemas"), ("config_examples", "config")):
        shipped = sorted(path.relative_to(package_dir(packaged)) for path in package_dir(packaged).rglob("*.*"))
        assert shipped == sorted(path.relative_to(REPO / top) for path in (REPO / top).rglob("*.*")), packaged
        assert shipped
