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
