//! Tests: cross-references and error collection.
