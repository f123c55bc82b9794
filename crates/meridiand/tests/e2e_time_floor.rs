//! attacks.md D2 end to end (RFC 8633 s.5.2): a server whose clock is three years back is
//! refused by the client's time floor even with the panic threshold raised out of the way;
//! the client stays unsynchronized and says why. Two `meridiand` on simulated clocks in
//! network namespaces; no process can set the host clock.
//!
//! Needs root (network namespaces); prints SKIPPED otherwise.

mod support;

use std::time::Duration;

use support::{require_root, start_meridiand, status, temp_dir, wait_for, TestNet};

#[test]
fn a_server_years_back_is_refused_by_the_time_floor() {
    let test = "a_server_years_back_is_refused_by_the_time_floor";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let net = TestNet::new(test, 2);
    // The server's own clock runs 10^8 s (three years) behind the host's and it serves it as
    // a stratum-1 local reference.
    let server_body = "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\n\
                       initial-offset = \"-100000000s\"\nfrequency-ppm = 0.0\n\n\
                       [local-reference]\naddress = \"127.127.1.0\"\nstratum = 1\n";
    let (server, _) = start_meridiand(net.host(0), dir.path(), "server", server_body);
    let server_ip = net.host(0).ip(false);
    // The client would accept any offset up to 10^9 s: only the floor stands in the way.
    let client_body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"simulated\"\n\
         panic-threshold = \"1000000000s\"\n\n[[unicast-server]]\naddress = \"{server_ip}\"\n\
         iburst = true\nminpoll = 0\nmaxpoll = 2\n"
    );
    let (client, client_sock) = start_meridiand(net.host(1), dir.path(), "client", &client_body);

    let refused = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        client.log().contains("would set the clock before")
    });
    assert!(
        refused,
        "no refusal logged:\n{}\n{}",
        client.log(),
        server.log()
    );
    let st = status(&client_sock).expect("client status");
    assert_eq!(st["synchronized"], false, "{st}");
    assert!(
        !client.log().contains("stepping the clock"),
        "the clock was stepped:\n{}",
        client.log()
    );
    // The refusal is of the server's time, which was measured: the log names the offset.
    let log = client.log();
    assert!(
        log.contains("offset -100000000."),
        "the offset is named:\n{log}"
    );
}
