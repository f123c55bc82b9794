//! The daemon's event loop: one thread, poll(2) over every socket, timers from the protocol
//! core's deadlines. Clock adjustments from the core are executed here, on the one clock
//! the daemon owns. Nothing here blocks except poll(2) itself, so the daemon runs unchanged
//! under the clknetsim simulator. With `[service] server-threads` (off by default), extra
//! threads answer client requests beside the loop (`server_threads.rs`); the loop publishes
//! the server state for them and handles whatever they hand over.

use crate::clock::stepwatch::StepWatch;
use crate::clock::{Clock, SyncStatus};
use crate::config::{ClockDriverKind, Config};
use crate::control::ControlServer;
use crate::entropy::OsEntropy;
use crate::instance::{Instance, SocketRef};
use crate::metrics::{self, MetricsServer, ServerCounterView};
use crate::shared::{PublishedState, SnapshotCell};
use crate::{drift, snapshot, startup};
use meridian_proto::discipline::ClockAdjustment;
use meridian_proto::gate::ServerGate;
use meridian_proto::report::{ControlAnswer, ControlRequest};
use meridian_proto::system::System;
use meridian_proto::time::Mono;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// CLOCK_MONOTONIC_RAW as a [`Mono`]. Not CLOCK_MONOTONIC: that clock is slewed by our own
/// frequency corrections (by up to 8 % during a fast slew), so intervals measured on it would
/// shrink and stretch with them; the raw clock runs at the oscillator's own rate.
pub fn mono_now() -> Mono {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_RAW, &mut ts) };
    Mono::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Keeps only the capabilities the configuration needs from now on (see `caps.rs`).
fn drop_privileges(config: &Config) {
    use crate::config::VpnBinding;
    let uses = |f: fn(&VpnBinding) -> bool| config.vpn_instances.values().any(|v| f(&v.binding));
    let keep = crate::caps::needed(
        config.clock.driver == ClockDriverKind::System,
        config.service.port,
        uses(|b| matches!(b, VpnBinding::Netns(_))),
        uses(|b| matches!(b, VpnBinding::Vrf(_))),
    );
    match crate::caps::drop_all_but(&keep) {
        Ok(kept) => {
            let names: Vec<&str> = kept.iter().map(|&c| crate::caps::name(c)).collect();
            crate::info!(
                "capabilities kept: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(" ")
                }
            );
        }
        Err(e) => crate::warn!("cannot drop capabilities: {e}"),
    }
}

/// How often the frequency is saved to the drift file.
const DRIFT_INTERVAL: Duration = Duration::from_secs(3600);
/// Upkeep runs at least this often (local reference refresh, lost sources).
const TICK: Duration = Duration::from_secs(1);
/// How often client sockets are checked against their interfaces' addresses.
const INTERFACE_CHECK: Duration = Duration::from_secs(3);

pub struct Runtime {
    config: Config,
    /// Where the configuration was read from (read again on reload).
    config_path: std::path::PathBuf,
    clock: Box<dyn Clock>,
    /// The clock algorithm, shared by every instance.
    system: System,
    /// The public network first, then the VPN instances.
    instances: Vec<Instance>,
    control: Option<ControlServer>,
    metrics: Option<MetricsServer>,
    /// The poll set, kept between wake-ups so that building it allocates nothing.
    poll_sockets: Vec<(usize, RawFd, SocketRef)>,
    pollfds: Vec<libc::pollfd>,
    rng: OsEntropy,
    next_drift_write: Mono,
    next_interface_check: Mono,
    /// Notices steps of the clock made behind the daemon's back.
    step_watch: StepWatch,
    /// The server state as published to the server threads (`None`: no threads).
    server_state: Option<Arc<SnapshotCell<PublishedState>>>,
}

impl Runtime {
    pub fn new(config: Config, config_path: &std::path::Path) -> Result<Self, String> {
        let mut clock =
            startup::open_clock(&config).map_err(|e| format!("cannot open the clock: {e}"))?;
        let frequency = startup::initial_frequency(&config, clock.as_ref());
        if config.clock.driver != ClockDriverKind::ReadOnly {
            clock
                .set_frequency_ppm(frequency)
                .map_err(|e| format!("cannot set the frequency: {e}"))?;
        }
        let mut system = System::new(startup::system_config(
            &config,
            clock.precision_log2(),
            frequency,
        ));
        let mut rng = OsEntropy::new();
        let now = mono_now();
        let mut instances = startup::open_instances(&config, &mut system, now, &mut rng)?;
        // Access rights, rate limiting and disabled interfaces, per instance: each VPN
        // instance has its own rate-limit table.
        for instance in &mut instances {
            let receive_disabled = config
                .interfaces
                .iter()
                .filter(|i| i.vpn_instance == instance.name && !i.receive)
                .map(|i| i.name.clone())
                .collect();
            let gate = ServerGate::new(
                config.access_policy(),
                config.rate_limit.to_core(),
                &mut rng,
            );
            instance.set_server_policy(gate, receive_disabled);
            instance.mode6 = config.control.mode6;
        }
        let metrics = match config.metrics.listen {
            None => None,
            Some(addr) => Some(
                MetricsServer::bind(addr)
                    .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?,
            ),
        };
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
        drop_privileges(&config);
        // After the privileges are dropped: capabilities belong to each thread, and a thread
        // started earlier would keep them all.
        let server_state = if config.service.server_threads > 0 {
            let cell = SnapshotCell::new(PublishedState::of(&system, now));
            for instance in &mut instances {
                instance
                    .start_server_threads(&cell)
                    .map_err(|e| format!("cannot start the server threads: {e}"))?;
            }
            Some(cell)
        } else {
            None
        };
        crate::info!(
            "meridiand {} started: clock {}, port {}, {} server(s), {} VPN instance(s){}",
            env!("CARGO_PKG_VERSION"),
            clock.name(),
            config.service.port,
            system.sources().count(),
            instances.len() - 1,
            if config.local_reference.is_some() {
                ", local reference"
            } else {
                ""
            }
        );
        Ok(Self {
            config,
            config_path: config_path.to_owned(),
            clock,
            system,
            instances,
            control,
            metrics,
            poll_sockets: Vec::new(),
            pollfds: Vec::new(),
            rng,
            next_drift_write: now + DRIFT_INTERVAL,
            next_interface_check: now + INTERFACE_CHECK,
            step_watch: StepWatch::new(),
            server_state,
        })
    }

    /// Runs until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<(), String> {
        install_signal_handlers();
        let mut now = mono_now();
        self.on_timeout(now);
        while !TERMINATE.load(Ordering::Relaxed) {
            if RELOAD.swap(false, Ordering::Relaxed) {
                match self.reload() {
                    Ok(summary) => crate::info!("SIGHUP: {summary}"),
                    Err(why) => crate::error!("SIGHUP: {}", why.trim_end()),
                }
            }
            let deadline = [self.system.poll_timeout(), self.system.clock_timeout()]
                .into_iter()
                .chain(self.instances.iter().map(Instance::broadcast_timeout))
                .flatten()
                .fold(now + TICK, Mono::min);
            let wait = deadline.saturating_since(now);
            self.wait_and_dispatch(wait)?;
            now = mono_now();
            self.check_external_step(now);
            if now >= deadline {
                self.on_timeout(now);
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
        // The poll set is rebuilt in place at every wake-up: no allocation once it has grown.
        let mut sockets = std::mem::take(&mut self.poll_sockets);
        let mut pollfds = std::mem::take(&mut self.pollfds);
        sockets.clear();
        for (i, inst) in self.instances.iter().enumerate() {
            sockets.extend(inst.fds().map(|(fd, which)| (i, fd, which)));
        }
        let service_fds = self
            .control
            .iter()
            .flat_map(|c| c.fds())
            .chain(self.metrics.iter().flat_map(|m| m.fds()));
        pollfds.clear();
        pollfds.extend(
            sockets
                .iter()
                .map(|(_, fd, _)| *fd)
                .chain(service_fds)
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        // Round up to whole milliseconds so we never spin just short of a deadline.
        let busy = self.control.as_ref().is_some_and(|c| c.busy())
            || self.metrics.as_ref().is_some_and(|m| m.busy());
        let timeout_ms = if busy {
            wait.as_millis().min(50) as libc::c_int
        } else {
            // `wait` is CLOCK_MONOTONIC_RAW time; poll(2) counts CLOCK_MONOTONIC, which our
            // own frequency corrections slew.
            let wait = wait.mul_f64(self.clock.monotonic_rate().clamp(0.5, 2.0));
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
            (self.poll_sockets, self.pollfds) = (sockets, pollfds);
            return if err.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(format!("poll: {err}"))
            };
        }
        let mut service_ready = false;
        for (i, pfd) in pollfds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            if let Some((instance, _, which)) = sockets.get(i) {
                self.on_socket(*instance, *which);
            } else {
                service_ready = true;
            }
        }
        (self.poll_sockets, self.pollfds) = (sockets, pollfds);
        if service_ready || busy {
            self.service_control();
            self.service_metrics();
        }
        Ok(())
    }

    /// Compares the clock with CLOCK_MONOTONIC_RAW since the last loop iteration: a jump the
    /// daemon did not make (someone set the clock) is passed to the core, which moves its
    /// stored samples with it.
    fn check_external_step(&mut self, now: Mono) {
        let (clock_now, ppm) = (self.clock.now(), self.clock.frequency_ppm());
        if let Some(jump) = self.step_watch.check(now, clock_now, ppm) {
            let taken = self.system.handle_external_step(jump);
            crate::warn!(
                "the clock was stepped by {jump:+.6} s outside meridiand{}",
                if taken {
                    ""
                } else {
                    " (a leap second: ignored)"
                }
            );
        }
    }

    /// Sends the requests that are due, each through its instance, and runs the upkeep.
    fn on_timeout(&mut self, now: Mono) {
        let end_of_slew = self.system.handle_clock_timeout(now);
        self.apply(end_of_slew);
        let local_now = self.clock.now();
        for (id, bytes) in self.system.handle_timeout(now, local_now, &mut self.rng) {
            if !self
                .instances
                .iter()
                .any(|inst| inst.send_request(id, &bytes))
            {
                crate::debug!("no socket for source {id:?}");
            }
        }
        // Interfaces that went down or up or changed addresses: reopen client sockets.
        if now >= self.next_interface_check {
            self.next_interface_check = now + INTERFACE_CHECK;
            for inst in &mut self.instances {
                inst.refresh_sources(self.config.service.dscp);
            }
        }
        // Broadcast/multicast servers and group memberships.
        for inst in &mut self.instances {
            inst.broadcast_tick(now, &self.system, self.clock.as_ref(), &mut self.rng);
        }
        let expired = self.system.expire_dynamic(now);
        if !expired.is_empty() {
            crate::info!("{} idle dynamic association(s) removed", expired.len());
            for inst in &mut self.instances {
                inst.forget_sources(&expired);
            }
        }
        if self.system.housekeeping(now, local_now) {
            crate::info!(
                "synchronization source is now {:?}",
                self.system.vars().sync
            );
        }
        if self.server_state.is_some() {
            for inst in &mut self.instances {
                inst.refresh_thread_policy(false);
            }
        }
        self.publish_server_state(now);
    }

    /// Publishes the server state to the server threads, if there are any and it changed
    /// (more than the root dispersion's regular growth).
    fn publish_server_state(&self, now: Mono) {
        let Some(cell) = &self.server_state else {
            return;
        };
        let new = PublishedState::of(&self.system, now);
        if !cell.load().same_as(&new) {
            cell.publish(new);
        }
    }

    fn on_socket(&mut self, instance: usize, which: SocketRef) {
        let (system, clock, rng) = (&mut self.system, self.clock.as_ref(), &mut self.rng);
        let adjustments = self.instances[instance].on_readable(which, system, clock, mono_now, rng);
        let changed = !adjustments.is_empty();
        for adj in adjustments {
            self.apply(adj);
        }
        if changed {
            self.publish_server_state(mono_now());
        }
    }

    /// Executes a clock adjustment decided by the core.
    fn apply(&mut self, adjustment: ClockAdjustment) {
        let result = match adjustment {
            ClockAdjustment::None => return,
            ClockAdjustment::Frequency { frequency_ppm } => {
                crate::debug!(
                    "offset {:+.6} s, frequency {frequency_ppm:+.3} ppm",
                    self.system.vars().offset
                );
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
            ClockAdjustment::BeforeFloor { offset } => {
                crate::error!(
                    "offset {offset:+.3} s would set the clock before {}: not adjusting the clock",
                    crate::startup::TIME_FLOOR_TEXT
                );
                return;
            }
        };
        if let Err(e) = result {
            crate::error!("clock adjustment failed: {e}");
        }
        // Our own step or frequency change: not something to report as external.
        self.step_watch
            .rebase(mono_now(), self.clock.now(), self.clock.frequency_ppm());
        let vars = self.system.vars();
        let status = SyncStatus {
            synchronized: self.system.synchronized(),
            leap: vars.leap,
            max_error: vars.root_delay / 2.0 + vars.root_dispersion,
            est_error: vars.jitter,
        };
        if let Err(e) = self.clock.set_sync_status(&status) {
            crate::debug!("cannot publish the sync status: {e}");
        }
    }

    fn service_metrics(&mut self) {
        let Some(server) = self.metrics.as_mut() else {
            return;
        };
        let (system, instances, clock) = (&self.system, &self.instances, self.clock.as_ref());
        server.service(|| {
            let now = mono_now();
            let status = snapshot::status(system, instances, clock, now);
            let sessions = snapshot::sessions(system, instances, now);
            let counters: Vec<ServerCounterView<'_>> = instances
                .iter()
                .map(|inst| {
                    let c = inst.server_counters();
                    ServerCounterView {
                        vpn_instance: inst.name.as_deref(),
                        received: c.received,
                        answered: c.answered,
                        dropped: c.dropped.iter().map(|(k, v)| (*k, *v)).collect(),
                        rate_limit_entries: inst.rate_limit_entries().map(|n| n as u64),
                    }
                })
                .collect();
            metrics::render(&status, &sessions, &counters)
        });
    }

    fn service_control(&mut self) {
        // Taken out for the call, so that a reload may change the rest of `self`.
        let Some(mut control) = self.control.take() else {
            return;
        };
        control.service(|request| self.answer(request));
        self.control = Some(control);
    }

    fn answer(&mut self, request: ControlRequest) -> ControlAnswer {
        let now = mono_now();
        let (system, instances, clock) = (&self.system, &self.instances, self.clock.as_ref());
        match request {
            ControlRequest::Status => {
                ControlAnswer::Status(snapshot::status(system, instances, clock, now))
            }
            ControlRequest::Sessions => ControlAnswer::Sessions {
                sessions: snapshot::sessions(system, instances, now),
            },
            ControlRequest::Reload => match self.reload() {
                Ok(message) => {
                    crate::info!("{message}");
                    ControlAnswer::Reloaded { message }
                }
                Err(message) => {
                    crate::error!("reload refused: {}", message.trim_end());
                    ControlAnswer::Error { message }
                }
            },
        }
    }

    fn save_drift(&mut self) {
        let Some(path) = self.config.service.drift_file.clone() else {
            return;
        };
        if !self.system.synchronized() {
            return;
        }
        let ppm = self.system.discipline().frequency_ppm();
        if let Err(e) = drift::write(&path, ppm) {
            crate::warn!("cannot write the drift file {}: {e}", path.display());
        }
    }
}

#[path = "runtime_reload.rs"]
mod reload;
