"""The proof suite (issue 9): crash anywhere, faults, bad input, secrets and personal data.

Run it alone with ``.venv/bin/python -m pytest -q -p no:cacheprovider -m proof tests/proof``.
"""
