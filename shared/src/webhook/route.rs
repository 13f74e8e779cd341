//! The one route: `/api/webhook:trigger/{hookId}`.

use percent_encoding::percent_decode_str;

const PREFIX: &str = "/api/webhook:trigger/";

/// The hook id of a webhook path. Some clients encode the `:` as `%3A`, so the
/// path is decoded first; anything after the id (another `/`) is not ours.
pub fn hook_id_from_path(path: &str) -> Option<String> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let id = decoded.strip_prefix(PREFIX)?;
    let id = id.strip_suffix('/').unwrap_or(id);
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::hook_id_from_path;

    #[test]
    fn finds_the_hook_id() {
        assert_eq!(
            hook_id_from_path("/api/webhook:trigger/abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            hook_id_from_path("/api/webhook%3Atrigger/abc/").as_deref(),
            Some("abc")
        );
        assert_eq!(hook_id_from_path("/api/webhook:trigger/"), None);
        assert_eq!(hook_id_from_path("/api/webhook:trigger/a/b"), None);
        assert_eq!(hook_id_from_path("/other"), None);
    }
}
