"""The route table: one unknown-query-parameter rule for every route, driven by each route's OpenAPI operation."""

from __future__ import annotations

import re

import pytest

from erapi.app import create_app
from erapi.routes import ROUTES, Route
from tests.api_fixtures import entity, make_config

UNKNOWN = "notAParameter"


def refusal(route: Route, name: str) -> str:
    allowed = ", ".join(sorted(route.operation.query_names)) or "no query parameters"
    return f"Unknown query parameter {name}: this operation takes {allowed}"


def concrete(path: str) -> str:
    """The path with a value in each {parameter}."""
    return re.sub(r"\{(\w+)\}", lambda match: f"some-{match.group(1)}", path)


@pytest.fixture
async def anonymous(aiohttp_client):
    return await aiohttp_client(create_app(make_config()))


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.method} {route.path}")
async def test_every_route_refuses_a_query_parameter_its_operation_does_not_take(anonymous, route):
    """Checked first, before authentication: the same 400 on a probe, a read, a write and the docs page."""
    response = await anonymous.request(route.method, concrete(route.path), params={UNKNOWN: "1"})
    assert response.status == 400
    assert await response.json() == {"status": {"message": refusal(route, UNKNOWN), "code": "400"}}


@pytest.mark.parametrize("route", [route for route in ROUTES if route.method == "GET"],
                         ids=lambda route: route.path)
async def test_a_head_request_is_checked_like_its_get(anonymous, route):
    response = await anonymous.head(concrete(route.path), params={UNKNOWN: "1"})
    assert response.status == 400


async def test_probes_and_documentation_answer_without_query_parameters(anonymous):
    for path in ("/healthz", "/readyz", "/metrics", "/apollo/openapi.json", "/apollo/docs", "/apollo/explorer"):
        response = await anonymous.get(path)
        assert response.status == 200, path


async def test_a_misspelt_option_on_a_read_by_id_is_refused_not_ignored(api):
    """`includeSystemdata=true` used to answer 200 without sysData, as if the option had been left out."""
    await api.register("site")
    await api.entities("site", entity("ahu-1"))
    body = await api.call("GET", "/apollo/er/entities/ahu-1", 400, collection="site",
                          params={"includeSystemdata": "true"})
    route = next(route for route in ROUTES if route.path == "/apollo/er/entities/{entityId}")
    assert body["status"]["message"] == refusal(route, "includeSystemdata")
    [found] = (await api.call("GET", "/apollo/er/entities/ahu-1", 200, collection="site",
                              params={"includeSystemData": "true"}))["data"]
    assert "sysData" in found


async def test_a_catalog_read_refuses_a_filter_it_does_not_take(api):
    """Only the relationship type list filters by class; on the entity type list the same name is a 400."""
    await api.call("GET", "/apollo/schema/relationshiptypes", 200, params={"sourceEntityType": "BRICK_0_4__AHU"},
                   schema="relationship-types")
    body = await api.call("GET", "/apollo/schema/entitytypes", 400, params={"sourceEntityType": "BRICK_0_4__AHU"})
    assert body["status"]["message"] == "Unknown query parameter sourceEntityType: this operation takes no query " \
                                        "parameters"


async def test_the_status_tracker_takes_its_names_in_any_case_and_nothing_else(api):
    await api.register("site")
    written = await api.entities("site", entity("ahu-1"))
    await api.status_logs("site", {"TransactionId": written["transactionId"]})
    body = await api.status_logs("site", {"transactionId": written["transactionId"], "pageSize": "5"}, expect=400)
    assert body["status"]["message"].startswith("Unknown query parameter pageSize: this operation takes ")
