"""The one error tree of Pulzar.

    PulzarError                      500  anything unexpected
    ├── BadRequest                   400  a malformed body, parameter or schedule
    │   └── InvalidKey               400  a key that breaks the key rules
    ├── Unauthorized                 401  no credential where one is needed
    ├── Forbidden                    403  a wrong credential
    ├── NotFound                     404  an unknown route, job or node
    │   └── KeyNotFound              404  a key that does not exist (or has expired)
    ├── MethodNotAllowed             405
    ├── RequestTimeout               408  a request body that stalls
    ├── Conflict                     409  create-only write of a key that exists
    ├── PreconditionFailed           412  compare-and-swap that lost
    ├── PayloadTooLarge              413  body over `[general] maxsize`
    ├── Unavailable                  503  no live volume (or too few for W copies)
    │   └── NoLiveVolume             503
    ├── GatewayTimeout               504
    ├── InsufficientStorage          507  disk full or over `[volume] max_bytes`
    └── ConfigError                  (start-up only) a bad setting, said in one line

The servers map class -> HTTP status in one place (`pulzar.http.responses`), and the client
maps status -> class in one place, so both sides raise the same exceptions.
"""

from __future__ import annotations


class PulzarError(Exception):
    status: int = 500
    default_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BadRequest(PulzarError):
    status = 400
    default_message = "bad request"


class InvalidKey(BadRequest):
    default_message = "invalid key"


class Unauthorized(PulzarError):
    status = 401
    default_message = "a credential is required"


class Forbidden(PulzarError):
    status = 403
    default_message = "credential refused"


class NotFound(PulzarError):
    status = 404
    default_message = "not found"


class KeyNotFound(NotFound):
    default_message = "key not found"


class MethodNotAllowed(PulzarError):
    status = 405
    default_message = "method not allowed"


class RequestTimeout(PulzarError):
    status = 408
    default_message = "the request body stalled"


class Conflict(PulzarError):
    status = 409
    default_message = "key already exists"


class PreconditionFailed(PulzarError):
    status = 412
    default_message = "precondition failed"


class PayloadTooLarge(PulzarError):
    status = 413
    default_message = "value too large"


class Unavailable(PulzarError):
    status = 503
    default_message = "service unavailable"


class NoLiveVolume(Unavailable):
    default_message = "no live volume can take this request"


class GatewayTimeout(PulzarError):
    status = 504
    default_message = "timed out"


class InsufficientStorage(PulzarError):
    status = 507
    default_message = "volume is full"


class ConfigError(PulzarError):
    status = 500
    default_message = "bad configuration"


_BY_STATUS: dict[int, type[PulzarError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    503: Unavailable,
    504: GatewayTimeout,
    507: InsufficientStorage,
}


def error_for_status(status: int, message: str, *, key_request: bool = False) -> PulzarError:
    """The exception a client raises for an error answer (404 on a key is `KeyNotFound`)."""
    if status == 404 and key_request:
        return KeyNotFound(message)
    cls = _BY_STATUS.get(status, PulzarError)
    return cls(message)
