//! Poll adaptation of the [`System`]: how often the sources are asked, from the discipline's
//! model of the clock (frequency uncertainty and wander) against the measurement noise.

use crate::discipline::DisciplineState;
use crate::system::System;
use crate::time::{NtpDuration, PollInterval};

/// Updates in a row that must allow a longer poll before it is lengthened.
const POLL_AGREE: i32 = 2;

impl System {
    /// Poll adaptation: poll as seldom as the clock allows. From the discipline's model,
    /// the clock's error can grow between two samples T apart by about
    /// `g(T) = sd(frequency) * T + sqrt(wander * T^3 / 3)` (a frequency error, plus a random
    /// walk of the frequency). Sampling faster than that growth matters only wastes the
    /// server's time; sampling slower lets the clock wander further than the measurements
    /// are noisy. So: lengthen the poll (after two updates that agree) while `g(2T)` stays
    /// below half the measurement noise, shorten it at once when `g(T)` exceeds the noise.
    /// Never lengthen it while the discipline is still training: a noisy path hides a
    /// frequency error of ppm from `g`, yet a network that goes away then leaves the clock
    /// to run for hours on that frequency (docs/algorithms.md, 3b).
    pub(crate) fn adapt_poll(&mut self, noise: f64) {
        let precision = NtpDuration::from_exponent(self.config.precision).to_seconds();
        let noise = noise.max(precision).max(1e-7);
        let sd_freq = self.discipline.frequency_sd_ppm() * 1e-6;
        let (wander, _) = self.discipline.noise_model();
        let growth = |t: f64| sd_freq * t + (wander.max(0.0) * t * t * t / 3.0).sqrt();
        let t = self.vars.poll.as_seconds();
        let training = self.discipline.state() == DisciplineState::Training;
        if growth(t) > noise {
            self.poll_counter = 0;
            self.vars.poll = self.vars.poll.dec(PollInterval::MIN);
        } else if growth(2.0 * t) < noise / 2.0 && !training {
            self.poll_counter += 1;
            if self.poll_counter >= POLL_AGREE {
                self.poll_counter = 0;
                self.vars.poll = self.vars.poll.inc(PollInterval::MAX);
            }
        } else {
            self.poll_counter = 0;
        }
        // Only configured associations and broadcast clients (whose poll is the server's
        // interval) bound the system poll (passive ones follow their peer).
        let configured = || {
            self.sources()
                .map(|(_, s)| &s.association)
                .filter(|a| a.configured() || a.as_broadcast().is_some())
        };
        let max = configured()
            .map(|a| a.config().maxpoll)
            .max()
            .unwrap_or(PollInterval::MAX);
        let min = configured()
            .map(|a| a.config().minpoll)
            .min()
            .unwrap_or(PollInterval::MIN);
        self.vars.poll = self.vars.poll.max(min).min(max);
        for s in self.sources.iter_mut().flatten() {
            s.association.set_system_poll(self.vars.poll);
        }
    }
}
