from apps.catalog.api import PriceViewSet, ProductViewSet
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("products", ProductViewSet, basename="product")
router.register("prices", PriceViewSet, basename="price")

urlpatterns = router.urls
