"""v1.5 routes (spec/v1.5-web-api.md)."""

from __future__ import annotations

from chalice import Blueprint

bp = Blueprint(__name__)
