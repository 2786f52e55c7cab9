"""Liveness and readiness probes: no authentication, the contract's envelope (storage outages are tested elsewhere)."""

from __future__ import annotations


async def probe(api, path: str, headers: dict | None = None) -> tuple[int, dict]:
    response = await api.client.get(path, headers=headers or {})
    return response.status, await response.json()


async def test_healthz_is_200_without_a_token(api):
    assert await probe(api, "/healthz") == (200, {"status": {"message": "alive", "code": "200"}})


async def test_readyz_is_200_without_a_token_when_storage_answers(api):
    assert await probe(api, "/readyz") == (200, {"status": {"message": "ready", "code": "200"}})


async def test_probes_ignore_a_bad_token(api):
    headers = {"Authorization": "Bearer garbage"}
    assert (await probe(api, "/healthz", headers))[0] == 200
    assert (await probe(api, "/readyz", headers))[0] == 200


async def test_probes_answer_get_only(api):
    response = await api.client.post("/healthz")
    assert response.status == 405
    assert (await response.json())["status"]["code"] == "405"
