"""The browser tests serve the same real project as the server tests."""

from tests.server.conftest import built, make_project, project  # noqa: F401
