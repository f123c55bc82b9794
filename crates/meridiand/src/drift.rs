//! The drift file: the clock's learned frequency correction in ppm, read at start and
//! replaced atomically (temporary file in the same directory, fsync, rename).
//!
//! Format: one line holding the frequency correction in ppm (positive = the clock is made to
//! run faster), e.g. `-12.345678`, optionally followed by a second number, the estimated
//! error of that frequency in ppm. Whitespace around and between the numbers is ignored.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Largest frequency accepted from or written to the file, ppm (the kernel's limit).
pub const MAX_PPM: f64 = 500.0;

/// Outcome of reading the drift file. Never fatal: on anything but `Ok` the caller warns
/// (for `Corrupt`) and starts from zero.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftRead {
    /// The stored frequency correction, ppm.
    Ok(f64),
    /// No drift file yet (first start).
    Missing,
    /// The file exists but is unusable; the text says why.
    Corrupt(String),
}

/// Reads the drift file at `path`.
pub fn read(path: &Path) -> DriftRead {
    match fs::read_to_string(path) {
        Ok(text) => parse(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DriftRead::Missing,
        Err(e) => DriftRead::Corrupt(format!("cannot read {}: {e}", path.display())),
    }
}

/// Parses the contents of a drift file (public for the fuzz target `drift_file`).
pub fn parse(text: &str) -> DriftRead {
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return DriftRead::Corrupt("empty".into());
    };
    let ppm = match first.parse::<f64>() {
        Ok(v) if v.is_finite() => v,
        Ok(v) => return DriftRead::Corrupt(format!("frequency is {v}")),
        Err(_) => return DriftRead::Corrupt(format!("not a number: {:?}", truncate(first))),
    };
    if ppm.abs() > MAX_PPM {
        return DriftRead::Corrupt(format!("frequency {ppm} ppm beyond +-{MAX_PPM} ppm"));
    }
    if let Some(second) = words.next() {
        if !second.parse::<f64>().is_ok_and(f64::is_finite) {
            return DriftRead::Corrupt(format!("bad error estimate {:?}", truncate(second)));
        }
    }
    if let Some(extra) = words.next() {
        return DriftRead::Corrupt(format!("unexpected {:?}", truncate(extra)));
    }
    DriftRead::Ok(ppm)
}

/// At most 40 characters of a bad word, for the warning.
fn truncate(word: &str) -> &str {
    match word.char_indices().nth(40) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

/// Replaces the drift file at `path` with `ppm`, atomically: readers see either the old
/// file or the complete new one, never a partial write. A frequency that [`read`] would
/// call corrupt (non-finite or beyond +-500 ppm) is refused with `InvalidInput`.
pub fn write(path: &Path, ppm: f64) -> io::Result<()> {
    if !ppm.is_finite() || ppm.abs() > MAX_PPM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to store frequency {ppm} ppm"),
        ));
    }
    let temp = stage(path, &format!("{ppm:.6}\n"))?;
    commit(&temp, path)
}

/// The temporary file used while replacing `path`: same directory, hidden, tagged with the
/// process id so two daemons cannot clobber each other's half-written files.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "drift file path has no file name",
        )
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    Ok(path.with_file_name(temp_name))
}

/// First half of [`write`]: writes `contents` to the temporary file and flushes it to disk.
/// The target is untouched. On error the temporary file is removed.
fn stage(path: &Path, contents: &str) -> io::Result<PathBuf> {
    let temp = temp_path(path)?;
    let result = (|| {
        let mut f = fs::File::create(&temp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Second half of [`write`]: renames the staged file over the target and syncs the
/// directory so the rename itself survives a crash. On error the temporary file is removed.
fn commit(temp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = fs::rename(temp, path) {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    // Best effort: some filesystems refuse to fsync a directory; the data is already safe.
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "meridian-drift-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        fn entries(&self) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn corrupt(r: DriftRead) -> bool {
        matches!(r, DriftRead::Corrupt(_))
    }

    #[test]
    fn round_trip_keeps_microppm() {
        let dir = TempDir::new("rt");
        let path = dir.0.join("drift");
        for ppm in [-12.345678, 0.0, 499.999999, -500.0, 3.6e-6] {
            write(&path, ppm).unwrap();
            match read(&path) {
                DriftRead::Ok(v) => assert!((v - ppm).abs() <= 5e-7, "{ppm} -> {v}"),
                other => panic!("{ppm}: {other:?}"),
            }
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "0.000004\n");
    }

    #[test]
    /// attacks.md J3: the drift file is replaced atomically.
    fn replace_leaves_only_the_new_complete_file() {
        let dir = TempDir::new("replace");
        let path = dir.0.join("drift");
        write(&path, 10.0).unwrap();
        write(&path, -7.25).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "-7.250000\n");
        assert_eq!(dir.entries(), vec!["drift".to_string()]);
    }

    #[test]
    fn old_file_is_intact_until_the_rename() {
        let dir = TempDir::new("staged");
        let path = dir.0.join("drift");
        write(&path, 1.5).unwrap();
        // Stop between the two halves, as a crash would: the old value is still there.
        let temp = stage(&path, "99.000000\n").unwrap();
        assert_eq!(read(&path), DriftRead::Ok(1.5));
        assert_eq!(temp.parent(), path.parent(), "same filesystem for rename");
        commit(&temp, &path).unwrap();
        assert_eq!(read(&path), DriftRead::Ok(99.0));
        assert_eq!(dir.entries(), vec!["drift".to_string()]);
    }

    #[test]
    fn failed_write_leaves_no_temporary_file() {
        let dir = TempDir::new("fail");
        // The target is a non-empty directory: the rename must fail.
        let path = dir.0.join("drift");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "x").unwrap();
        assert!(write(&path, 1.0).is_err());
        assert_eq!(dir.entries(), vec!["drift".to_string()]);
        // A missing directory fails cleanly too.
        assert!(write(&dir.0.join("nodir").join("drift"), 1.0).is_err());
        assert_eq!(dir.entries(), vec!["drift".to_string()]);
    }

    #[test]
    fn refuses_to_store_what_it_would_not_read() {
        let dir = TempDir::new("refuse");
        let path = dir.0.join("drift");
        for bad in [f64::NAN, f64::INFINITY, 500.5, -1e6] {
            assert_eq!(
                write(&path, bad).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(read(&path), DriftRead::Missing);
        assert!(dir.entries().is_empty());
    }

    #[test]
    /// attacks.md J3: a missing, empty or corrupt drift file.
    fn missing_empty_and_garbage_files() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("drift");
        assert_eq!(read(&path), DriftRead::Missing);
        let cases = [
            "",
            "  \n",
            "abc\n",
            "12.5abc\n",
            "NaN\n",
            "inf\n",
            "-inf\n",
            "500.001\n",
            "-1e9\n",
            "1.0 x\n",
            "1.0 2.0 3.0\n",
            "\u{0}\u{1}\u{2}",
        ];
        for text in cases {
            fs::write(&path, text).unwrap();
            assert!(corrupt(read(&path)), "{text:?} should be corrupt");
        }
        // A directory where the file should be cannot be read: corrupt, not a panic.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(corrupt(read(&path)));
    }

    #[test]
    fn accepts_chrony_and_ntpd_style_lines() {
        let dir = TempDir::new("good");
        let path = dir.0.join("drift");
        for (text, want) in [
            ("-12.345678\n", -12.345678),
            ("  -12.345678     0.042000\n", -12.345678),
            ("7.125", 7.125),
            ("500\n", 500.0),
            ("-0.000\n", 0.0),
        ] {
            fs::write(&path, text).unwrap();
            assert_eq!(read(&path), DriftRead::Ok(want), "{text:?}");
        }
    }
}
