"""serving.errors: every ServingError leaves as an OpenAI error body with the right HTTP status."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving import errors
from serving.protocol import ChatCompletionRequest, ErrorResponse


@pytest.mark.parametrize(
    ("cls", "status", "type_", "code"),
    [
        (errors.ServingError, 500, "server_error", "internal_error"),
        (errors.InvalidRequest, 400, "invalid_request_error", "invalid_request"),
        (errors.ContextLengthExceeded, 400, "invalid_request_error", "context_length_exceeded"),
        (errors.UnprocessableRequest, 422, "invalid_request_error", "invalid_value"),
        (errors.AuthenticationFailed, 401, "authentication_error", "invalid_api_key"),
        (errors.NotFound, 404, "invalid_request_error", "model_not_found"),
        (errors.PayloadTooLarge, 413, "invalid_request_error", "payload_too_large"),
        (errors.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.TierUnavailable, 503, "server_error", "tier_unavailable"),
        (errors.EngineFailure, 500, "server_error", "engine_error"),
    ],
)
def test_subclass_body_and_status(cls: type[errors.ServingError], status: int, type_: str, code: str) -> None:
    error = cls("something went wrong", param="messages")
    assert error.status == status
    body = error.body()
    assert body == {"error": {"message": "something went wrong", "type": type_, "code": code, "param": "messages"}}
    ErrorResponse.model_validate(body)  # the wire model accepts it
    assert str(error) == "something went wrong"


def test_code_override_is_per_instance() -> None:
    error = errors.InvalidRequest("bad json", code="invalid_json")
    assert error.body()["error"]["code"] == "invalid_json"
    assert error.body()["error"]["param"] is None
    assert errors.InvalidRequest("other").code == "invalid_request"  # the class default is untouched


def test_all_errors_share_the_root() -> None:
    assert issubclass(errors.ContextLengthExceeded, errors.InvalidRequest)
    for cls in (errors.NotFound, errors.TierUnavailable, errors.RateLimited, errors.EngineFailure):
        assert issubclass(cls, errors.ServingError)


def _validation_error(model: type, data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)  # type: ignore[attr-defined]
    return caught.value


def test_from_validation_error_names_the_field() -> None:
    error = errors.from_validation_error(
        _validation_error(
            ChatCompletionRequest,
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
        )
    )
    assert isinstance(error, errors.UnprocessableRequest)
    assert error.status == 422
    assert error.param == "max_tokens"
    assert error.message.startswith("max_tokens: ")
    assert "greater than or equal to 1" in error.message


def test_from_validation_error_nested_field() -> None:
    error = errors.from_validation_error(
        _validation_error(ChatCompletionRequest, {"model": "auto", "messages": [{"role": "robot", "content": "x"}]})
    )
    assert error.param == "messages.0.role"
    assert error.body()["error"]["param"] == "messages.0.role"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidRequest),
        (401, errors.AuthenticationFailed),
        (404, errors.NotFound),
        (413, errors.PayloadTooLarge),
        (422, errors.UnprocessableRequest),
        (429, errors.RateLimited),
        (503, errors.TierUnavailable),
        (500, errors.EngineFailure),
        (501, errors.NotImplementedFeature),
        (418, errors.InvalidRequest),
    ],
)
def test_from_plain_maps_statuses(status: int, cls: type[errors.ServingError]) -> None:
    error = errors.from_plain(status, "from a replica", param="messages")
    assert type(error) is cls
    assert error.status == status  # a client error keeps its 4xx across the hop
    assert error.message == "from a replica"
    assert error.code == cls.code
    assert error.param == "messages"


def test_from_plain_keeps_the_replicas_code() -> None:
    error = errors.from_plain(400, "too long", "context_length_exceeded")
    assert error.status == 400
    assert error.body()["error"]["code"] == "context_length_exceeded"
    assert error.body()["error"]["type"] == "invalid_request_error"
    dead = errors.from_plain(503, "engine died", "engine_dead")
    assert dead.status == 503 and dead.code == "engine_dead"
