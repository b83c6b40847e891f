"""Placeholder replaced by the admin API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from hub.container import Container


def router(container: Container) -> APIRouter:
    return APIRouter(prefix="/admin", tags=["admin"])
