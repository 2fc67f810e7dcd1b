"""The benchmarks' settings: production's (persistent connections, DEBUG off, no debug toolbar), against the
emulator. Production refuses to start on an emulator base or a test key, as it must; a benchmark is the one
place that runs production's code paths against the emulator on purpose, so it says so here, not through a
flag a deployment could set."""

from config.settings.production import *  # noqa: F403

REFUSE_UNSAFE_START = False
SETTINGS_ROLE = "benchmark"
