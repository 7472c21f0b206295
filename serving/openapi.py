"""The gateway's OpenAPI document (GET /openapi.json): FastAPI's routes, with the request bodies the routes read
themselves (as raw bytes, so nothing is dropped on the way to the tier) described by their pydantic models, and
the OpenAI error body on every error status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from serving.protocol import ErrorResponse

_REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def install_openapi(
    app: FastAPI,
    bodies: dict[str, tuple[type[BaseModel], list[str]]],
    errors: dict[str, list[int]],
) -> None:
    """`bodies`: POST path -> (its body model, the model names it serves); `errors`: path -> its error statuses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(title="tierserve", version="0.1.0", routes=app.routes)
        components = document.setdefault("components", {}).setdefault("schemas", {})
        error_ref = _schema(ErrorResponse, components)
        for path, (model, names) in bodies.items():
            operation = document["paths"][path]["post"]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(model, components)}},
            }
            # This stack's models, so a client (or a fuzzer) knows which names are served.
            components[model.__name__]["properties"]["model"] = {"type": "string", "enum": names}
        for path, statuses in errors.items():
            for operation in document["paths"][path].values():
                for status in statuses:
                    operation.setdefault("responses", {})[str(status)] = {
                        "description": "OpenAI error",
                        "content": {"application/json": {"schema": error_ref}},
                    }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
