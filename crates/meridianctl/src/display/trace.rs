//! Plain layout of `meridianctl trace`, after Comware 5's `display ntp-service trace`:
//! one `server` line per hop (offset and synchronization distance in seconds), then the
//! primary reference's `refid`.

use std::fmt::Write;

use meridian_proto::report::TraceHop;

/// Renders the chain, nearest server first.
pub fn format_trace(hops: &[TraceHop]) -> String {
    let mut out = String::new();
    for hop in hops {
        let _ = writeln!(
            out,
            "server {},stratum {}, offset {:.6}, synch distance {:.5}",
            hop.server,
            hop.stratum,
            hop.offset_ms / 1000.0,
            hop.sync_distance_ms / 1000.0
        );
    }
    if let Some(last) = hops.last() {
        let _ = writeln!(out, "refid {}", last.reference_id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_chain() {
        let hops = [
            TraceHop {
                server: "127.0.0.1".into(),
                stratum: 2,
                offset_ms: -13.5,
                sync_distance_ms: 31.54,
                reference_id: "133.1.1.1".into(),
            },
            TraceHop {
                server: "133.1.1.1".into(),
                stratum: 1,
                offset_ms: -506.5,
                sync_distance_ms: 34.29,
                reference_id: "LOCL".into(),
            },
        ];
        assert_eq!(
            format_trace(&hops),
            "server 127.0.0.1,stratum 2, offset -0.013500, synch distance 0.03154\n\
             server 133.1.1.1,stratum 1, offset -0.506500, synch distance 0.03429\n\
             refid LOCL\n"
        );
    }

    #[test]
    fn empty_chain_prints_nothing() {
        assert_eq!(format_trace(&[]), "");
    }
}
