//! Integration tests and their fixtures live here; see `tests/tests/`.
