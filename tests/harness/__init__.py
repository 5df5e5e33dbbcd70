"""The one test harness: `poll`, and the fixtures every integration test shares (a plugin of tests/conftest.py).

poll.py     wait for a condition until a deadline; tests and helper modules alike
broker.py   the test's own broker connection, queue counts, taps on the events exchange
api.py      the real api app with the test's key, uploads, submissions, waiting for a job
worker.py   real workers in-process, each stopped at teardown
monitor.py  the real monitor app, its admin credentials, a job run end to end
"""
