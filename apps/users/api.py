from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

from apps.users.serializers import (
    LogoutInputSerializer,
    MeOutputSerializer,
    MeUpdateInputSerializer,
    RegisterInputSerializer,
    UserOutputSerializer,
    VerifyEmailInputSerializer,
    VerifyEmailOutputSerializer,
)
from apps.users.services import (
    user_create,
    user_delete,
    user_request_email_verification,
    user_update,
    user_verify_email,
)
from apps.users.throttles import (
    LOGIN_THROTTLES,
    AuthRateThrottle,
    RefreshRateThrottle,
    RegisterRateThrottle,
    VerificationMailThrottle,
    login_refused_for,
    login_succeeded,
)


class RegisterApi(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_classes = (RegisterRateThrottle,)

    @extend_schema(request=RegisterInputSerializer, responses={201: UserOutputSerializer}, tags=["auth"])
    def post(self, request):
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_create(**serializer.validated_data)
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["auth"])
class TokenObtainApi(TokenObtainPairView):
    throttle_classes = LOGIN_THROTTLES

    def check_throttles(self, request):
        # DRF asks every throttle (and counts the attempt in each); here the first refusal ends it.
        wait = login_refused_for(request)
        if wait is not None:
            self.throttled(request, wait)

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        if response.status_code == status.HTTP_200_OK:
            login_succeeded(request, email=request.data["email"])
        return response


@extend_schema(tags=["auth"])
class TokenRefreshApi(TokenRefreshView):
    throttle_classes = (RefreshRateThrottle,)


class LogoutApi(TokenBlacklistView):
    """Blacklist a refresh token; the access token expires on its own within minutes."""

    throttle_classes = (AuthRateThrottle,)

    @extend_schema(request=LogoutInputSerializer, responses={204: None}, tags=["auth"])
    def post(self, request, *args, **kwargs):
        super().post(request, *args, **kwargs)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyEmailApi(APIView):
    """The link in the welcome (or verification) mail: proves the user owns their address."""

    permission_classes = (AllowAny,)
    authentication_classes = ()
    throttle_classes = (AuthRateThrottle,)

    @extend_schema(
        parameters=[OpenApiParameter("token", str, required=True)],
        responses=VerifyEmailOutputSerializer,
        tags=["auth"],
    )
    def get(self, request):
        return self._verify(request.query_params)

    @extend_schema(request=VerifyEmailInputSerializer, responses=VerifyEmailOutputSerializer, tags=["auth"])
    def post(self, request):
        return self._verify(request.data)

    def _verify(self, data):
        serializer = VerifyEmailInputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        user = user_verify_email(token=serializer.validated_data["token"])
        return Response(VerifyEmailOutputSerializer(user).data)


class VerifyEmailResendApi(APIView):
    permission_classes = (IsAuthenticated,)
    throttle_classes = (VerificationMailThrottle,)

    @extend_schema(
        request=None, responses={200: VerifyEmailOutputSerializer, 202: VerifyEmailOutputSerializer}, tags=["auth"]
    )
    def post(self, request):
        """Mail the verification link again (nothing is sent when the address is verified already)."""
        sent = user_request_email_verification(user=request.user)
        code = status.HTTP_202_ACCEPTED if sent else status.HTTP_200_OK
        return Response(VerifyEmailOutputSerializer(request.user).data, status=code)


class MeApi(APIView):
    permission_classes = (IsAuthenticated,)

    @extend_schema(responses=MeOutputSerializer, tags=["users"])
    def get(self, request):
        return Response(MeOutputSerializer(request.user).data)

    @extend_schema(request=MeUpdateInputSerializer, responses=MeOutputSerializer, tags=["users"])
    def patch(self, request):
        serializer = MeUpdateInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = user_update(user=request.user, data=serializer.validated_data)
        return Response(MeOutputSerializer(user).data)

    @extend_schema(responses={204: None}, tags=["users"])
    def delete(self, request):
        user_delete(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
