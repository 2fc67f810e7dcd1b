import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/auth/register/", "/api/v1/products/", "/api/v1/prices/{id}/", "/api/v1/users/me/"} <= set(
        schema["paths"]
    )
    assert "jwtAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_is_served_without_internet(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr.net" not in page


def _schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _throttled_operations() -> set[tuple[str, str]]:
    """(path, method) of every API operation a rate limit guards, read off the views as routed: the view's
    own throttles or its action's, and the order read, whose `?sync=1` asks Stripe and spends the budget."""
    from drf_spectacular.generators import EndpointEnumerator

    found = {("/api/v1/orders/{id}/", "get")}
    for path, _, method, callback in EndpointEnumerator().get_api_endpoints():
        view = callback.cls
        action = (getattr(callback, "actions", None) or {}).get(method.lower())
        handler = getattr(view, action, None) if action else None
        throttles = (getattr(handler, "kwargs", {}) or {}).get("throttle_classes", view.throttle_classes)
        if throttles:
            found.add((path.replace("{pk}", "{id}"), method.lower()))
    return found


def test_every_throttled_operation_declares_429(client):
    paths = _schema(client)["paths"]
    throttled = _throttled_operations()

    assert {("/api/v1/auth/token/", "post"), ("/api/v1/checkout/sessions/", "post")} <= throttled
    undeclared = sorted((path, method) for path, method in throttled if "429" not in paths[path][method]["responses"])
    assert undeclared == []


def test_search_is_documented_exactly_where_it_searches(client):
    from drf_spectacular.generators import EndpointEnumerator

    paths = _schema(client)["paths"]
    lists = {
        path: callback.cls
        for path, _, method, callback in EndpointEnumerator().get_api_endpoints()
        if (getattr(callback, "actions", None) or {}).get(method.lower()) == "list"
    }

    documented = {
        path
        for path, operations in paths.items()
        if any(parameter["name"] == "search" for parameter in operations.get("get", {}).get("parameters", []))
    }
    assert {"/api/v1/orders/", "/api/v1/payments/", "/api/v1/subscriptions/"} <= documented
    assert documented == {path for path, view in lists.items() if view.search_fields}


def test_a_list_without_search_fields_does_not_offer_search():
    from rest_framework import generics

    from config.api_conventions import StrictSearchFilter

    class Unsearchable(generics.ListAPIView):
        search_fields = ()

    class Searchable(generics.ListAPIView):
        search_fields = ("name",)

    assert StrictSearchFilter().get_schema_operation_parameters(Unsearchable()) == []
    assert [p["name"] for p in StrictSearchFilter().get_schema_operation_parameters(Searchable())] == ["search"]
