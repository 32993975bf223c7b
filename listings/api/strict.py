"""Nothing is silently ignored: a field or query parameter the API does not take
is a 400 `unknown_field`, naming it, rather than a success that did not do what
the client meant."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.pagination import CursorPagination

UNKNOWN = "unknown_field"
# Always allowed: DRF's own format switch.
ALWAYS = {"format"}


def _unknown(names, why: str) -> ValidationError:
    return ValidationError(
        {name: [ErrorDetail(why, code=UNKNOWN)] for name in sorted(names)}
    )


class StrictFields(serializers.Serializer):
    """Refuses input fields it does not declare, and read-only ones."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            writable = {n for n, f in self.fields.items() if not f.read_only}
            given = set(data.keys())
            read_only = given & (set(self.fields) - writable)
            if read_only:
                raise _unknown(read_only, "This field is read-only.")
            if given - writable:
                raise _unknown(
                    given - writable, "This field does not exist or cannot be set."
                )
        return super().to_internal_value(data)


class StrictQuery:
    """A view mixin: query parameters are the fields of the serializers named per
    method in `query_serializers`, plus the pagination's own; others are refused
    after authentication, before the view reads anything."""

    query_serializers: dict[str, tuple] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        allowed = set(ALWAYS)
        for serializer in self.query_serializers.get(method, ()):
            allowed |= set(serializer().fields)
        paginator = getattr(self, "paginator", None)
        if method == "get" and paginator is not None:
            allowed |= {paginator.cursor_query_param}
            if getattr(paginator, "page_size_query_param", None):
                allowed.add(paginator.page_size_query_param)
        unknown = set(request.query_params) - allowed
        if unknown:
            raise _unknown(unknown, "This query parameter does not exist.")


class NewestFirst(CursorPagination):
    """Cursor pages, newest first; a `page_size` out of range is refused rather
    than capped, and the schema says the range."""

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not (
            given.isascii()
            and given.isdigit()
            and 1 <= int(given) <= self.max_page_size
        ):
            raise ValidationError(
                {
                    self.page_size_query_param: [
                        f"Send a whole number from 1 to {self.max_page_size}."
                    ]
                }
            )
        return int(given)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters
