//! The key `hookflow serve` seals runs that redact with (`trigger.redact`): 32
//! random bytes, kept as hex in `sealing.key` in the data directory, readable by
//! its owner only, made on first start.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub const SEALING_KEY_FILE: &str = "sealing.key";

/// The data directory's sealing key, made when it has none.
pub fn sealing_key(data: &Path) -> std::io::Result<String> {
    let path = data.join(SEALING_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = super::sealing_key(dir.path()).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(super::sealing_key(dir.path()).unwrap(), key);
        let mode = std::fs::metadata(dir.path().join(super::SEALING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
