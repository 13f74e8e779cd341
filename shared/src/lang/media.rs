//! Media types.

/// `application/json`, with or without parameters, and any `*/*+json`.
pub fn is_json_type(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == "application/json" || (essence.contains('/') && essence.ends_with("+json"))
}

/// The media type without parameters, lowercased.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `application/x-www-form-urlencoded`.
pub fn is_form_type(content_type: &str) -> bool {
    essence(content_type) == "application/x-www-form-urlencoded"
}

/// `multipart/form-data`.
pub fn is_multipart_type(content_type: &str) -> bool {
    essence(content_type) == "multipart/form-data"
}

/// Bodies kept as text: `text/*`, `application/xml` and `*/*+xml`.
pub fn is_text_type(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence.starts_with("text/")
        || essence == "application/xml"
        || (essence.contains('/') && essence.ends_with("+xml"))
}
