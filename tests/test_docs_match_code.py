"""The documents name what the code has: every route in docs/API.md, and only settings that exist."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from erapi.config import Config
from erapi.routes import ROUTES
from storage_plugins.base import available_plugins, plugin_class

REPO = Path(__file__).resolve().parent.parent
API = (REPO / "docs" / "API.md").read_text(encoding="utf-8")
SETTINGS_DOCS = ("README.md", "docs/API.md", "docs/OPERATIONS.md", "docs/SECURITY.md", "docs/PERFORMANCE.md")
# METHOD /path with at least one {parameter}, or with none: a template, not an example with real ids
ROUTE_MENTION = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_./{}-]*[A-Za-z0-9_}])")


def shape(path: str) -> str:
    """The path with every parameter alike: docs may write {id} where the route says {entityId}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def settings() -> set[str]:
    names = set()
    for section in dataclasses.fields(Config):
        default = getattr(Config(), section.name)
        if dataclasses.is_dataclass(default):
            names |= {f"{section.name}.{field.name}" for field in dataclasses.fields(default)}
    for plugin in available_plugins():
        declared = plugin_class(plugin).settings
        if declared is not None:
            names |= {f"{plugin}.{field.name}" for field in dataclasses.fields(declared)}
    return names


def test_every_route_is_described_in_the_api_document():
    described = {(method, shape(path)) for method, path in ROUTE_MENTION.findall(API)}
    missing = sorted(f"{route.method} {route.path}" for route in ROUTES
                     if (route.method, shape(route.path)) not in described)
    assert missing == []


def test_every_route_template_the_api_document_names_is_a_route():
    routes = {(route.method, shape(route.path)) for route in ROUTES}
    templates = {(method, shape(path)) for method, path in ROUTE_MENTION.findall(API) if "{" in path}
    assert sorted(templates - routes) == []


def test_every_setting_the_documents_name_exists():
    known = settings()
    sections = sorted({name.split(".")[0] for name in known})
    # `jobs.py` is a file, not the setting jobs.py
    named = re.compile(rf"`((?:{'|'.join(sections)})\.(?!(?:py|md|toml|json|sh)`)[a-z_]+)`")
    unknown = sorted({(document, name) for document in SETTINGS_DOCS
                      for name in named.findall((REPO / document).read_text(encoding="utf-8")) if name not in known})
    assert unknown == []
