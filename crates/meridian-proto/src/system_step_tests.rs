//! System-level tests of `System::handle_external_step`: a step of the clock made outside
//! the core moves the stored samples with it, a leap second executed by the kernel does not.

use crate::system::System;
use crate::system_start_tests::first_burst;
use crate::wire::Leap;

/// A system with one server that is `ahead` seconds ahead of the local clock, after `n`
/// exchanges 16 s apart.
fn system_with_samples(n: usize, ahead: f64) -> System {
    first_burst(ahead, &vec![0.0; n]).0
}

fn stored_offsets(s: &System) -> Vec<f64> {
    let (_, source) = s.sources().next().expect("one source");
    source.filter.samples().map(|x| x.offset).collect()
}

#[test]
fn an_external_step_moves_the_stored_samples_with_the_clock() {
    let mut s = system_with_samples(5, 0.0);
    let before = stored_offsets(&s);
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|o| o.abs() < 1e-3), "{before:?}");
    // Someone sets the clock forward 100 s: the server now reads 100 s behind us.
    assert!(s.handle_external_step(100.0));
    let after = stored_offsets(&s);
    for (b, a) in before.iter().zip(&after) {
        assert!((a - (b - 100.0)).abs() < 1e-9, "{b} -> {a}");
    }
    // Nothing to do for no step or nonsense.
    assert!(!s.handle_external_step(0.0));
    assert!(!s.handle_external_step(f64::NAN));
    assert_eq!(stored_offsets(&s), after);
}

#[test]
fn a_leap_second_executed_by_the_kernel_is_not_an_external_step() {
    let mut s = system_with_samples(5, 0.0);
    let before = stored_offsets(&s);
    s.vars.leap = Leap::AddSecond;
    assert!(!s.handle_external_step(-1.0), "the inserted second");
    assert_eq!(stored_offsets(&s), before);
    // Anything else while a leap is announced is still an external step.
    assert!(s.handle_external_step(-5.0));
    assert!((stored_offsets(&s)[0] - (before[0] + 5.0)).abs() < 1e-9);
}
