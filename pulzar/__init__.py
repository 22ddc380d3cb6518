"""Pulzar: a distributed key-value/blob database and job system."""

from pulzar.core.errors import (
    BadRequest,
    Conflict,
    InsufficientStorage,
    InvalidKey,
    KeyNotFound,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PulzarError,
    Unavailable,
)

__version__ = "2026.11.29"

__all__ = [
    "BadRequest",
    "Conflict",
    "InsufficientStorage",
    "InvalidKey",
    "KeyNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "PulzarError",
    "Unavailable",
    "__version__",
]
