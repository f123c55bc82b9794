//! Tests that need no root: `meridiand` processes on 127.0.0.1 with unprivileged ports (like
//! the README's demo): a client synchronizes to a server, and its state is scraped as
//! Prometheus metrics.

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{status, temp_dir, wait_for, write_config};

/// A free UDP (or TCP) port on 127.0.0.1, chosen by the kernel.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Daemon {
    let log = std::fs::File::create(log).unwrap();
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_meridiand"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start meridiand"),
    )
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn client_on_loopback_synchronizes_and_exports_metrics() {
    let dir = temp_dir("client_on_loopback_synchronizes_and_exports_metrics");
    let (server_port, client_port, metrics_port) =
        (free_udp_port(), free_udp_port(), free_tcp_port());
    let (server_cfg, _) = write_config(
        dir.path(),
        "server",
        &format!(
            "[service]\nport = {server_port}\n\n[clock]\ndriver = \"read-only\"\n\n\
             [local-reference]\naddress = \"127.127.1.0\"\nstratum = 4\n"
        ),
    );
    let (client_cfg, client_sock) = write_config(
        dir.path(),
        "client",
        &format!(
            "[service]\nport = {client_port}\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n\
             [clock]\ndriver = \"simulated\"\ninitial-offset = \"-0.3s\"\nfrequency-ppm = 12.0\n\n\
             [[unicast-server]]\naddress = \"127.0.0.1\"\nport = {server_port}\niburst = true\n\
             minpoll = 0\nmaxpoll = 2\n"
        ),
    );
    let _server = spawn(&server_cfg, &dir.join("server.log"));
    let _client = spawn(&client_cfg, &dir.join("client.log"));
    let synced = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        status(&client_sock).is_some_and(|s| {
            s["synchronized"] == true
                && (s["frequency_ppm"].as_f64().unwrap_or(0.0) + 12.0).abs() < 3.0
        })
    });
    let log = || std::fs::read_to_string(dir.join("client.log")).unwrap_or_default();
    assert!(
        synced,
        "client did not synchronize and learn its frequency:\n{}",
        log()
    );

    let text = http_get(metrics_port, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("meridian_synchronized "), 1.0);
    assert_eq!(value("meridian_stratum "), 5.0);
    assert_eq!(
        value("meridian_association_stratum{source=\"127.0.0.1\""),
        4.0
    );
    assert_eq!(
        value("meridian_association_selected{source=\"127.0.0.1\""),
        1.0
    );
    assert!(value("meridian_association_reach{source=\"127.0.0.1\"") > 0.0);
    assert!(value("meridian_association_packets_received_total{source=\"127.0.0.1\"") >= 1.0);
    assert!(
        (value("meridian_frequency_ppm ") + 12.0).abs() < 3.0,
        "the -12 ppm correction is exported"
    );
    assert!(text.contains("# TYPE meridian_server_requests_total counter"));

    assert!(http_get(metrics_port, "/other").starts_with("HTTP/1.1 404"));
}

fn sessions(sock: &std::path::Path) -> Vec<serde_json::Value> {
    support::control(sock, "sessions")
        .and_then(|a| a["sessions"].as_array().cloned())
        .unwrap_or_default()
}

fn meridianctl(args: &[&str]) -> std::process::Output {
    let ctl =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_meridiand")).with_file_name("meridianctl");
    Command::new(&ctl)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", ctl.display()))
}

#[test]
/// attacks.md J1, J2: a bad file is refused on reload; unchanged associations keep running.
fn reload_keeps_unchanged_associations_and_refuses_bad_files() {
    let dir = temp_dir("reload_keeps_unchanged_associations_and_refuses_bad_files");
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let mut servers = Vec::new();
    for (i, stratum) in [(0, 3), (1, 4)] {
        let (cfg, _) = write_config(
            dir.path(),
            &format!("server{i}"),
            &format!(
                "[service]\nport = {}\n\n[clock]\ndriver = \"read-only\"\n\n\
                 [local-reference]\naddress = \"127.127.1.0\"\nstratum = {stratum}\n",
                ports[i]
            ),
        );
        servers.push(spawn(&cfg, &dir.join(&format!("server{i}.log"))));
    }
    let client_body = |servers: &[u16]| {
        let mut text = format!(
            "[service]\nport = {}\n\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"0.02s\"\n",
            ports[2]
        );
        for p in servers {
            text.push_str(&format!(
                "\n[[unicast-server]]\naddress = \"127.0.0.1\"\nport = {p}\niburst = true\nminpoll = 0\nmaxpoll = 1\n"
            ));
        }
        text
    };
    let (cfg, sock) = write_config(dir.path(), "client", &client_body(&ports[..1]));
    let _client = spawn(&cfg, &dir.join("client.log"));
    let log = || std::fs::read_to_string(dir.join("client.log")).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
            status(&sock).is_some_and(|s| s["synchronized"] == true)
        }),
        "no sync:\n{}",
        log()
    );
    let before = sessions(&sock);
    assert_eq!(before.len(), 1);
    let received_before = before[0]["verbose"]["packets_received"].as_u64().unwrap();
    let socket = sock.to_str().unwrap();

    // Add the second server: the first keeps its state.
    write_config(dir.path(), "client", &client_body(&ports[..2]));
    let out = meridianctl(&["--socket", socket, "reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 association(s) kept, 1 added, 0 removed")
    );
    let after = sessions(&sock);
    assert_eq!(after.len(), 2, "{after:?}");
    let first = after
        .iter()
        .find(|s| s["verbose"]["packets_received"].as_u64() >= Some(received_before));
    assert!(
        first.is_some_and(|s| s["reach"].as_u64() > Some(0)),
        "the kept association lost its state: {after:?}"
    );
    assert!(
        wait_for(Duration::from_secs(10), Duration::from_millis(200), || {
            sessions(&sock)
                .iter()
                .all(|s| s["reach"].as_u64() > Some(0))
        }),
        "the new association never reached its server"
    );
    assert_eq!(
        status(&sock).unwrap()["stratum"],
        4,
        "still on the stratum-3 server"
    );

    // An invalid file is refused with its position; nothing changes.
    std::fs::write(&cfg, client_body(&ports[..1]) + "\n[service]\nbogus = 1\n").unwrap();
    let out = meridianctl(&["--socket", socket, "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("client.toml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sessions(&sock).len(), 2);

    // A change only a restart can make is refused by name.
    write_config(
        dir.path(),
        "client",
        &client_body(&ports[..1]).replace(&format!("port = {}\n", ports[2]), "port = 1\n"),
    );
    let out = meridianctl(&["--socket", socket, "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[service] port"));
    assert_eq!(sessions(&sock).len(), 2);

    // SIGHUP: back to one server; the removed one is gone, the other kept.
    write_config(dir.path(), "client", &client_body(&ports[..1]));
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(_client.0.id() as i32, libc::SIGHUP) };
    assert!(
        wait_for(
            Duration::from_secs(5),
            Duration::from_millis(100),
            || sessions(&sock).len() == 1
        ),
        "SIGHUP did not reload:\n{}",
        log()
    );
    assert!(
        log().contains("SIGHUP: configuration reloaded: 1 association(s) kept, 0 added, 1 removed"),
        "{}",
        log()
    );
}
