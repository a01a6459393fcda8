"""A fake Moodle web-service server (real HTTP on 127.0.0.1) with a seeded data generator.

See ``server.FakeMoodle`` for the test API and ``generator.Dataset`` for the data and the append API.
"""

from .generator import PRESETS, Dataset, Preset
from .server import CAPTURED_LATENCY, FakeMoodle, Fault

__all__ = ["CAPTURED_LATENCY", "PRESETS", "Dataset", "FakeMoodle", "Fault", "Preset"]
