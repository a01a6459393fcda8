"""``python -m lms_bridge.cli``."""

from lms_bridge.cli import main

main()
