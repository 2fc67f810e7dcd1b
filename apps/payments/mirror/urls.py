from apps.payments.mirror import api
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("payments/mirror", api.MirrorRecordViewSet, basename="mirror-record")

urlpatterns = router.urls
