"""The web client's files at `/` (gateway/web.py), and that mounting them changed no API answer."""

from __future__ import annotations


async def test_the_client_is_served_at_the_root(http):
    page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/app.js">' in page.text
    script = await http.get("/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")


async def test_api_routes_and_the_docs_keep_precedence(http):
    for path in ("/docs", "/openapi.json", "/healthz", "/metrics"):
        assert (await http.get(path)).status_code == 200, path
    assert (await http.get("/v1/feed")).status_code == 401


async def test_a_wrong_method_on_an_api_route_is_still_a_405(http):
    response = await http.put("/healthz")
    assert response.status_code == 405 and response.headers["allow"] == "GET"


async def test_unknown_paths_and_other_methods_are_the_gateways_json_404(http):
    for method, path in [
        ("GET", "/v1/nothing-here"),
        ("GET", "/v1"),
        ("POST", "/v1/nothing-here"),
        ("POST", "/"),
        ("DELETE", "/app.js"),
        ("GET", "/no-such-file.js"),
        ("GET", "/../pyproject.toml"),
    ]:
        response = await http.request(method, path)
        assert response.status_code == 404, (method, path)
        error = response.json()["error"]
        assert error["code"] == "NOT_FOUND"
        assert error["details"][0]["reason"] == "ROUTE_NOT_FOUND"
