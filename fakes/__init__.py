"""Fake servers for the tests, the demo and the benchmarks: Moodle, Zoom, Google Classroom, Telegram Bot API.

Each serves real HTTP on 127.0.0.1 in the shapes the real service answers with, so the connectors are
tested over the wire and nothing patches ``requests``. Test tooling, not part of the installed package.
"""
