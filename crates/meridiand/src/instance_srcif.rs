//! Client sockets and their source addresses: each client association's connected socket is
//! bound to the primary address of its source interface (or, without one or while that
//! interface is down or has no address, to the unspecified address, so the outgoing
//! interface's address is used). `refresh_sources` runs at start-up and every few seconds
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

impl Instance {
    /// Re-checks the source address of every client socket and reopens those that need it
    /// (see the module comment). Returns how many were reopened. Failures are logged and
    /// retried at the next call; the old socket stays in use meanwhile.
    pub fn refresh_sources(&mut self, dscp: u8) -> usize {
        if self.clients.is_empty() {
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
        let label = self
            .name
            .as_ref()
            .map(|n| format!("[{n}] "))
            .unwrap_or_default();
        let present = srcif::all_addresses();
        let mut reopened = 0;
        for client in &mut self.clients {
            let interface = client
                .source_interface
                .as_ref()
                .or(self.source_interface.as_ref());
            let wanted = interface.and_then(|name| {
                let state = srcif::interface_state(name);
                srcif::choose_source(client.remote.is_ipv6(), state.as_ref())
            });
            // A connected socket keeps the source address chosen at connect time: if that
            // address is gone, the socket is stale even when bound to the unspecified address.
            let local = client.socket.local_addr().ok().map(|a| a.ip());
            let lost = local.is_none_or(|ip| ip.is_unspecified() || !present.contains(&ip));
            if wanted == client.bound && !lost {
                continue;
            }
            match open_client_socket(client.remote, wanted, dscp, device) {
                Ok(socket) => {
                    client.socket = socket;
                    client.bound = wanted;
                    reopened += 1;
                    let from =
                        wanted.map_or_else(|| "the outgoing interface".into(), |a| a.to_string());
                    crate::info!("{label}socket to {} now sends from {from}", client.remote);
                }
                Err(e) => crate::debug!(
                    "{label}cannot reopen the socket to {} (retrying later): {e}",
                    client.remote
                ),
            }
        }
        reopened
    }
}
