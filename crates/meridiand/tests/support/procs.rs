//! Processes started by a test: a registry owned by the network guard, and `Proc` handles to inspect or stop one early.
//!
//! The registry keeps each `std::process::Child` unreaped until it has been
//! stopped, so a pid it signals is always one this test started (a pid cannot
//! be reused before its zombie is reaped).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long a SIGTERM'd process may take to exit before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

struct Entry {
    name: String,
    child: Child,
}

/// Shared list of the processes started in one [`super::TestNet`].
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Vec<Entry>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pids: Vec<u32> = self.lock().iter().map(|e| e.child.id()).collect();
        write!(f, "Registry{pids:?}")
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panicking test thread must not keep the guard from cleaning up.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `cmd` with stdout/stderr appended to `log` and registers it.
    pub fn spawn(&self, mut cmd: Command, name: &str, log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
        let err = file.try_clone().expect("duplicate log file descriptor");
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        self.lock().push(Entry {
            name: name.to_owned(),
            child,
        });
        Proc {
            pid,
            name: name.to_owned(),
            log: log.to_owned(),
            registry: self.clone(),
        }
    }

    /// `None` while running, its exit status once it has exited.
    fn try_wait(&self, pid: u32) -> Option<ExitStatus> {
        let mut list = self.lock();
        let entry = list.iter_mut().find(|e| e.child.id() == pid)?;
        entry.child.try_wait().ok().flatten()
    }

    /// Stops one process (SIGTERM, SIGKILL after [`GRACE`]), reaps it and
    /// removes it from the registry. Returns its exit status.
    fn stop(&self, pid: u32) -> Option<ExitStatus> {
        let entry = {
            let mut list = self.lock();
            let pos = list.iter().position(|e| e.child.id() == pid)?;
            list.remove(pos)
        };
        Some(stop_entry(entry))
    }

    /// Stops every registered process.
    pub fn stop_all(&self) {
        let entries: Vec<Entry> = std::mem::take(&mut *self.lock());
        for e in entries {
            stop_entry(e);
        }
    }
}

fn stop_entry(mut e: Entry) -> ExitStatus {
    if let Ok(Some(status)) = e.child.try_wait() {
        return status;
    }
    let pid = i32::try_from(e.child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) on a child we spawned and have not reaped yet.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let exited = super::wait_for(GRACE, Duration::from_millis(20), || {
        matches!(e.child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        eprintln!("{} (pid {pid}) ignored SIGTERM; sending SIGKILL", e.name);
        let _ = e.child.kill();
    }
    e.child.wait().expect("reap child")
}

/// Handle on a process started with [`super::Host::spawn`]; the network's
/// guard owns the process itself, so dropping a `Proc` does not stop it.
#[derive(Debug)]
pub struct Proc {
    pid: u32,
    name: String,
    log: PathBuf,
    registry: Registry,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// False once the process has exited (or was stopped).
    pub fn is_running(&self) -> bool {
        let list = self.registry.lock();
        let registered = list.iter().any(|e| e.child.id() == self.pid);
        drop(list);
        registered && self.registry.try_wait(self.pid).is_none()
    }

    /// Waits until the log contains `needle`; false on timeout or when the
    /// process exits first.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let mut found = false;
        super::wait_for(timeout, Duration::from_millis(50), || {
            found = self.log().contains(needle);
            found || !self.is_running()
        });
        found || self.log().contains(needle)
    }

    /// Stops the process now (SIGTERM, then SIGKILL) and returns its exit
    /// status; `None` if it had already been stopped.
    pub fn stop(&self) -> Option<ExitStatus> {
        self.registry.stop(self.pid)
    }

    /// A panic message helper: name, pid and the log.
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {}), log {}:\n{}",
            self.name,
            self.pid,
            self.log.display(),
            self.log()
        )
    }
}
