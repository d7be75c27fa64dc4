"""Loaded by Python at start-up when this folder is on PYTHONPATH: refuses every outbound connection.

Tests run `llmasos` subprocesses with it to prove nothing reaches for the network at run time. Loopback and
Unix sockets stay allowed (a local Chroma server, WebRTC peers on 127.0.0.1).
"""

from tests_netguard_impl import install  # noqa: F401  (the folder holds both files)

install()
