"""The serving package's exception root, and its mapping to OpenAI error JSON at the HTTP edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from serving.protocol import ErrorBody, ErrorResponse


class ServingError(Exception):
    """An error that reaches the client as an OpenAI-style error body with an HTTP status."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    counted: bool = False  # already in tierserve_requests_total with its tier and cache labels
    audited: bool = False  # its request's audit record is written (the pipeline's audit stage ran)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers: dict[str, str] = {}  # e.g. Retry-After and the x-ratelimit-* headers of a 429
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        error = ErrorBody(message=self.message, type=self.type, code=self.code, param=self.param)
        return ErrorResponse(error=error).model_dump(mode="json")


class InvalidRequest(ServingError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ContentPolicyViolation(InvalidRequest):
    """The input guard blocked the request (injection or jailbreak)."""

    code = "content_policy_violation"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class UnprocessableRequest(ServingError):
    status = 422
    type = "invalid_request_error"
    code = "invalid_value"


class AuthenticationFailed(ServingError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ServingError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(ServingError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(ServingError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(ServingError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class TierUnavailable(ServingError):
    status = 503
    type = "server_error"
    code = "tier_unavailable"


class GatewayTimeout(ServingError):
    status = 504
    type = "server_error"
    code = "timeout"


class EngineFailure(ServingError):
    status = 500
    type = "server_error"
    code = "engine_error"


class NotImplementedFeature(ServingError):
    """vLLM's 501: the tier's model or engine cannot serve a feature the request asks for."""

    status = 501
    type = "invalid_request_error"
    code = "not_implemented"


_BY_STATUS: dict[int, type[ServingError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    422: UnprocessableRequest,
    429: RateLimited,
    501: NotImplementedFeature,
    503: TierUnavailable,
    504: GatewayTimeout,
}


def from_plain(status: int, message: str, code: str | None = None, param: str | None = None) -> ServingError:
    """Rebuild an error that crossed a process boundary as plain data."""
    cls = _BY_STATUS.get(status, EngineFailure if status >= 500 else InvalidRequest)
    error = cls(message, code=code, param=param)
    if cls is InvalidRequest and status != 400:
        error.status = status  # a client error vLLM gives another 4xx (e.g. 501 is not one; 409 is)
    return error


def _is_union_branch(part: object) -> bool:
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "dict", "list"} or "[" in part)


def from_validation_error(error: ValidationError) -> UnprocessableRequest:
    """A body that parsed as JSON but breaks the schema: name the first bad field like OpenAI does."""
    return from_errors(error.errors())


def from_errors(errors: Sequence[Mapping[str, Any]]) -> UnprocessableRequest:
    """pydantic's error list (a body's, or FastAPI's for a path or query parameter) as one OpenAI-style error."""
    first = errors[0]
    # pydantic names the union branch it tried ("content.str"); clients only know the field path.
    location = ".".join(str(part) for part in first["loc"] if not _is_union_branch(part))
    message = first["msg"].removeprefix("Value error, ")
    text = f"{location}: {message}" if location else message
    return UnprocessableRequest(text, param=location or None)
