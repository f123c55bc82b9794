//! Tests: `[rate-limit]` keys and the conversion of `[access]` / `[acl.N]` into the core's
//! access policy.

use std::net::IpAddr;
use std::time::Duration;

use super::tests::{check_range, errs, ok};
use meridian_proto::access::Right;
use meridian_proto::wire::Mode;

#[test]
fn rate_limit_defaults_follow_chrony() {
    assert_eq!(
        ok("").rate_limit.to_core(),
        None,
        "off without a [rate-limit] table, as in chrony"
    );
    let c = ok("[rate-limit]\n");
    let core = c
        .rate_limit
        .to_core()
        .expect("on once the table is written");
    assert_eq!(core.interval, Duration::from_secs(8));
    assert_eq!(
        (core.burst, core.leak, core.kod, core.table_size),
        (8, 4, 4, 16384)
    );
}

#[test]
fn rate_limit_keys_and_ranges() {
    let c =
        ok("[rate-limit]\ninterval = \"2s\"\nburst = 4\nleak = 0\nkod = 0\ntable-size = 1024\n");
    let core = c.rate_limit.to_core().unwrap();
    assert_eq!(core.interval, Duration::from_secs(2));
    assert_eq!(
        (core.burst, core.leak, core.kod, core.table_size),
        (4, 0, 0, 1024)
    );
    assert_eq!(
        ok("[rate-limit]\nenable = false\n").rate_limit.to_core(),
        None
    );
    check_range(
        "[rate-limit]\ninterval = @\n",
        &["\"1ms\"", "\"500ms\"", "\"1h\""],
        &["\"0s\"", "\"2h\"", "8", "\"-1s\""],
    );
    check_range(
        "[rate-limit]\nburst = @\n",
        &["1", "1024"],
        &["0", "1025", "\"8\""],
    );
    check_range(
        "[rate-limit]\nleak = @\n",
        &["0", "2", "1024"],
        &["1", "-1", "1025"],
    );
    check_range(
        "[rate-limit]\nkod = @\n",
        &["0", "1", "1024"],
        &["-1", "1025"],
    );
    check_range(
        "[rate-limit]\ntable-size = @\n",
        &["16", "4194304"],
        &["15", "4194305"],
    );
    check_range("[rate-limit]\n@ = 1\n", &["burst"], &["bucket"]);
    let e = errs("[rate-limit]\nleak = 1\n");
    assert!(e[0].2.contains("use 0 (never) or 2..=1024"), "{e:?}");
}

#[test]
fn access_config_becomes_the_core_policy() {
    let c = ok(r#"
[access]
peer = 2001
synchronization = 2002
[acl.2001]
rules = [ { action = "permit", source = "198.18.0.1" } ]
[acl.2002]
rules = [ { action = "deny", source = "198.18.0.2" }, { action = "permit", source = "198.18.0.0/24" } ]
"#);
    let policy = c.access_policy();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        policy.check(ip("198.18.0.1"), Mode::Control),
        Ok(Right::Peer)
    );
    assert_eq!(
        policy.check(ip("198.18.0.3"), Mode::Client),
        Ok(Right::Synchronization)
    );
    assert!(policy.check(ip("198.18.0.3"), Mode::Control).is_err());
    assert!(policy.check(ip("198.18.0.2"), Mode::Client).is_err());
    assert!(policy.check(ip("::ffff:198.18.1.1"), Mode::Client).is_err());
    // Nothing configured: peer for everybody.
    assert_eq!(
        ok("").access_policy().check(ip("2001:2::1"), Mode::Client),
        Ok(Right::Peer)
    );
}
