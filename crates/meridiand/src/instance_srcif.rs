//! Client sockets and their source addresses: each client association's connected socket is
//! bound to the primary address of its source interface (or, without one or while that
//! interface is down or has no address, to the unspecified address, so the outgoing
//! interface's address is used). A configured symmetric peer gets the same choice as the
//! source address of each packet it sends from the shared NTP-port socket. A client socket
//! that could not be opened at all (no route to its server yet) is retried here too. `refresh_sources` runs at start-up and every few seconds
//! from the runtime's upkeep: a socket whose wanted source changed, or whose local address
//! disappeared from the namespace, is reopened; the association itself keeps its state.

use super::{Binding, Instance};
use crate::srcif;
use crate::udp::UdpSocket;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A client association's socket: bound to `source` (or the unspecified address) on an
/// ephemeral port (RFC 9109), DSCP-marked, connected to `remote`. Must be called inside the
/// instance's namespace; `device` is its VRF device, if any.
pub(super) fn open_client_socket(
    remote: SocketAddr,
    source: Option<IpAddr>,
    dscp: u8,
    device: Option<&str>,
) -> io::Result<UdpSocket> {
    let ip = match (remote, source) {
        (SocketAddr::V4(_), Some(ip @ IpAddr::V4(_)))
        | (SocketAddr::V6(_), Some(ip @ IpAddr::V6(_))) => ip,
        (SocketAddr::V4(_), _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (SocketAddr::V6(_), _) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind_on_device(SocketAddr::new(ip, 0), device)?;
    socket.set_dscp(dscp)?;
    socket.connect(remote)?;
    Ok(socket)
}

/// Logs that the socket towards `remote` cannot be opened now (typically: no route to it yet)
/// and will be retried; `prefix` names the instance.
pub(super) fn log_unopened(prefix: &str, remote: SocketAddr, e: &io::Error) {
    crate::warn!("{prefix}cannot open the socket to {remote} ({e}): retrying every few seconds; unreachable meanwhile");
}

impl Instance {
    /// Re-checks the source address of every client socket and configured peer, and reopens
    /// the client sockets that need it, or could not be opened before (see the module
    /// comment). Returns how many sockets were (re)opened. Failures are logged and retried at
    /// the next call; the old socket stays in use meanwhile.
    pub fn refresh_sources(&mut self, dscp: u8) -> usize {
        if self.clients.is_empty() && self.peers.iter().all(|p| p.dynamic) {
            return 0;
        }
        let _inside = match &self.binding {
            Binding::Netns(path) => match crate::netns::enter(path) {
                Ok(guard) => Some(guard),
                Err(e) => {
                    crate::warn!("{}cannot check source interfaces: {e}", self.label());
                    return 0;
                }
            },
            _ => None,
        };
        let device = match &self.binding {
            Binding::Vrf(dev) => Some(dev.as_str()),
            _ => None,
        };
        let label = self.label();
        let default_interface = self.source_interface.as_ref();
        let wanted_source = |own: Option<&String>, ipv6: bool| {
            own.or(default_interface).and_then(|name| {
                let state = srcif::interface_state(name);
                srcif::choose_source(ipv6, state.as_ref())
            })
        };
        // Symmetric peers share the NTP-port socket: their source is set per packet.
        for peer in self.peers.iter_mut().filter(|p| !p.dynamic) {
            let wanted = wanted_source(peer.source_interface.as_ref(), peer.remote.is_ipv6());
            if wanted != peer.source {
                peer.source = wanted;
                let from = describe(wanted);
                crate::info!(
                    "{label}packets to peer {} now leave from {from}",
                    peer.remote
                );
            }
        }
        let present = srcif::all_addresses();
        let mut reopened = 0;
        for client in &mut self.clients {
            let wanted = wanted_source(client.source_interface.as_ref(), client.remote.is_ipv6());
            // A connected socket keeps the source address chosen at connect time: if that
            // address is gone, the socket is stale even when bound to the unspecified address.
            let local = client
                .socket
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .map(|a| a.ip());
            let lost = local.is_none_or(|ip| ip.is_unspecified() || !present.contains(&ip));
            if wanted == client.bound && !lost {
                continue;
            }
            match open_client_socket(client.remote, wanted, dscp, device) {
                Ok(socket) => {
                    let first = client.socket.is_none();
                    client.socket = Some(socket);
                    client.bound = wanted;
                    reopened += 1;
                    let from = describe(wanted);
                    if first {
                        crate::info!(
                            "{label}socket to {} open, sending from {from}",
                            client.remote
                        );
                    } else {
                        crate::info!("{label}socket to {} now sends from {from}", client.remote);
                    }
                }
                Err(e) => crate::debug!(
                    "{label}cannot (re)open the socket to {} (retrying later): {e}",
                    client.remote
                ),
            }
        }
        reopened
    }
}

fn describe(source: Option<IpAddr>) -> String {
    source.map_or_else(|| "the outgoing interface".into(), |a| a.to_string())
}
