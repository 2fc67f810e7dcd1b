"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepts and refuses when a test says so."""

import asyncio
import email
import email.utils
import logging
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


@dataclass
class Refusal:
    code: int
    text: str
    times: int | None  # None: every time
    stage: str  # "rcpt" or "data"


@dataclass
class SmtpSink:
    messages: list[EmailMessage] = field(default_factory=list)
    # Every DATA the server was asked to take, accepted or not: what a client tried.
    attempts: list[str] = field(default_factory=list)
    _refusals: dict[str, Refusal] = field(default_factory=dict)
    _holds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> "SmtpSink":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.attempts.clear()
            self._refusals.clear()
            self._holds.clear()

    def refuse(self, recipient: str, *, code: int = 451, text: str = "4.3.0 Try again later",
               times: int | None = None, stage: str = "data") -> None:  # fmt: skip
        """Answer `code text` to mail for `recipient` (the next `times` times, or always)."""
        with self._lock:
            self._refusals[recipient.lower()] = Refusal(code, text, times, stage)

    def hold(self, recipient: str, seconds: float) -> None:
        """Keep a client that sends to `recipient` waiting this long before answering RCPT (a slow server)."""
        with self._lock:
            self._holds[recipient.lower()] = seconds

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [message for message in self.messages if address.lower() in _recipients(message)]

    def attempts_to(self, address: str) -> int:
        with self._lock:
            return sum(1 for recipient in self.attempts if recipient == address.lower())

    def _refusal_for(self, recipients: list[str], stage: str) -> str | None:
        with self._lock:
            for recipient in recipients:
                refusal = self._refusals.get(recipient.lower())
                if refusal is None or refusal.stage != stage:
                    continue
                if refusal.times is not None:
                    if refusal.times <= 0:
                        continue
                    refusal.times -= 1
                return f"{refusal.code} {refusal.text}"
        return None

    # aiosmtpd's handler hooks

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            hold = self._holds.pop(address.lower(), 0)
        if hold:
            await asyncio.sleep(hold)
        refusal = self._refusal_for([address], "rcpt")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.attempts.extend(recipient.lower() for recipient in envelope.rcpt_tos)
        refusal = self._refusal_for(envelope.rcpt_tos, "data")
        if refusal:
            return refusal
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


def _recipients(message: EmailMessage) -> list[str]:
    return [address.lower() for _, address in email.utils.getaddresses(message.get_all("To", []))]
