//! Datagrams in batches: one `recvmmsg(2)` takes every request already queued on the
//! socket (up to a batch), one `sendmmsg(2)` sends their answers. Under load this
//! turns two system calls per request into two per batch; with one request waiting
//! it is the same as `recv_from` + `send_to`, so latency at low load is unchanged.
//! The auth threads use it, and so does the load tool (`pinradius bench`), whose own
//! cost is part of every figure it reports.

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

/// Buffers and headers for receiving up to `capacity` datagrams per call, allocated
/// once and reused for the life of the loop.
pub struct ReceiveBatch {
    /// One buffer per datagram, each as long as the longest datagram accepted.
    buffers: Vec<Box<[u8]>>,
    /// Length, sender and (with timestamps on) kernel arrival time of each datagram
    /// of the last call.
    received: Vec<(usize, SocketAddr, Option<SystemTime>)>,
    headers: MultiHeaders<SockaddrStorage>,
}

impl ReceiveBatch {
    pub fn new(capacity: usize, datagram_len: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            buffers: (0..capacity)
                .map(|_| vec![0u8; datagram_len].into_boxed_slice())
                .collect(),
            received: Vec::with_capacity(capacity),
            headers: MultiHeaders::preallocate(capacity, None),
        }
    }

    /// The same, also reading when the kernel received each datagram, on a socket
    /// with [`stamp_arrivals`] on.
    pub fn with_timestamps(capacity: usize, datagram_len: usize) -> Self {
        let mut batch = Self::new(capacity, datagram_len);
        batch.headers = MultiHeaders::preallocate(
            capacity.max(1),
            Some(nix::cmsg_space!(nix::sys::time::TimeSpec)),
        );
        batch
    }

    /// Waits for one datagram (as long as the socket's read timeout allows: then
    /// `WouldBlock`/`TimedOut`), then takes those already queued behind it without
    /// waiting (`MSG_WAITFORONE`). Returns how many were received. A datagram longer
    /// than the buffer arrives truncated to it (and then fails validation).
    pub fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        for msg in results {
            let arrived = msg.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|c| match c {
                    nix::sys::socket::ControlMessageOwned::ScmTimestampns(t) => {
                        let since_epoch = Duration::new(
                            u64::try_from(t.tv_sec()).ok()?,
                            u32::try_from(t.tv_nsec()).ok()?,
                        );
                        Some(SystemTime::UNIX_EPOCH + since_epoch)
                    }
                    _ => None,
                })
            });
            // A datagram from a family we cannot answer is left out.
            if let Some(from) = msg.address.as_ref().and_then(socket_addr) {
                self.received.push((msg.bytes, from, arrived));
            }
        }
        Ok(self.received.len())
    }

    /// The datagrams of the last [`ReceiveBatch::receive`], with their senders.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.timed_datagrams().map(|(d, from, _)| (d, from))
    }

    /// The same with each datagram's kernel arrival time, when timestamps are on.
    pub fn timed_datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr, Option<SystemTime>)> {
        self.received
            .iter()
            .zip(&self.buffers)
            .map(|(&(len, from, at), buf)| (&buf[..len.min(buf.len())], from, at))
    }
}

/// Has the kernel stamp each datagram `socket` receives with its arrival time
/// (`SO_TIMESTAMPNS`): the load tool measures latency to that moment, not to when its
/// own thread got around to reading. The kernel starts stamping a moment after the
/// first socket asks.
pub fn stamp_arrivals(socket: &UdpSocket) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    setsockopt(socket, ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// Headers for sending up to `capacity` datagrams per call.
pub struct SendBatch {
    headers: MultiHeaders<SockaddrStorage>,
    capacity: usize,
}

impl SendBatch {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            headers: MultiHeaders::preallocate(capacity, None),
            capacity,
        }
    }

    /// Sends every datagram to its address, in as few calls as the kernel allows. A
    /// datagram the kernel refuses (an unreachable address, say) is skipped and
    /// returned with its index and error; the rest are still sent.
    pub fn send(
        &mut self,
        socket: &UdpSocket,
        datagrams: &[(Vec<u8>, SocketAddr)],
    ) -> Vec<(usize, std::io::Error)> {
        let mut failed = Vec::new();
        let mut rest = datagrams;
        while !rest.is_empty() {
            let index = datagrams.len() - rest.len();
            let chunk = &rest[..rest.len().min(self.capacity)];
            let slices: Vec<[IoSlice<'_>; 1]> =
                chunk.iter().map(|(d, _)| [IoSlice::new(d)]).collect();
            let addresses: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|(_, to)| Some(SockaddrStorage::from(*to)))
                .collect();
            let result = sendmmsg(
                socket.as_raw_fd(),
                &mut self.headers,
                &slices,
                &addresses,
                [],
                MsgFlags::empty(),
            )
            .map(|r| r.count());
            match result {
                // The kernel stops at the first datagram it cannot send; the next call
                // starts with it and reports its error.
                Ok(n) if n > 0 => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => {
                    failed.push((index, std::io::Error::other("sendmmsg sent nothing")));
                    rest = &rest[1..];
                }
                Err(e) => {
                    failed.push((index, std::io::Error::from(e)));
                    rest = &rest[1..];
                }
            }
        }
        failed
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_takes_what_is_queued_and_answers_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let clients: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (n, c) in clients.iter().enumerate() {
            c.send_to(&[n as u8; 7], server.local_addr().unwrap())
                .unwrap();
        }
        // Loopback delivers at once; all three are queued before the call.
        std::thread::sleep(Duration::from_millis(50));
        let mut batch = ReceiveBatch::new(2, 4096);
        assert_eq!(batch.receive(&server).unwrap(), 2, "no more than the batch");
        let mut answers: Vec<(Vec<u8>, SocketAddr)> = batch
            .datagrams()
            .map(|(d, from)| (d.to_vec(), from))
            .collect();
        assert_eq!(
            batch.receive(&server).unwrap(),
            1,
            "the rest on the next call"
        );
        answers.extend(batch.datagrams().map(|(d, from)| (d.to_vec(), from)));
        assert_eq!(answers.len(), 3);
        assert!(SendBatch::new(2).send(&server, &answers).is_empty());
        for (n, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 64];
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let (len, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!(from, server.local_addr().unwrap());
            assert_eq!(&buf[..len], &[n as u8; 7], "each answer to its own sender");
        }
        // Nothing queued: the read timeout ends the wait.
        let err = batch.receive(&server).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err}"
        );
    }

    #[test]
    fn a_refused_datagram_is_reported_and_the_rest_still_go() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = client.local_addr().unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap(); // EAFNOSUPPORT on an IPv4 socket
        let failed =
            SendBatch::new(8).send(&server, &[(vec![1], to), (vec![2], v6), (vec![3], to)]);
        assert_eq!(failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
        let mut buf = [0u8; 8];
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for expected in [1u8, 3] {
            let (len, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], &[expected]);
        }
    }

    #[test]
    fn an_oversized_datagram_is_cut_to_the_buffer() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(&[9u8; 100], server.local_addr().unwrap())
            .unwrap();
        let mut batch = ReceiveBatch::new(4, 20);
        assert_eq!(batch.receive(&server).unwrap(), 1);
        let (d, _) = batch.datagrams().next().unwrap();
        assert_eq!(d.len(), 20);
    }

    #[test]
    fn timestamps_are_when_the_kernel_received_not_when_read() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        stamp_arrivals(&server).unwrap();
        let mut batch = ReceiveBatch::with_timestamps(4, 64);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel turns stamping on a moment after the first socket asks for it.
        std::thread::sleep(Duration::from_millis(100));
        let before = SystemTime::now();
        client.send_to(b"x", server.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(batch.receive(&server).unwrap(), 1);
        let read = SystemTime::now();
        let (_, _, at) = batch.timed_datagrams().next().unwrap();
        let at = at.expect("SO_TIMESTAMPNS gives each datagram its arrival");
        assert!(at >= before - Duration::from_millis(5), "{at:?} {before:?}");
        assert!(
            read.duration_since(at).unwrap() >= Duration::from_millis(150),
            "stamped on arrival, 200 ms before it was read"
        );
        // Without timestamps turned on, there are none.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"y", plain.local_addr().unwrap()).unwrap();
        let mut untimed = ReceiveBatch::new(4, 64);
        assert_eq!(untimed.receive(&plain).unwrap(), 1);
        assert!(untimed.timed_datagrams().next().unwrap().2.is_none());
    }
}
