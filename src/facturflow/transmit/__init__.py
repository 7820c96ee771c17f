"""Transmission through Qonto's PA: client, durable outbox, local sandbox, send stage."""

from .errors import (
    ApiError,
    AuthenticationError,
    NotFoundError,
    OrganisationUnknownError,
    OutboxLostError,
    PermissionDeniedError,
    PreconditionError,
    QontoError,
    RateLimitedError,
    ServerError,
    StagingTokenError,
    TransportError,
    ValidationRejectedError,
)
from .outbox import Item, Outbox, OutboxBusyError
from .pipeline import Outcome, SendOptions, SendSummary, send_invoices
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
from .sandbox import FaultPlan, Sandbox, SandboxConfig

__all__ = [
    "ApiError",
    "AsyncQontoClient",
    "AuthenticationError",
    "ClientInvoice",
    "EInvoicingSettings",
    "FaultPlan",
    "ImportedInvoice",
    "Item",
    "LifecycleEvent",
    "NotFoundError",
    "OrganisationUnknownError",
    "Outbox",
    "OutboxBusyError",
    "OutboxLostError",
    "Outcome",
    "PermissionDeniedError",
    "PreconditionError",
    "QontoClient",
    "QontoConfig",
    "QontoError",
    "RateLimitedError",
    "Sandbox",
    "SandboxConfig",
    "SendOptions",
    "SendSummary",
    "ServerError",
    "StagingTokenError",
    "TransportError",
    "UploadFile",
    "ValidationRejectedError",
    "send_invoices",
]
