//! Symmetric-key authentication end to end with real processes in network namespaces:
//! meridiand to meridiand with every algorithm and the guide's negative cases, meridiand as a
//! client of chronyd, and chronyd as a client of meridiand (MD5, SHA1, AES128).
//!
//! Needs root (network namespaces); prints SKIPPED otherwise. No process can adjust the
//! clock: meridiand servers use the read-only driver, clients the simulated one.

mod support;

use meridian_proto::report::{ControlAnswer, SessionReport, StatusReport};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{binary, require_root, start_chronyd, temp_dir, wait_for, Host, Proc, TestNet};

const MERIDIAND: &str = env!("CARGO_BIN_EXE_meridiand");

/// One key as written in both keys-file formats (meridian's and chrony's share `ID TYPE KEY`).
struct TestKey {
    id: u32,
    meridian_type: &'static str,
    chrony_type: &'static str,
    secret: &'static str,
}

const KEYS: [TestKey; 5] = [
    TestKey {
        id: 1,
        meridian_type: "md5",
        chrony_type: "MD5",
        secret: "BetterKey",
    },
    TestKey {
        id: 2,
        meridian_type: "sha1",
        chrony_type: "SHA1",
        secret: "HEX:6d6572696469616e2d73686131",
    },
    TestKey {
        id: 3,
        meridian_type: "aes128-cmac",
        chrony_type: "AES128",
        secret: "HEX:000102030405060708090a0b0c0d0e0f",
    },
    TestKey {
        id: 4,
        meridian_type: "sha256",
        chrony_type: "SHA256",
        secret: "AnotherKey",
    },
    TestKey {
        id: 5,
        meridian_type: "aes256-cmac",
        chrony_type: "AES256",
        secret: "HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    },
];

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes `DIR/TAG.keys` in meridian's format, with `secret_override` replacing every secret
/// of the same type (to make a wrong key).
fn meridian_keys(dir: &Path, tag: &str, wrong_secret: bool) -> PathBuf {
    let text: String = KEYS
        .iter()
        .map(|k| {
            let secret = if wrong_secret && k.meridian_type == "md5" {
                "WrongKey"
            } else {
                k.secret
            };
            format!("{} {} {secret}\n", k.id, k.meridian_type)
        })
        .collect();
    let path = dir.join(format!("{tag}.keys"));
    write_private(&path, &text);
    path
}

fn chrony_keys(dir: &Path, tag: &str) -> PathBuf {
    let text: String = KEYS
        .iter()
        .map(|k| format!("{} {} {}\n", k.id, k.chrony_type, k.secret))
        .collect();
    let path = dir.join(format!("{tag}.keys"));
    write_private(&path, &text);
    path
}

/// `[authentication]` with all keys in `keys`, `trusted` ids.
fn auth_section(enable: bool, keys: &Path, trusted: &[u32]) -> String {
    format!(
        "[authentication]\nenable = {enable}\nkeys-file = \"{}\"\ntrusted = {trusted:?}\n",
        keys.display()
    )
}

fn socket_path(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.sock"))
}

/// Starts meridiand in `host` with `body` after `[control]`; log in `DIR/TAG.log`.
fn start_meridiand(host: &Host, dir: &Path, tag: &str, body: &str) -> Proc {
    let conf = dir.join(format!("{tag}.toml"));
    let text = format!(
        "[control]\nsocket = \"{}\"\n{body}",
        socket_path(dir, tag).display()
    );
    write_private(&conf, &text);
    let conf = conf.to_string_lossy().into_owned();
    host.spawn(
        MERIDIAND,
        ["--config", conf.as_str(), "--debug"],
        &dir.join(format!("{tag}.log")),
    )
}

/// A meridiand server on port 123 serving its (read-only) clock as a stratum-2 reference.
fn server_body(auth: &str) -> String {
    format!(
        "[clock]\ndriver = \"read-only\"\n[local-reference]\naddress = \"127.127.1.0\"\n\
         stratum = 2\n{auth}"
    )
}

/// A meridiand client (simulated clock 0.3 s off) of `server`, with `key-id` if given.
fn client_body(server: &str, key_id: Option<u32>, auth: &str) -> String {
    let key = key_id.map_or(String::new(), |id| format!("key-id = {id}\n"));
    format!(
        "[service]\nport = 11123\n[clock]\ndriver = \"simulated\"\ninitial-offset = \"+0.3s\"\n\
         [[unicast-server]]\naddress = \"{server}\"\niburst = true\nminpoll = 0\nmaxpoll = 2\n\
         {key}{auth}"
    )
}

fn control(dir: &Path, tag: &str, request: &str) -> Option<ControlAnswer> {
    let mut s = UnixStream::connect(socket_path(dir, tag)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("{{\"request\":\"{request}\"}}\n").as_bytes())
        .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

fn status(dir: &Path, tag: &str) -> Option<StatusReport> {
    match control(dir, tag, "status")? {
        ControlAnswer::Status(s) => Some(s),
        _ => None,
    }
}

fn session(dir: &Path, tag: &str, source: &str) -> Option<SessionReport> {
    match control(dir, tag, "sessions")? {
        ControlAnswer::Sessions { sessions } => sessions.into_iter().find(|s| s.source == source),
        _ => None,
    }
}

/// Waits until the client `tag` is synchronized to `server` with session auth `auth`.
fn wait_synchronized(dir: &Path, tag: &str, server: &str, auth: &str) -> Result<(), String> {
    let mut last = String::new();
    let ok = wait_for(Duration::from_secs(40), Duration::from_millis(500), || {
        let st = status(dir, tag);
        let se = session(dir, tag, server);
        last = format!("{st:?}\n{se:?}");
        st.is_some_and(|s| s.synchronized && s.system_peer.as_deref() == Some(server))
            && se.is_some_and(|s| s.auth == auth)
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag} not synchronized to {server} with auth {auth}: {last}"
        ))
    }
}

/// Checks that client `tag` got replies from `server` but stays unsynchronized, with session
/// auth `auth`.
fn check_refused(dir: &Path, tag: &str, server: &str, auth: &str) -> Result<(), String> {
    let mut last = String::new();
    let seen = wait_for(Duration::from_secs(20), Duration::from_millis(500), || {
        let se = session(dir, tag, server);
        last = format!("{se:?}");
        se.is_some_and(|s| s.auth == auth && s.verbose.packets_rejected >= 2)
    });
    let st = status(dir, tag);
    let se = session(dir, tag, server);
    match (seen, st, se) {
        (true, Some(st), Some(se)) if !st.synchronized && se.reach == 0 => Ok(()),
        (_, st, se) => Err(format!(
            "{tag} should refuse {server} (auth {auth}): {st:?} {se:?} (last {last})"
        )),
    }
}

fn dump(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| format!("--- {}\n{}", p.describe(), p.log()))
        .collect()
}

#[test]
fn meridiand_pairs_with_each_algorithm_and_guide_rules() {
    let test = "meridiand_pairs_with_each_algorithm_and_guide_rules";
    if !require_root(test) {
        return;
    }
    let dir = temp_dir(test);
    // Host 0: server; 1-5: one algorithm each; 6: key untrusted on the client; 7: wrong
    // secret; 8: authentication disabled on the client (key-id given).
    let net = TestNet::new(test, 9);
    let server_ip = net.host(0).ipv4().to_string();
    let all: Vec<u32> = KEYS.iter().map(|k| k.id).collect();
    let keys = meridian_keys(&dir, "shared", false);
    let server = start_meridiand(
        net.host(0),
        &dir,
        "server",
        &server_body(&auth_section(true, &keys, &all)),
    );
    let mut clients = Vec::new();
    for (i, k) in KEYS.iter().enumerate() {
        let tag = format!("k{}", k.id);
        let body = client_body(&server_ip, Some(k.id), &auth_section(true, &keys, &all));
        clients.push((
            tag.clone(),
            start_meridiand(net.host(i + 1), &dir, &tag, &body),
        ));
    }
    let untrusted = client_body(&server_ip, Some(1), &auth_section(true, &keys, &[2]));
    let p6 = start_meridiand(net.host(6), &dir, "untrusted", &untrusted);
    let wrong_keys = meridian_keys(&dir, "wrong", true);
    let wrong = client_body(&server_ip, Some(1), &auth_section(true, &wrong_keys, &[1]));
    let p7 = start_meridiand(net.host(7), &dir, "wrong", &wrong);
    let disabled = client_body(&server_ip, Some(1), &auth_section(false, &keys, &[1]));
    let p8 = start_meridiand(net.host(8), &dir, "disabled", &disabled);

    let mut failures = Vec::new();
    for (tag, _) in &clients {
        if let Err(e) = wait_synchronized(&dir, tag, &server_ip, "ok") {
            failures.push(e);
        }
    }
    if let Err(e) = wait_synchronized(&dir, "disabled", &server_ip, "none") {
        failures.push(e);
    }
    for tag in ["untrusted", "wrong"] {
        if let Err(e) = check_refused(&dir, tag, &server_ip, "failed") {
            failures.push(e);
        }
    }
    let mut procs: Vec<&Proc> = clients.iter().map(|(_, p)| p).collect();
    procs.extend([&server, &p6, &p7, &p8]);
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        dump(&procs)
    );
    // Secrets never reach a log.
    for p in &procs {
        let log = p.log();
        for k in &KEYS {
            let bare = k.secret.trim_start_matches("HEX:");
            assert!(
                !log.contains(bare),
                "secret of key {} in {}",
                k.id,
                p.describe()
            );
        }
    }
    assert!(procs.iter().all(|p| p.is_running()), "{}", dump(&procs));
}

#[test]
fn meridiand_client_of_chronyd_with_md5_sha1_aes128() {
    let test = "meridiand_client_of_chronyd_with_md5_sha1_aes128";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    let net = TestNet::new(test, 4);
    let server_ip = net.host(0).ipv4().to_string();
    let ckeys = chrony_keys(&dir, "chrony");
    let keyfile = format!("keyfile {}", ckeys.display());
    let chrony = start_chronyd(
        &chronyd,
        net.host(0),
        &dir,
        "chronyd",
        &["local stratum 1", "allow", &keyfile],
    );
    let keys = meridian_keys(&dir, "shared", false);
    let mut clients = Vec::new();
    for (i, k) in KEYS[..3].iter().enumerate() {
        let tag = format!("k{}", k.id);
        let body = client_body(&server_ip, Some(k.id), &auth_section(true, &keys, &[k.id]));
        clients.push((
            tag.clone(),
            start_meridiand(net.host(i + 1), &dir, &tag, &body),
        ));
    }
    let failures: Vec<String> = clients
        .iter()
        .filter_map(|(tag, _)| wait_synchronized(&dir, tag, &server_ip, "ok").err())
        .collect();
    let mut procs: Vec<&Proc> = clients.iter().map(|(_, p)| p).collect();
    procs.push(&chrony);
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        dump(&procs)
    );
}

#[test]
fn chronyd_client_of_meridiand_with_md5_sha1_aes128() {
    let test = "chronyd_client_of_meridiand_with_md5_sha1_aes128";
    if !require_root(test) {
        return;
    }
    let Some(chronyd) = binary(test, "chronyd") else {
        return;
    };
    let dir = temp_dir(test);
    // Host 0: meridiand; 1-3: chronyd with MD5, SHA1, AES128; 4: chronyd with a key the
    // server does not trust (must not select).
    let net = TestNet::new(test, 5);
    let server_ip = net.host(0).ipv4().to_string();
    let keys = meridian_keys(&dir, "shared", false);
    let server = start_meridiand(
        net.host(0),
        &dir,
        "server",
        &server_body(&auth_section(true, &keys, &[1, 2, 3])),
    );
    let ckeys = chrony_keys(&dir, "chrony");
    let keyfile = format!("keyfile {}", ckeys.display());
    let mut clients = Vec::new();
    for (i, id) in [1u32, 2, 3, 4].into_iter().enumerate() {
        let line = format!("server {server_ip} key {id} iburst minpoll 0 maxpoll 2");
        let tag = format!("chronyd-key{id}");
        let p = start_chronyd(&chronyd, net.host(i + 1), &dir, &tag, &[&keyfile, &line]);
        clients.push(p);
    }
    let selected = format!("Selected source {server_ip}");
    let mut failures = Vec::new();
    for p in &clients[..3] {
        if !p.wait_for_log(&selected, Duration::from_secs(40)) {
            failures.push(format!("{} did not select {server_ip}", p.describe()));
        }
    }
    // Key 4 is known to the server but not trusted: crypto-NAK, never selected.
    if clients[3].log().contains(&selected) {
        failures.push("chronyd with an untrusted key selected the server".into());
    }
    let mut procs: Vec<&Proc> = clients.iter().collect();
    procs.push(&server);
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        dump(&procs)
    );
}
