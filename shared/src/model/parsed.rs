//! A node's config as its type reads it, kept with the definition: read on the
//! node's first run and shared by every later run of that definition (a loop's
//! iterations, the runs of a hook the webhook keeps cached), so no run pays for
//! reading a config again.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

type Kept = Arc<dyn Any + Send + Sync>;

/// Empty until a node type reads the config. Not part of the definition: it
/// does not serialise, compares equal to any other, and a clone starts empty (a
/// clone may be given another config).
#[derive(Default)]
pub struct ParsedConfig(OnceLock<Kept>);

impl ParsedConfig {
    /// The config as `T`: `read` the first time, then the kept value. A config
    /// that does not read is not kept (each run reports it again).
    pub fn get_or_read<T, E>(&self, read: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E>
    where
        T: Any + Send + Sync,
    {
        match self.0.get().map(|kept| Arc::clone(kept).downcast::<T>()) {
            Some(Ok(typed)) => Ok(typed),
            // Kept by another type of the same name (a registry of its own, as
            // tests build): read, and leave what is kept alone.
            Some(Err(_)) => read().map(Arc::new),
            None => {
                let typed = Arc::new(read()?);
                // Two runs reading at once both read; the first one is kept.
                let _ = self.0.set(Arc::clone(&typed) as Kept);
                Ok(typed)
            }
        }
    }
}

impl Clone for ParsedConfig {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ParsedConfig {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for ParsedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.0.get().is_some() {
            "read"
        } else {
            "unread"
        };
        write!(f, "ParsedConfig({state})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_once_then_kept_and_a_failure_is_not_kept() {
        let kept = ParsedConfig::default();
        let mut reads = 0;
        let failed: Result<Arc<u32>, &str> = kept.get_or_read(|| {
            reads += 1;
            Err("bad")
        });
        assert_eq!(failed, Err("bad"));
        for _ in 0..3 {
            let value = kept.get_or_read::<u32, ()>(|| {
                reads += 1;
                Ok(7)
            });
            assert_eq!(value, Ok(Arc::new(7)));
        }
        assert_eq!(reads, 2, "one failed read, then one kept");
        // Another type asking reads its own, and the kept value stays.
        assert_eq!(kept.get_or_read::<&str, ()>(|| Ok("x")), Ok(Arc::new("x")));
        assert_eq!(kept.get_or_read::<u32, ()>(|| Ok(0)), Ok(Arc::new(7)));
        // A clone starts empty.
        assert_eq!(
            kept.clone().get_or_read::<u32, ()>(|| Ok(1)),
            Ok(Arc::new(1))
        );
    }
}
