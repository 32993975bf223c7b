"""Who may call what: sellers and moderators are groups (listings.roles)."""

from rest_framework.permissions import BasePermission

from listings.roles import is_moderator, is_seller


class IsSeller(BasePermission):
    message = "Only sellers can do this."

    def has_permission(self, request, view):
        return is_seller(request.user)


class IsModerator(BasePermission):
    message = "Only moderators can do this."

    def has_permission(self, request, view):
        return is_moderator(request.user)


class IsSellerOrModerator(BasePermission):
    message = "Only sellers and moderators can use the listings API."

    def has_permission(self, request, view):
        return is_seller(request.user) or is_moderator(request.user)


class IsModeratorOrStaff(BasePermission):
    message = "Only moderators and staff can do this."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated) and (
            user.is_staff or is_moderator(user)
        )
