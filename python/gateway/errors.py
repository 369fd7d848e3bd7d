"""Every error the gateway answers with, and the one place that turns them into SPEC §6 bodies.

The tree::

    GatewayError (status, type, code, param)
    ├── InvalidRequest              400 invalid_request_error / invalid_request
    │   ├── MissingParameter        400 … / missing_required_parameter
    │   └── ContextLengthExceeded   400 … / context_length_exceeded
    ├── AuthenticationFailed        401 authentication_error / invalid_api_key
    │   └── ProviderAuthFailed      401 … / provider_auth_error
    ├── BillingError                402 billing_error / insufficient_quota
    │   └── BudgetExceeded          402 … / budget_exceeded (+ X-Budget-Exceeded-*)
    ├── PermissionDenied            403 permission_error / forbidden | model_not_allowed | …
    ├── NotFound                    404 not_found_error / not_found
    │   └── ModelNotFound           404 … / model_not_found
    ├── MethodNotAllowed            405 invalid_request_error / method_not_allowed
    ├── RequestTimeout              408 invalid_request_error / request_timeout
    ├── PolicyConflict              409 policy_error / policy_conflict
    ├── RequestTooLarge             413 invalid_request_error / request_too_large
    ├── RateLimited                 429 rate_limit_error / rate_limit_exceeded (+ Retry-After)
    ├── InternalError               500 server_error / internal_error
    ├── ProviderError               502 provider_error / provider_error
    │   └── ProviderTimeout         504 provider_error / provider_timeout
    └── ServiceUnavailable          503 service_unavailable_error / no_providers_available | …

Nothing else in the gateway builds error JSON: handlers raise, ``edge/app.py`` renders.
"""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct, omit_defaults=False):
    message: str
    type: str
    code: str
    param: str | None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail
    request_id: str


_encoder = msgspec.json.Encoder()


class GatewayError(Exception):
    """Base: carries everything needed to render the SPEC §6 error shape."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, request_id: str) -> bytes:
        detail = ErrorDetail(message=self.message, type=self.type, code=self.code, param=self.param)
        return _encoder.encode(ErrorBody(error=detail, request_id=request_id))


class InvalidRequest(GatewayError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class MissingParameter(InvalidRequest):
    code = "missing_required_parameter"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(GatewayError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class ProviderAuthFailed(AuthenticationFailed):
    code = "provider_auth_error"


class BillingError(GatewayError):
    """The wallet cannot pay for the request (SPEC §7)."""

    status, type, code = 402, "billing_error", "insufficient_quota"


class BudgetExceeded(BillingError):
    code = "budget_exceeded"


class PermissionDenied(GatewayError):
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(GatewayError):
    status, type, code = 404, "not_found_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class RequestTimeout(GatewayError):
    """The request body did not arrive within ``defaults.body_timeout_s``."""

    status, type, code = 408, "invalid_request_error", "request_timeout"


class PolicyConflict(GatewayError):
    status, type, code = 409, "policy_error", "policy_conflict"


class RequestTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(GatewayError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class InternalError(GatewayError):
    status, type, code = 500, "server_error", "internal_error"


class ProviderError(GatewayError):
    status, type, code = 502, "provider_error", "provider_error"


class ProviderTimeout(ProviderError):
    status, code = 504, "provider_timeout"


class ServiceUnavailable(GatewayError):
    status, type, code = 503, "service_unavailable_error", "service_unavailable"


def provider_headers(provider: str, kind: str, retryable: bool) -> dict[str, str]:
    """The ``X-Error-*`` headers SPEC §6 puts on errors that came from an upstream."""
    return {
        "x-error-provider": provider,
        "x-error-type": kind,
        "x-error-retryable": "true" if retryable else "false",
    }
