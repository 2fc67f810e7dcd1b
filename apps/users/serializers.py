from rest_framework import serializers

from apps.users.models import User


class RegisterInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, trim_whitespace=False, max_length=128)
    name = serializers.CharField(max_length=150, allow_blank=True, required=False, default="")


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "name")
        read_only_fields = fields


class MeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "email", "name", "email_verified", "is_staff", "date_joined")
        read_only_fields = fields


class MeUpdateInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, required=False)
    name = serializers.CharField(max_length=150, allow_blank=True, required=False)


class LogoutInputSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class VerifyEmailInputSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)


class VerifyEmailOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("email", "email_verified")
        read_only_fields = fields
