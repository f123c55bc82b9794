//! The daemon's event loop: one thread, poll(2) over every socket, timers from the protocol
//! core's deadlines. Clock adjustments from the core are executed here, on the one clock
//! the daemon owns. Nothing here blocks except poll(2) itself, so the daemon runs unchanged
//! under the clknetsim simulator.

use crate::clock::{Clock, ReadOnlyClock, SimulatedClock, SyncStatus, SystemClock};
use crate::config::{ClockDriverKind, Config};
use crate::control::ControlServer;
use crate::entropy::OsEntropy;
use crate::instance::{ClientSpec, Instance, SocketRef};
use crate::{drift, snapshot};
use meridian_proto::client::ClientConfig;
use meridian_proto::discipline::{ClockAdjustment, DisciplineConfig};
use meridian_proto::report::{ControlAnswer, ControlRequest};
use meridian_proto::system::{LocalReference, SystemConfig};
use meridian_proto::time::{Mono, PollInterval};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by the signal handlers; the only process-wide state, as signals are process-wide.
static TERMINATE: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::Relaxed);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    // SAFETY: the handlers only store to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_terminate as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_terminate as *const () as libc::sighandler_t,
        );
        libc::signal(libc::SIGHUP, on_reload as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// CLOCK_MONOTONIC as a [`Mono`].
pub fn mono_now() -> Mono {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Mono::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// How often the frequency is saved to the drift file.
const DRIFT_INTERVAL: Duration = Duration::from_secs(3600);
/// Upkeep runs at least this often (local reference refresh, lost sources).
const TICK: Duration = Duration::from_secs(1);

pub struct Runtime {
    config: Config,
    clock: Box<dyn Clock>,
    instance: Instance,
    control: Option<ControlServer>,
    rng: OsEntropy,
    next_drift_write: Mono,
}

/// Resolves a configured server address (an IP address or a host name) with its port.
pub fn resolve(address: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (address, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} has no address"))
}

fn open_clock(config: &Config) -> std::io::Result<Box<dyn Clock>> {
    Ok(match config.clock.driver {
        ClockDriverKind::System => Box::new(SystemClock::open()?),
        ClockDriverKind::ReadOnly => Box::new(ReadOnlyClock::new()),
        ClockDriverKind::Simulated => Box::new(SimulatedClock::new(
            config.clock.initial_offset,
            config.clock.frequency_ppm,
        )),
    })
}

impl Runtime {
    pub fn new(config: Config) -> Result<Self, String> {
        let mut clock = open_clock(&config).map_err(|e| format!("cannot open the clock: {e}"))?;
        let initial_frequency = match &config.service.drift_file {
            Some(path) => match drift::read(path) {
                drift::DriftRead::Ok(ppm) => {
                    crate::info!("frequency {ppm:.3} ppm from {}", path.display());
                    ppm
                }
                drift::DriftRead::Missing => 0.0,
                drift::DriftRead::Corrupt(why) => {
                    crate::warn!(
                        "ignoring drift file {}: {why}; starting from 0 ppm",
                        path.display()
                    );
                    0.0
                }
            },
            None => clock.frequency_ppm(),
        };
        if config.clock.driver != ClockDriverKind::ReadOnly {
            clock
                .set_frequency_ppm(initial_frequency)
                .map_err(|e| format!("cannot set the frequency: {e}"))?;
        }
        let system_config = SystemConfig {
            precision: clock.precision_log2(),
            local_reference: config.local_reference.as_ref().map(|l| LocalReference {
                stratum: l.stratum,
                address: l.address,
            }),
            discipline: DisciplineConfig {
                step_threshold: config.clock.step_threshold,
                panic_threshold: config.clock.panic_threshold,
                ..DisciplineConfig::default()
            },
            initial_frequency_ppm: initial_frequency,
            min_survivors: 1,
        };
        let keys = crate::auth::key_table(&config.authentication)?;
        let mut clients = Vec::new();
        for server in config
            .unicast_servers
            .iter()
            .filter(|s| s.vpn_instance.is_none())
        {
            let remote = resolve(&server.address, server.port)?;
            clients.push(ClientSpec {
                label: server.address.clone(),
                remote,
                config: ClientConfig {
                    version: server.version,
                    minpoll: PollInterval::new(server.minpoll),
                    maxpoll: PollInterval::new(server.maxpoll),
                    iburst: server.iburst,
                    key: crate::auth::association_key(&keys, server.key_id)?,
                },
                prefer: server.priority,
            });
        }
        let mut rng = OsEntropy::new();
        let now = mono_now();
        let mut instance = Instance::new(
            None,
            system_config,
            config.service.port,
            config.service.dscp,
            &clients,
            now,
            &mut rng,
        )
        .map_err(|e| e.to_string())?;
        instance.server_keys = keys;
        let control = match ControlServer::bind(&config.control.socket) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::warn!(
                    "control socket {} unavailable: {e}",
                    config.control.socket.display()
                );
                None
            }
        };
        crate::info!(
            "meridiand {} started: clock {}, port {}, {} server(s){}",
            env!("CARGO_PKG_VERSION"),
            clock.name(),
            config.service.port,
            clients.len(),
            if config.local_reference.is_some() {
                ", local reference"
            } else {
                ""
            }
        );
        Ok(Self {
            config,
            clock,
            instance,
            control,
            rng,
            next_drift_write: now + DRIFT_INTERVAL,
        })
    }

    /// Runs until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<(), String> {
        install_signal_handlers();
        let mut now = mono_now();
        self.instance
            .on_timeout(now, self.clock.as_ref(), &mut self.rng);
        while !TERMINATE.load(Ordering::Relaxed) {
            if RELOAD.swap(false, Ordering::Relaxed) {
                crate::warn!(
                    "SIGHUP: configuration reload is not implemented yet; nothing changed"
                );
            }
            let deadline = self
                .instance
                .next_deadline()
                .map_or(now + TICK, |d| d.min(now + TICK));
            let wait = deadline.saturating_since(now);
            self.wait_and_dispatch(wait)?;
            now = mono_now();
            if now >= deadline {
                self.instance
                    .on_timeout(now, self.clock.as_ref(), &mut self.rng);
            }
            if now >= self.next_drift_write {
                self.save_drift();
                self.next_drift_write = now + DRIFT_INTERVAL;
            }
        }
        crate::info!("terminating");
        self.save_drift();
        Ok(())
    }

    fn wait_and_dispatch(&mut self, wait: Duration) -> Result<(), String> {
        let sockets = self.instance.fds();
        let control_fds = self.control.as_ref().map(|c| c.fds()).unwrap_or_default();
        let mut pollfds: Vec<libc::pollfd> = sockets
            .iter()
            .map(|(fd, _)| *fd)
            .chain(control_fds.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Round up to whole milliseconds so we never spin just short of a deadline.
        let timeout_ms = if self.control.as_ref().is_some_and(|c| c.busy()) {
            wait.as_millis().min(50) as libc::c_int
        } else {
            wait.as_nanos().div_ceil(1_000_000).min(60_000) as libc::c_int
        };
        // SAFETY: pollfds is a live, correctly sized array of pollfd.
        let n = unsafe {
            libc::poll(
                pollfds.as_mut_ptr(),
                pollfds.len() as libc::nfds_t,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return if err.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(format!("poll: {err}"))
            };
        }
        let mut control_ready = false;
        for (i, pfd) in pollfds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            if let Some((_, which)) = sockets.get(i) {
                self.on_socket(*which);
            } else {
                control_ready = true;
            }
        }
        if control_ready || self.control.as_ref().is_some_and(|c| c.busy()) {
            self.service_control();
        }
        Ok(())
    }

    fn on_socket(&mut self, which: SocketRef) {
        let adjustments =
            self.instance
                .on_readable(which, self.clock.as_ref(), mono_now, &mut self.rng);
        for adj in adjustments {
            self.apply(adj);
        }
    }

    /// Executes a clock adjustment decided by the core.
    fn apply(&mut self, adjustment: ClockAdjustment) {
        let result = match adjustment {
            ClockAdjustment::None => return,
            ClockAdjustment::Frequency { frequency_ppm } => {
                self.clock.set_frequency_ppm(frequency_ppm)
            }
            ClockAdjustment::Step {
                offset,
                frequency_ppm,
            } => {
                crate::warn!("stepping the clock by {offset:+.6} s");
                self.clock
                    .step(offset)
                    .and_then(|_| self.clock.set_frequency_ppm(frequency_ppm))
            }
            ClockAdjustment::Panic { offset } => {
                crate::error!(
                    "offset {offset:+.3} s exceeds the panic threshold of {} s: not adjusting the clock",
                    self.config.clock.panic_threshold
                );
                return;
            }
        };
        if let Err(e) = result {
            crate::error!("clock adjustment failed: {e}");
        }
        let vars = self.instance.system.vars();
        let status = SyncStatus {
            synchronized: self.instance.system.synchronized(),
            leap: vars.leap,
            max_error: vars.root_delay / 2.0 + vars.root_dispersion,
            est_error: vars.jitter,
        };
        if let Err(e) = self.clock.set_sync_status(&status) {
            crate::debug!("cannot publish the sync status: {e}");
        }
    }

    fn service_control(&mut self) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let (instance, clock) = (&self.instance, self.clock.as_ref());
        control.service(|request| {
            let now = mono_now();
            match request {
                ControlRequest::Status => ControlAnswer::Status(snapshot::status(instance, clock, now)),
                ControlRequest::Sessions => ControlAnswer::Sessions { sessions: snapshot::sessions(instance, now) },
                ControlRequest::Reload => ControlAnswer::Error {
                    message: "reload is not implemented yet: restart meridiand to apply a new configuration".into(),
                },
            }
        });
    }

    fn save_drift(&mut self) {
        let Some(path) = self.config.service.drift_file.clone() else {
            return;
        };
        if !self.instance.system.synchronized() {
            return;
        }
        let ppm = self.instance.system.discipline().frequency_ppm();
        if let Err(e) = drift::write(&path, ppm) {
            crate::warn!("cannot write the drift file {}: {e}", path.display());
        }
    }
}
