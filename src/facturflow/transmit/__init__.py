"""Transmission through Qonto's PA: client, durable outbox, local sandbox, send stage."""

from .errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    QontoError,
    RateLimitedError,
    ServerError,
    StagingTokenError,
    TransportError,
    ValidationRejectedError,
)
from .qonto import (
    AsyncQontoClient,
    ClientInvoice,
    EInvoicingSettings,
    ImportedInvoice,
    LifecycleEvent,
    QontoClient,
    QontoConfig,
    UploadFile,
)

__all__ = [
    "ApiError",
    "AsyncQontoClient",
    "AuthenticationError",
    "ClientInvoice",
    "EInvoicingSettings",
    "ImportedInvoice",
    "LifecycleEvent",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionError",
    "QontoClient",
    "QontoConfig",
    "QontoError",
    "RateLimitedError",
    "ServerError",
    "StagingTokenError",
    "TransportError",
    "UploadFile",
    "ValidationRejectedError",
]
