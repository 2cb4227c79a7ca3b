"""Python client and command line for the AI Factory API (both the AI Factory and the v1.5 surface).

from aifactory import Client, NotFound
client = Client("http://127.0.0.1:8000", api_key)
job_id = client.train("classification", "/data/cats", algorithm="resnet18", pretrained=False)
"""

from aifactory.client import Client, is_v15_job
from aifactory.errors import (
    AIFactoryError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RouteNotFound,
    ServerError,
)
from aifactory.follow import Outcome, follow

__all__ = [
    "AIFactoryError",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "Outcome",
    "RouteNotFound",
    "ServerError",
    "follow",
    "is_v15_job",
]
