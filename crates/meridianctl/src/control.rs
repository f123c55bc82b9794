//! Control-socket client: one JSON request line out, one JSON answer in (read to EOF), with
//! an overall deadline; and the choice of which socket to talk to.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meridian_proto::report::{ControlAnswer, ControlRequest};

use crate::args::DEFAULT_SOCKET;
use crate::error::CtlError;

/// How long a whole exchange with the daemon may take.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest answer we accept (a few hundred sessions in verbose form fit easily).
const MAX_ANSWER: u64 = 16 << 20;

/// The socket path: `--socket`, else `[control] socket` of `--config`, else the default.
pub fn socket_path(socket: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, CtlError> {
    if let Some(path) = socket {
        return Ok(path.to_path_buf());
    }
    let Some(config) = config else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    let text = std::fs::read_to_string(config)
        .map_err(|e| CtlError::failed(format!("cannot read {}: {e}", config.display())))?;
    socket_from_config(&text)
        .map_err(|e| CtlError::failed(format!("{}: {e}", config.display())))
        .map(|found| found.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)))
}

/// Takes only `[control] socket` from a configuration file's text; everything else in it is
/// the daemon's business.
pub fn socket_from_config(text: &str) -> Result<Option<PathBuf>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let Some(control) = table.get("control") else {
        return Ok(None);
    };
    let Some(control) = control.as_table() else {
        return Err("`control` is not a table".into());
    };
    match control.get("socket") {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(_) => Err("`control.socket` is not a string".into()),
    }
}

/// The `[service] port` of a daemon configuration file (TOML), if it sets one.
pub fn port_from_config(path: &Path) -> Result<Option<u16>, CtlError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CtlError::failed(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| CtlError::failed(format!("{}: {e}", path.display())))?;
    let port = table
        .get("service")
        .and_then(|s| s.get("port"))
        .and_then(|p| p.as_integer());
    Ok(port.and_then(|p| u16::try_from(p).ok()))
}

/// Sends `request` to the daemon at `path` and returns its answer. A daemon-side
/// `ControlAnswer::Error` is turned into a failure carrying the daemon's message.
pub fn exchange(path: &Path, request: &ControlRequest) -> Result<ControlAnswer, CtlError> {
    exchange_with_timeout(path, request, CONTROL_TIMEOUT)
}

/// [`exchange`] with an explicit overall deadline.
pub fn exchange_with_timeout(
    path: &Path,
    request: &ControlRequest,
    timeout: Duration,
) -> Result<ControlAnswer, CtlError> {
    let where_ = path.display();
    let mut stream = UnixStream::connect(path).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::NotFound => " (is meridiand running? see --socket / --config)",
            ErrorKind::ConnectionRefused => " (no daemon is listening)",
            ErrorKind::PermissionDenied => " (not allowed to use the control socket)",
            _ => "",
        };
        CtlError::failed(format!("cannot connect to {where_}: {e}{hint}"))
    })?;
    let deadline = Instant::now() + timeout;
    let mut line = serde_json::to_vec(request)
        .map_err(|e| CtlError::failed(format!("cannot encode request: {e}")))?;
    line.push(b'\n');
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(&line))
        .map_err(|e| CtlError::failed(format!("cannot send to {where_}: {e}")))?;
    // The daemon may or may not wait for EOF; tell it we are done either way.
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CtlError::failed(format!(
                "no complete answer from {where_} within {} s",
                timeout.as_secs_f64()
            )));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| CtlError::failed(format!("{where_}: {e}")))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() as u64 > MAX_ANSWER {
                    return Err(CtlError::failed(format!(
                        "answer from {where_} is too long"
                    )));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(CtlError::failed(format!("reading from {where_}: {e}"))),
        }
    }
    if answer.iter().all(u8::is_ascii_whitespace) {
        return Err(CtlError::failed(format!(
            "{where_} closed the connection without answering"
        )));
    }
    let answer: ControlAnswer = serde_json::from_slice(&answer)
        .map_err(|e| CtlError::failed(format!("unreadable answer from {where_}: {e}")))?;
    match answer {
        ControlAnswer::Error { message } => {
            Err(CtlError::failed(format!("daemon refused: {message}")))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_socket_is_taken() {
        let text = "[service]\nport = 1123\n[control]\nsocket = \"/tmp/x.sock\"\nmode6 = true\n";
        assert_eq!(
            socket_from_config(text).unwrap(),
            Some(PathBuf::from("/tmp/x.sock"))
        );
        assert_eq!(socket_from_config("[service]\nport = 1\n").unwrap(), None);
        assert!(socket_from_config("[control]\nsocket = 3\n").is_err());
        assert!(socket_from_config("[control\n").is_err());
    }

    #[test]
    fn explicit_socket_wins() {
        let p = socket_path(Some(Path::new("/a")), Some(Path::new("/nonexistent"))).unwrap();
        assert_eq!(p, PathBuf::from("/a"));
        assert_eq!(
            socket_path(None, None).unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert!(socket_path(None, Some(Path::new("/nonexistent/meridian.toml"))).is_err());
    }

    #[test]
    fn request_wire_form() {
        assert_eq!(
            serde_json::to_string(&ControlRequest::Sessions).unwrap(),
            r#"{"request":"sessions"}"#
        );
    }
}
