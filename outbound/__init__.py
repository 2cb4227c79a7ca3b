"""One outbound HTTP policy for everything the service sends to user-given URLs.

The callback sender (`callbacks.delivery`) and the dataset page client
(`dataset_fetcher.page_client`) both send through `Client`; the API checks callback and
dataset URLs and headers at submit time with the same `validate_url` and
`validate_headers`, so whatever it accepts can be sent. Standard library and urllib3 only
(urllib3 comes with botocore in the Lambda runtime and with boto3 in the trainer image).

The rules (docs/contracts.md, "Outbound HTTP policy"): http(s) only; no credentials,
backslashes, whitespace or control characters in URLs; the host read the same by
`urllib.parse` and urllib3; unless private targets are allowed, only globally routable
addresses (mapped, 6to4 and NAT64 forms judged by the IPv4 inside), checked again at
connect time and connected to as checked; link-local and instance metadata never;
redirects never followed; retries through urllib3's `Retry`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from outbound.client import TRANSIENT_STATUSES, Client, Reply
from outbound.errors import AddressRefused, HeadersRefused, OutboundError, Unreachable, UrlRefused
from outbound.headers import merge, validate_headers
from outbound.redact import Redactor
from outbound.urls import Target, validate_url

ALLOW_PRIVATE_VARIABLE = "AIFACTORY_ALLOW_PRIVATE_URLS"


def private_urls_allowed(environ: Mapping[str, str] = os.environ) -> bool:
    """The stage's choice, for code that has no settings object (the trainer, the runner).

    `AIFACTORY_ALLOW_PRIVATE_URLS` when set; otherwise only the local stage allows private
    targets. Unlike the API's settings, an unset stage means "not local": the trainer on
    SageMaker gets no AIFACTORY_* variables and must refuse private addresses.
    """
    raw = environ.get(ALLOW_PRIVATE_VARIABLE, "").strip().lower()
    if raw:
        return raw in ("1", "true", "yes", "on")
    return environ.get("AIFACTORY_STAGE", "").strip().lower() == "local"


__all__ = [
    "TRANSIENT_STATUSES",
    "AddressRefused",
    "Client",
    "HeadersRefused",
    "OutboundError",
    "Redactor",
    "Reply",
    "Target",
    "Unreachable",
    "UrlRefused",
    "merge",
    "private_urls_allowed",
    "validate_headers",
    "validate_url",
]
