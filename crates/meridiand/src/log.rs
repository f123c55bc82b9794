//! Minimal logging to stderr with a level and the wall-clock time (the daemon runs in the
//! foreground; a supervisor such as systemd adds its own timestamps and keeps the journal).

use std::sync::atomic::{AtomicU8, Ordering};

/// Verbosity: 0 errors, 1 warnings, 2 info, 3 debug. Process-wide, like stderr itself.
static LEVEL: AtomicU8 = AtomicU8::new(2);

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: u8, args: std::fmt::Arguments<'_>) {
    let tag = ["ERROR", "WARN", "INFO", "DEBUG"][level.min(3) as usize];
    let (secs, nanos) = crate::clock::host_realtime();
    let day = secs.rem_euclid(86_400);
    eprintln!(
        "{:02}:{:02}:{:02}.{:03} {tag} {args}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        nanos / 1_000_000
    );
}

#[macro_export]
macro_rules! error { ($($t:tt)*) => { if $crate::log::enabled(0) { $crate::log::write(0, format_args!($($t)*)) } } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { if $crate::log::enabled(1) { $crate::log::write(1, format_args!($($t)*)) } } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { if $crate::log::enabled(2) { $crate::log::write(2, format_args!($($t)*)) } } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled(3) { $crate::log::write(3, format_args!($($t)*)) } } }
