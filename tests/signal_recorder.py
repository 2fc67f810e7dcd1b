from django.db import transaction


class SignalRecorder:
    """Connects to a signal like a real receiver would: notes each send, and
    schedules `transaction.on_commit` work so a test can see when it runs."""

    def __init__(self, signal):
        self.signal = signal
        self.calls: list[dict] = []
        self.committed: list[dict] = []

    def _receiver(self, sender, signal, **kwargs):
        self.calls.append(kwargs)
        transaction.on_commit(lambda: self.committed.append(kwargs))

    def __enter__(self):
        self.signal.connect(self._receiver, weak=False, dispatch_uid=id(self))
        return self

    def __exit__(self, *exc_info):
        self.signal.disconnect(dispatch_uid=id(self))
