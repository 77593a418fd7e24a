"""Shared MLX plumbing: the import with its one clear error, compilation where it pays,
and the device in words."""

from __future__ import annotations

from typing import Any

from server.engine.errors import ModelUnavailableError


def compiled(mx: Any, fn: Any) -> Any:
    """``fn`` compiled by MLX on Apple's GPU (Metal fuses its element-wise steps); as it
    is on the CPU, where MLX would compile C++ with the system's compiler at run time (a
    compiler a machine may lack, and whose cache another process may be writing)."""
    return mx.compile(fn) if mx.default_device() == mx.gpu else fn


def import_mlx() -> Any:
    """``mlx.core``, or one clear error naming the backends that work."""
    try:
        import mlx.core as mx
    except ImportError as exc:
        raise ModelUnavailableError(
            f"model.backend mlx needs MLX ({exc}): pip install 'mlx[cpu]' on Linux, "
            "'mlx' on Apple Silicon; or use backend: torch"
        ) from None
    return mx


def mlx_device(mx: Any) -> str:
    """``mlx:gpu`` (Apple's GPU) or ``mlx:cpu``: where MLX runs now."""
    return f"mlx:{'gpu' if mx.default_device() == mx.gpu else 'cpu'}"
