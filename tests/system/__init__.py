"""System tests: the controller against a real WebSocket central system, real processes,
servers and packaging; marked slow (tests/conftest.py)."""
