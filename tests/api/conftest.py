"""A real API server (uvicorn on a free port, in a thread) against the embedded servers."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from kadence.api.app import create_app
from kadence.config import Settings
from kadence.embedded import free_port
from tests.support import wait_for


@dataclass
class LiveApi:
    """A running API: its base URL, its master token and a way to make clients."""

    url: str
    master_token: str
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def master(self) -> httpx.Client:
        return self.client(self.master_token)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_api(settings: Settings) -> LiveApi:
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"api-{port}", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=30, message="the API to start")
    assert server.started, "the API did not start"
    token = settings.master_token.get_secret_value() if settings.master_token else ""
    return LiveApi(f"http://127.0.0.1:{port}", token, server, thread)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The test's settings with a master token and a small body limit."""
    return settings.model_copy(
        update={"master_token": SecretStr("master-" + secrets.token_hex(8)), "api_max_body_bytes": 64 * 1024}
    )


@pytest.fixture
def live_api(api_settings: Settings) -> Iterator[LiveApi]:
    api = start_api(api_settings)
    yield api
    api.stop()


@pytest.fixture
def master(live_api: LiveApi) -> Iterator[httpx.Client]:
    with live_api.master() as client:
        yield client


@pytest.fixture
def user_client(live_api: LiveApi, master: httpx.Client) -> Iterator[Callable[[int], httpx.Client]]:
    """``user_client(7)``: a client with a token that master minted for user 7."""
    clients: list[httpx.Client] = []

    def make(user_id: int) -> httpx.Client:
        answer = master.post("/api/auth/tokens", json={"userId": user_id, "role": "user"})
        assert answer.status_code == 201, answer.text
        client = live_api.client(answer.json()["token"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
