from apps.payments.api import MirrorRecordViewSet
from config.api_conventions import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("payments/mirror", MirrorRecordViewSet, basename="mirror-record")

urlpatterns = router.urls
