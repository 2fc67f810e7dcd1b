"""The emulator as `make run` starts it: its own process, state kept across restarts, its own webhook endpoint."""

import pytest
import stripe

from tests.emulator_process import EmulatorProcess

# The emulator is started as a process of its own.
pytestmark = pytest.mark.integration


def _client(process: EmulatorProcess) -> stripe.StripeClient:
    return stripe.StripeClient(process.api_key, base_addresses={"api": process.url}, max_network_retries=0)


def test_state_is_saved_at_exit_and_loaded_at_start(tmp_path):
    state = tmp_path / "stripe.json"
    first = EmulatorProcess("--state-file", str(state)).start()
    customer = _client(first).v1.customers.create(params={"email": "kept@example.com"})

    assert first.stop() == 0
    second = EmulatorProcess("--state-file", str(state)).start()
    try:
        assert _client(second).v1.customers.retrieve(customer.id).email == "kept@example.com"
    finally:
        second.stop()


@pytest.fixture
def emulator_with_endpoint(webhook_receiver, tmp_path):
    process = EmulatorProcess(
        "--webhook-url",
        webhook_receiver.url,
        "--webhook-secret",
        "whsec_givenOnTheCommandLine",
        "--state-file",
        str(tmp_path / "s.json"),
    ).start()
    yield process
    process.stop()


def test_command_line_endpoint_is_signed_with_the_given_secret_and_survives_reset(
    emulator_with_endpoint, webhook_receiver
):
    client = _client(emulator_with_endpoint)
    emulator_with_endpoint.reset()
    client.v1.customers.create(params={"email": "a@example.com"})

    assert emulator_with_endpoint.wait_for_webhooks()
    [delivery] = webhook_receiver.received
    event = stripe.Webhook.construct_event(delivery["body"], delivery["signature"], "whsec_givenOnTheCommandLine")
    assert event.type == "customer.created"


def test_a_restart_does_not_register_the_endpoint_twice(webhook_receiver, tmp_path):
    args = ("--webhook-url", webhook_receiver.url, "--state-file", str(tmp_path / "s.json"))
    first = EmulatorProcess(*args).start()
    first.stop()
    second = EmulatorProcess(*args).start()
    try:
        assert len(_client(second).v1.webhook_endpoints.list().data) == 1
    finally:
        second.stop()
