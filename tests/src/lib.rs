//! Integration tests of Concord live in `tests/tests/`; this library is empty.
