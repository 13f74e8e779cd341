//! Giving freed memory back to the system. glibc keeps what a thread freed in that
//! thread's arena; a script's heap (up to its memory cap) freed on one of many
//! blocking threads, or a burst of connection buffers, would otherwise stay in the
//! process's RSS for good. `malloc_trim` returns the free pages of every arena.

/// Returns free heap pages to the system (glibc only; elsewhere nothing to do).
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only touches the allocator's own
    // free lists, under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
