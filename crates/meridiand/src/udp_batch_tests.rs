//! Tests of the batched receive and send (`udp_batch.rs`) on loopback: 127.0.0.0/8 is all
//! local, so one wildcard socket receives on many destination addresses.

use super::*;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Lets loopback deliveries land (they are immediate; this is a margin).
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}

/// 40 datagrams from 4 senders to 4 local addresses, queued before the first read: three
/// calls get 32, then 8 (fewer than the capacity: the socket was empty), then none; every
/// datagram comes with its own source, destination, payload and timestamp.
#[test]
fn burst_from_several_sources_to_several_addresses() {
    let rx = UdpSocket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = rx.local_addr().unwrap().port();
    let senders: Vec<UdpSocket> = (0..4)
        .map(|i| UdpSocket::bind(SocketAddr::new(v4(10 + i), 0)).unwrap())
        .collect();
    let mut expected = Vec::new();
    for k in 0u8..40 {
        let (s, d) = (k as usize % 4, (k / 4) % 4);
        let dest = SocketAddr::new(v4(1 + d), port);
        let payload = [k, s as u8, d, 0xaa];
        senders[s].send(&payload, Some(dest), None).unwrap();
        expected.push((payload, senders[s].local_addr().unwrap(), dest.ip()));
    }
    settle();
    let mut batch = RecvBatch::new(BATCH, 64);
    let mut got = Vec::new();
    let mut counts = Vec::new();
    loop {
        let n = batch.recv(&rx).unwrap();
        counts.push(n);
        for (data, meta) in batch.iter() {
            let (secs, _) = meta.timestamp.expect("kernel timestamp");
            assert!((secs - unix_now()).abs() < 5);
            assert_eq!(meta.len, data.len());
            assert_eq!(meta.ifindex, Some(lo_index()));
            got.push((
                <[u8; 4]>::try_from(data).unwrap(),
                meta.source,
                meta.destination.unwrap(),
            ));
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(counts, vec![32, 8, 0]);
    assert_eq!(got, expected, "in order, each with its own addresses");
}

fn lo_index() -> u32 {
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    unsafe { libc::if_nametoindex(c"lo".as_ptr()) }
}

/// A datagram longer than the buffer is reported as such (len = buffer + 1), as by recv.
#[test]
fn truncated_datagram_and_small_capacity() {
    let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = Some(rx.local_addr().unwrap());
    tx.send(&[1; 20], to, None).unwrap();
    tx.send(&[2; 16], to, None).unwrap();
    tx.send(&[3; 5], to, None).unwrap();
    settle();
    let mut batch = RecvBatch::new(2, 16);
    assert_eq!(batch.capacity(), 2);
    assert_eq!(batch.recv(&rx).unwrap(), 2);
    let got: Vec<(Vec<u8>, usize)> = batch.iter().map(|(d, m)| (d.to_vec(), m.len)).collect();
    assert_eq!(got, vec![(vec![1; 16], 17), (vec![2; 16], 16)]);
    assert_eq!(batch.recv(&rx).unwrap(), 1);
    assert_eq!(batch.iter().next().unwrap().0, &[3; 5]);
    assert_eq!(batch.recv(&rx).unwrap(), 0);
    assert_eq!(
        batch.iter().count(),
        0,
        "nothing left from the previous call"
    );
}

/// Replies queued for several clients leave in one flush, each from the source address it
/// names; one that the kernel refuses (broadcast without SO_BROADCAST) is reported and the
/// ones behind it are still sent.
#[test]
fn send_batch_uses_each_source_address_and_skips_a_refused_one() {
    let tx = UdpSocket::bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = tx.local_addr().unwrap().port();
    let clients: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let mut batch = SendBatch::new(8, 48);
    assert!(batch.is_empty());
    for (i, c) in clients.iter().enumerate() {
        let dest = c.local_addr().unwrap();
        assert!(batch.push(&[i as u8; 48], dest, Some(v4(20 + i as u8))));
        if i == 0 {
            let refused = "255.255.255.255:9".parse().unwrap();
            assert!(batch.push(&[9; 48], refused, None));
        }
    }
    assert!(
        !batch.push(&[0; 49], clients[0].local_addr().unwrap(), None),
        "too long"
    );
    let mut errors = Vec::new();
    let sent = batch.flush(&tx, |dest, e| errors.push((dest, e.raw_os_error())));
    assert_eq!(sent, 3);
    assert_eq!(
        errors,
        vec![("255.255.255.255:9".parse().unwrap(), Some(libc::EACCES))]
    );
    assert!(batch.is_empty());
    settle();
    let mut buf = [0u8; 64];
    for (i, c) in clients.iter().enumerate() {
        let meta = c.recv(&mut buf).unwrap().expect("reply arrived");
        assert_eq!(&buf[..meta.len], &[i as u8; 48]);
        assert_eq!(meta.source, SocketAddr::new(v4(20 + i as u8), port));
    }
    assert_eq!(batch.flush(&tx, |_, _| panic!("nothing to send")), 0);
}

#[test]
fn send_batch_fills_up() {
    let mut batch = SendBatch::new(2, 8);
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert!(batch.push(b"a", to, None));
    assert!(!batch.is_full());
    assert!(batch.push(b"b", to, None));
    assert!(batch.is_full());
    assert!(!batch.push(b"c", to, None));
}

/// The same over IPv6 loopback, where available.
#[test]
fn ipv6_batch_receive() {
    let Ok(rx) = UdpSocket::bind("[::]:0".parse().unwrap()) else {
        eprintln!("SKIPPED ipv6_batch_receive: no IPv6");
        return;
    };
    let Ok(tx) = UdpSocket::bind("[::1]:0".parse().unwrap()) else {
        eprintln!("SKIPPED ipv6_batch_receive: no IPv6 loopback");
        return;
    };
    let to = SocketAddr::new("::1".parse().unwrap(), rx.local_addr().unwrap().port());
    let mut out = SendBatch::new(4, 16);
    for k in 0..3u8 {
        assert!(out.push(&[k; 3], to, Some("::1".parse().unwrap())));
    }
    assert_eq!(out.flush(&tx, |d, e| panic!("{d}: {e}")), 3);
    settle();
    let mut batch = RecvBatch::new(BATCH, 16);
    assert_eq!(batch.recv(&rx).unwrap(), 3);
    for (k, (data, meta)) in batch.iter().enumerate() {
        assert_eq!(data, &[k as u8; 3]);
        assert_eq!(meta.source, tx.local_addr().unwrap());
        assert_eq!(meta.destination, Some("::1".parse().unwrap()));
        assert!(meta.timestamp.is_some());
    }
}

/// A batch moves to another thread (as into a server thread) and keeps working there, its
/// headers still pointing at its own buffers; slots reused after a long datagram report the
/// next ones' own lengths.
#[test]
fn batch_moves_to_a_thread_and_reuses_its_slots() {
    let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let to = Some(rx.local_addr().unwrap());
    let mut batch = RecvBatch::new(4, 32);
    tx.send(&[7; 40], to, None).unwrap();
    settle();
    assert_eq!(batch.recv(&rx).unwrap(), 1);
    assert_eq!(batch.iter().next().unwrap().1.len, 33, "truncated");
    let lens = std::thread::spawn(move || {
        for len in [3usize, 30, 1] {
            tx.send(&vec![len as u8; len], to, None).unwrap();
        }
        settle();
        let n = batch.recv(&rx).unwrap();
        let lens: Vec<usize> = batch.iter().map(|(d, m)| d.len().min(m.len)).collect();
        (n, lens)
    })
    .join()
    .unwrap();
    assert_eq!(lens, (3, vec![3, 30, 1]));
}
