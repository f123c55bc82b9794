//! Tests: reading each table.
