//! Authentication interoperability with NTPsec: its `ntpd` as a client of `meridiand` with
//! an MD5, a SHA1 and an AES-128 (CMAC) key, one server each; every association must be
//! reachable through authenticated replies, and one selected. A fourth server holds key 1 with
//! another secret: NTPsec must never count it reachable. Then `meridiand` is a client of that
//! NTPsec `ntpd` with each key, and every reply verifies.
//!
//! Needs root (network namespaces) and NTPsec unpacked by .ci/run; prints SKIPPED otherwise.

mod support;

use std::time::Duration;

use support::{
    binary, ntpq_command, require_root, simulated_client_config, start_meridiand,
    start_ntpsec_ntpd, status, temp_dir, wait_for, TestNet,
};

/// (id, NTPsec type, secret as NTPsec writes it, meridian algorithm, secret as meridian writes it)
const KEYS: [(u32, &str, &str, &str, &str); 3] = [
    (1, "md5", "BetterKey", "md5", "BetterKey"),
    (
        2,
        "sha1",
        "8f1e2d3c4b5a69788796a5b4c3d2e1f001234567",
        "sha1",
        "HEX:8f1e2d3c4b5a69788796a5b4c3d2e1f001234567",
    ),
    (
        3,
        "aes-128",
        "00112233445566778899aabbccddeeff",
        "aes128-cmac",
        "HEX:00112233445566778899aabbccddeeff",
    ),
];

#[test]
fn ntpsec_ntpd_uses_meridiand_with_md5_sha1_and_aes128_keys() {
    let test = "ntpsec_ntpd_uses_meridiand_with_md5_sha1_and_aes128_keys";
    if !require_root(test) {
        return;
    }
    let tools = ["ntpd", "ntpq"].map(|t| binary(test, t));
    let [Some(ntpd), Some(_)] = tools else { return };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 8);
    let keys: Vec<String> = KEYS
        .iter()
        .map(|(id, _, _, alg, secret)| {
            format!("{{ id = {id}, algorithm = \"{alg}\", secret = \"{secret}\" }}")
        })
        .collect();
    let auth = format!(
        "[authentication]\nenable = true\nkeys = [{}]\ntrusted = [1, 2, 3]\n",
        keys.join(", ")
    );
    let mut servers = Vec::new();
    for (i, (id, ..)) in KEYS.iter().enumerate() {
        let body = format!(
            "[service]\nport = 123\n\n[clock]\ndriver = \"read-only\"\n\n[local-reference]\n\
             address = \"127.127.1.0\"\nstratum = 2\n\n{auth}"
        );
        let (proc, _) = start_meridiand(net.host(i), dir.path(), &format!("server{id}"), &body);
        servers.push(proc);
    }
    // Host 4: key 1 with a wrong secret.
    let wrong_auth = auth.replace("secret = \"BetterKey\"", "secret = \"WrongKey!\"");
    assert_ne!(wrong_auth, auth);
    let wrong_body = format!(
        "[service]\nport = 123\n\n[clock]\ndriver = \"read-only\"\n\n[local-reference]\n\
         address = \"127.127.1.0\"\nstratum = 2\n\n{wrong_auth}"
    );
    let (_wrong, _) = start_meridiand(net.host(4), dir.path(), "wrong", &wrong_body);
    let keyfile = dir.join("ntpsec.keys");
    let lines: Vec<String> = KEYS
        .iter()
        .map(|(id, t, s, ..)| format!("{id} {t} {s}"))
        .collect();
    std::fs::write(&keyfile, lines.join("\n") + "\n").unwrap();
    let mut extra = vec![
        format!("keys {}", keyfile.display()),
        "trustedkey 1 2 3".to_owned(),
    ];
    for (i, (id, ..)) in KEYS.iter().enumerate() {
        extra.push(format!(
            "server {} key {id} iburst minpoll 4 maxpoll 4",
            net.host(i).ipv4()
        ));
    }
    extra.push(format!(
        "server {} key 1 iburst minpoll 4 maxpoll 4",
        net.host(4).ipv4()
    ));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let client = start_ntpsec_ntpd(&ntpd, net.host(3), dir.path(), "ntpsec", &extra);

    let mut last = String::new();
    let ok = wait_for(Duration::from_secs(60), Duration::from_secs(1), || {
        let out = ntpq_command(net.host(3), &["-n", "-p", "127.0.0.1"])
            .output()
            .expect("run ntpq");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        // Every server reachable (reach column > 0), one of them selected.
        let good: Vec<&str> = last
            .lines()
            .filter(|l| l.contains("198.18.0.") && !l.contains("198.18.0.5"))
            .collect();
        let reachable = good
            .iter()
            .filter(|l| l.split_whitespace().nth(6).is_some_and(|r| r != "0"))
            .count();
        good.len() == 3 && reachable == 3 && good.iter().any(|l| l.starts_with('*'))
    });
    assert!(
        ok,
        "NTPsec did not reach and select the authenticated servers:\n{last}\nntpd log:\n{}\nserver1:\n{}",
        client.log(),
        servers[0].log()
    );
    let wrong_row = last
        .lines()
        .find(|l| l.contains("198.18.0.5"))
        .expect("the wrong-key server is listed");
    assert_eq!(
        wrong_row.split_whitespace().nth(6),
        Some("0"),
        "a server with the wrong secret was reached:\n{last}"
    );
    assert!(
        !wrong_row.starts_with('*') && !wrong_row.starts_with('+'),
        "{last}"
    );

    // meridiand as an authenticated client of NTPsec, one client per key (MD5, SHA1, AES-128).
    // NTPsec in a test may not set the clock (`disable ntp`, no CAP_SYS_TIME), so it never
    // calls itself synchronized (LI 3): what is checked is the authenticated exchange itself:
    // every reply verifies with the key (auth ok, reach full), and is then refused only as
    // unsynchronized.
    let ntpsec = net.host(3).ipv4().to_string();
    let clients: Vec<_> = KEYS
        .iter()
        .enumerate()
        .map(|(i, (id, ..))| {
            let body = simulated_client_config(&ntpsec, "+0.05s", 3.0).replace(
                "iburst = true\n",
                &format!("iburst = true\nkey-id = {id}\n"),
            ) + &auth;
            start_meridiand(net.host(5 + i), dir.path(), &format!("client{id}"), &body)
        })
        .collect();
    for ((meridian, sock), (id, alg, ..)) in clients.iter().zip(KEYS) {
        let mut session = serde_json::Value::Null;
        let ok = wait_for(Duration::from_secs(30), Duration::from_millis(500), || {
            session = support::control(sock, "sessions")
                .map(|a| a["sessions"][0].clone())
                .unwrap_or_default();
            session["reach"].as_u64().is_some_and(|r| r >= 15)
        });
        assert!(
            ok,
            "no authenticated exchange with NTPsec with key {id} ({alg}): {session}\n{}",
            meridian.log()
        );
        assert_eq!(session["auth"], "ok", "key {id} ({alg}): {session}");
        assert_eq!(
            session["verbose"]["packets_rejected"], 0,
            "key {id}: {session}"
        );
        assert_eq!(
            session["verbose"]["last_rejection"], "unsynchronized",
            "key {id}: {session}"
        );
        assert!(status(sock).is_some_and(|s| s["synchronized"] == false));
    }
}
