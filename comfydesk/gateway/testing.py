"""A gateway for tests and benchmarks: `start_gateway()` in front of the fast demo engine (or given ComfyUI
machines), on a free port, with an admin token ready."""

from __future__ import annotations

import tempfile
from pathlib import Path

from comfydesk.gateway.app import GatewayConfig
from comfydesk.gateway.server import RunningGateway, start_demo_engine, start_gateway_thread
from comfydesk.gateway.store import GatewayStore

__all__ = ["RunningGateway", "start_gateway"]


def start_gateway(
    *,
    comfyui_urls: list[str] | None = None,
    data_dir: Path | None = None,
    database_url: str | None = None,
    image_ttl: float = 3600,
    rate_limit: str | None = None,
    burst: int | None = None,
    max_body: int | None = None,
    demo_step_delay: float = 0.01,
    health_interval: float = 0.5,
    port: int = 0,
    image_dir: Path | None = None,
    lease: float = 30.0,
    resync_interval: float = 0.5,
    reconnect_grace: float = 30.0,
) -> RunningGateway:
    """A running gateway; without `comfyui_urls` it starts (and later stops) its own demo engine."""
    data = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="comfydesk-gateway-"))
    cleanup = []
    urls = list(comfyui_urls or [])
    if not urls:
        url, stop = start_demo_engine(data, step_delay=demo_step_delay)
        urls, cleanup = [url], [stop]
    config = GatewayConfig(
        comfyui_urls=urls,
        data_dir=data,
        database_url=database_url,
        image_ttl=image_ttl,
        rate_limit=rate_limit or "100000/minute",
        burst=burst,
        health_interval=health_interval,
        sweep_interval=min(1.0, image_ttl / 4),
        image_dir=image_dir,
        lease=lease,
        resync_interval=resync_interval,
        reconnect_grace=reconnect_grace,
    )
    if max_body is not None:
        config.max_body = max_body
    store = GatewayStore.open(config.database)
    try:
        admin = store.create_token(f"admin-{len(store.list_tokens()) + 1}", admin=True)[1]
    finally:
        store.close()
    try:
        running = start_gateway_thread(config, port=port)
    except BaseException:
        for fn in cleanup:
            fn()
        raise
    running._cleanup.extend(cleanup)
    running.admin_token = admin
    return running
