"""Helpers that tests in any folder import (``from helpers.market import ...``): plain
functions and classes, no fixtures (those are in ``tests/conftest.py``).

- ``app``: the test users and their keys, the real app served on a localhost port;
- ``market``: the generated marketplace with two detection runs that the API, page,
  access and security tests share, and a private served copy of it;
- ``stores``: Neo4j on an emptied database, a small marketplace filled into any store;
- ``exports``: small exports written to disk for the loader tests;
- ``tiny_market``: a hand-built marketplace in normalised form, written straight into
  a store (the embedded store's tests).
"""
