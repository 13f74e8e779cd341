//! The language of definitions and requests: variable paths, `{{ }}` templates,
//! query strings parsed like `qs`, media types, sample parsing, and the bounds every
//! JSON value hookflow makes must stay within. Knows nothing of nodes or runs.

pub mod limits;
pub mod media;
pub mod number;
pub mod path;
pub mod qs;
pub mod redact_path;
pub mod sample;
pub mod shape;
pub mod template;
