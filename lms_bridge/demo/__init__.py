"""The demo shipped in the package: a fake Moodle, a throw-away Ralph LRS, demo data and ``lms-bridge demo``.

- :mod:`lms_bridge.demo.moodle`: a fake Moodle web-service server (real HTTP on 127.0.0.1) with a
  generated site; the tests use it too.
- :mod:`lms_bridge.demo.ralph`: start and stop Ralph LRS 5.1.0 from its own venv.
- :mod:`lms_bridge.demo.run`: the demo itself; ``data/`` holds its roster, activities and a WhatsApp export.
"""
