//! Starting the reference daemons (chronyd, NTPsec's ntpd) inside a test host, never able to adjust the clock.
//!
//! Both are started through [`Host::spawn`], so without CAP_SYS_TIME, and are
//! told on top of that not to touch the clock (`chronyd -x`, ntpd
//! `disable ntp` + `disable kernel`). Their files (config, pid, drift, log)
//! live in the test's temp dir, named after `tag` so several daemons can share
//! one dir.

use std::path::Path;

use super::netns::Host;
use super::procs::Proc;

fn write_conf(path: &Path, base: &[String], extra: &[&str]) {
    let mut text = base.join("\n");
    for l in extra {
        text.push('\n');
        text.push_str(l);
    }
    text.push('\n');
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Starts `chronyd -d -x -u root -f DIR/TAG.conf` in `host`, log in
/// `DIR/TAG.log`. Base config: `cmdport 0` and `bindcmdaddress /` (no command
/// sockets at all, so nothing is shared with other chronyds), `pidfile` and
/// `driftfile` in `dir`; `extra` lines are appended (e.g. `local stratum 1`,
/// `allow`, `server ADDR iburst`). `-u root` because the temp dir is root's;
/// CAP_SYS_TIME is gone anyway.
pub fn start_chronyd(chronyd: &Path, host: &Host, dir: &Path, tag: &str, extra: &[&str]) -> Proc {
    let conf = dir.join(format!("{tag}.conf"));
    let base = [
        "cmdport 0".to_owned(),
        "bindcmdaddress /".to_owned(),
        format!("pidfile {}", dir.join(format!("{tag}.pid")).display()),
        format!("driftfile {}", dir.join(format!("{tag}.drift")).display()),
    ];
    write_conf(&conf, &base, extra);
    let conf_s = conf.to_string_lossy().into_owned();
    let args = ["-d", "-x", "-u", "root", "-f", conf_s.as_str()];
    host.spawn(chronyd, args, &dir.join(format!("{tag}.log")))
}

/// Starts NTPsec `ntpd -n -c DIR/TAG.conf` in `host`, log (ntpd logs to
/// stderr with `-n`) in `DIR/TAG.log`. Base config:
/// `disable ntp`, `disable kernel`, `restrict default`/`127.0.0.1`/`::1`
/// (mode 6 allowed, for ntpq), `pidfile`, `driftfile`; `extra` lines
/// are appended (e.g. `server ADDR iburst minpoll 4`).
pub fn start_ntpsec_ntpd(ntpd: &Path, host: &Host, dir: &Path, tag: &str, extra: &[&str]) -> Proc {
    let conf = dir.join(format!("{tag}.conf"));
    let base = [
        "disable ntp".to_owned(),
        "disable kernel".to_owned(),
        // Without explicit restrict lines ntpd 1.2.2 ignores mode 6, so ntpq
        // times out; these allow queries from the test network and localhost.
        "restrict default".to_owned(),
        "restrict 127.0.0.1".to_owned(),
        "restrict ::1".to_owned(),
        format!("pidfile {}", dir.join(format!("{tag}.pid")).display()),
        format!("driftfile {}", dir.join(format!("{tag}.drift")).display()),
    ];
    write_conf(&conf, &base, extra);
    let conf_s = conf.to_string_lossy().into_owned();
    host.spawn(
        ntpd,
        ["-n", "-c", conf_s.as_str()],
        &dir.join(format!("{tag}.log")),
    )
}
