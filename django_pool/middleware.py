"""Turn an exhausted pool into HTTP 503 with Retry-After instead of a 500."""

from __future__ import annotations

from django.http import HttpResponse

from .conf import get_config
from .errors import PoolTimeout, ServerUnavailable, TooManyRequests

# An exhausted pool, and a server the pool is backing off from: both pass in a moment.
_OVERLOAD = (PoolTimeout, TooManyRequests, ServerUnavailable)


def _overload_error(exception: BaseException) -> BaseException | None:
    # Django raises driver errors as django.db.OperationalError "from" the original one.
    while exception is not None:
        if isinstance(exception, _OVERLOAD):
            return exception
        exception = exception.__cause__
    return None


class PoolOverloadMiddleware:
    """Answer 503 Service Unavailable with ``Retry-After`` when a view finds the pool exhausted."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception: Exception) -> HttpResponse | None:
        """Return a 503 for PoolTimeout, TooManyRequests, ServerUnavailable; pass anything else."""
        if _overload_error(exception) is None:
            return None
        retry_after = get_config()["RETRY_AFTER"]
        response = HttpResponse(
            "Service temporarily overloaded: no database connection was free. "
            f"Please retry in {retry_after} s.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(retry_after)
        return response
