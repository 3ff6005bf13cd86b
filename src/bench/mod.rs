//! The load generator behind `pinradius bench`: Access-Requests (PAP,
//! Message-Authenticator, Calling-Station-Id from a pool of devices) or
//! Accounting-Requests, keeping a window of requests outstanding over several sockets,
//! verifying every answer, and reporting requests/s, accepts, rejects, lost, and
//! latency percentiles. It also seeds a store with many tokens and runs a bare UDP
//! echo server (the ceiling any server can reach with this load tool).
//!
//! Every request is built fresh (new Request Authenticator, PAP hiding and
//! Message-Authenticator computed per request), so a server's retransmit cache never
//! answers for it.

pub mod guess;
pub mod radsec;

use crate::protocol::{self, Code, PacketBuilder, attr};
use crate::server::datagrams::{ReceiveBatch, SendBatch, stamp_arrivals};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Access-Request, PAP with the code as password.
    Auth,
    /// Accounting-Request (Interim-Update, a new Acct-Session-Id per device).
    Acct,
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub target: SocketAddr,
    pub secret: String,
    pub load: Load,
    /// Codes to log in with, used round-robin.
    pub codes: Vec<String>,
    /// Distinct devices (Calling-Station-Id) to cycle through.
    pub devices: u32,
    /// Device numbers start here (a random start gives every run new devices).
    pub first_device: u32,
    /// Requests outstanding in total, spread over `sockets` (at most 256 each).
    pub window: u32,
    pub sockets: u32,
    pub duration: Duration,
    /// Count any answer with the right identifier (for the echo ceiling).
    pub no_verify: bool,
    /// An unanswered request is counted lost after this long.
    pub timeout: Duration,
    /// Requests per second to send in total (open loop, paced), instead of as fast
    /// as the window allows: for latency at a given load.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    pub sent: u64,
    pub accepts: u64,
    pub rejects: u64,
    /// Answers that did not verify (wrong authenticator, wrong code).
    pub bad: u64,
    pub lost: u64,
    pub elapsed: Duration,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl BenchReport {
    pub fn answered(&self) -> u64 {
        self.accepts + self.rejects
    }

    pub fn per_second(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} requests/s over {:.1} s: sent {}, accepts {}, rejects {}, bad {}, lost {}; latency p50 {} us, p99 {} us, p99.9 {} us",
            self.per_second(),
            self.elapsed.as_secs_f64(),
            self.sent,
            self.accepts,
            self.rejects,
            self.bad,
            self.lost,
            self.p50_us,
            self.p99_us,
            self.p999_us
        )
    }
}

/// The Calling-Station-Id of device number `n`: `02-42-` and the number's four bytes in
/// hex, without allocating (the load tool builds one per request, and its own cost is
/// part of every figure it reports).
fn device_mac_bytes(n: u32) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = *b"02-42-00-00-00-00";
    for (i, byte) in n.to_be_bytes().into_iter().enumerate() {
        out[6 + 3 * i] = HEX[usize::from(byte >> 4)];
        out[7 + 3 * i] = HEX[usize::from(byte & 0xf)];
    }
    out
}

/// The code `bench seed` gives token number `n`.
pub fn seeded_code(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:07}")
}

fn random_authenticator(state: &mut u64) -> [u8; 16] {
    // xorshift64*: fast, and distinct per request, which is all a load tool needs.
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

/// Paced runs send what has fallen due at most once per tick, as one batch, instead of
/// one request per wake-up: at 60,000/s that was a timer wake-up and a send call per
/// request, and the load tool took most of a core of the two it shares with the
/// server. Each request is stamped when its batch is sent.
const PACE_TICK: Duration = Duration::from_micros(100);

struct Outstanding {
    sent_at: Instant,
    /// The same moment on the clock the kernel stamps arrivals with.
    sent_wall: SystemTime,
    authenticator: [u8; 16],
}

struct Worker {
    sock: UdpSocket,
    /// Whether the kernel stamps the socket's arrivals.
    timed: bool,
    slots: Vec<Option<Outstanding>>,
    /// The authenticator of the request last counted lost under each identifier: an
    /// answer that comes after its request was given up (and the identifier reused)
    /// is recognised as late, not counted as a bad answer to the new request.
    given_up: Vec<Option<[u8; 16]>>,
    next_id: u8,
    in_flight: u32,
    latencies: Vec<u32>,
    report: BenchReport,
    rng: u64,
}

pub(super) fn build(
    o: &BenchOptions,
    id: u8,
    seq: u64,
    authenticator: &mut [u8; 16],
    rng: &mut u64,
) -> Vec<u8> {
    let secret = o.secret.as_bytes();
    let code = &o.codes[(seq % o.codes.len() as u64) as usize];
    let device = ((seq % u64::from(o.devices.max(1))) as u32).wrapping_add(o.first_device);
    match o.load {
        Load::Auth => {
            *authenticator = random_authenticator(rng);
            let mut b = PacketBuilder::with_message_authenticator(Code::AccessRequest, id);
            let hidden =
                protocol::pap_encrypt(code.as_bytes(), secret, authenticator).unwrap_or_default();
            let _ = b.add(attr::USER_NAME, code.as_bytes());
            let _ = b.add(attr::USER_PASSWORD, &hidden);
            let _ = b.add(attr::CALLING_STATION_ID, &device_mac_bytes(device));
            b.finish_request(authenticator, secret)
        }
        Load::Acct => {
            let mut b = PacketBuilder::without_message_authenticator(Code::AccountingRequest, id);
            let _ = b.add_u32(attr::ACCT_STATUS_TYPE, 3);
            let _ = b.add(attr::ACCT_SESSION_ID, format!("bench-{device}").as_bytes());
            let _ = b.add(attr::USER_NAME, code.as_bytes());
            let _ = b.add(attr::CALLING_STATION_ID, &device_mac_bytes(device));
            let _ = b.add_u32(
                attr::ACCT_SESSION_TIME,
                (seq / u64::from(o.devices.max(1))) as u32,
            );
            let bytes = b.finish_accounting_request(secret);
            authenticator.copy_from_slice(&bytes[4..20]);
            bytes
        }
    }
}

impl Worker {
    fn run(
        mut self,
        o: &BenchOptions,
        per_socket: u32,
        first_seq: u64,
        stride: u64,
        deadline: Instant,
    ) -> (BenchReport, Vec<u32>) {
        let mut seq = first_seq;
        let started = Instant::now();
        let socket_rate = o.rate.map(|r| r / stride as f64);
        let timed = self.timed;
        let mut batch = if timed {
            ReceiveBatch::with_timestamps(64, 4096)
        } else {
            ReceiveBatch::new(64, 4096)
        };
        let mut sender = SendBatch::new(64);
        let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(per_socket as usize);
        let mut building: Vec<u8> = Vec::with_capacity(per_socket as usize);
        let mut last_sweep = Instant::now();
        // Paced: when the next burst of due requests may go (see PACE_TICK).
        let mut next_burst = started;
        loop {
            let now = Instant::now();
            let sending = now < deadline && (socket_rate.is_none() || now >= next_burst);
            let paced_out = |sent: u64| {
                socket_rate.is_some_and(|r| sent as f64 >= started.elapsed().as_secs_f64() * r)
            };
            // Fill the window in one batch (one sendmmsg per up to 64 requests).
            out.clear();
            building.clear();
            while sending
                && self.in_flight + (out.len() as u32) < per_socket
                && !paced_out(self.report.sent + out.len() as u64)
            {
                // The next free identifier.
                while self.slots[usize::from(self.next_id)].is_some() {
                    self.next_id = self.next_id.wrapping_add(1);
                }
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let mut authenticator = [0u8; 16];
                let bytes = build(o, id, seq, &mut authenticator, &mut self.rng);
                seq += stride;
                out.push((bytes, o.target));
                building.push(id);
                // Reserved now; stamped when sent.
                self.slots[usize::from(id)] = Some(Outstanding {
                    sent_at: now,
                    sent_wall: SystemTime::UNIX_EPOCH,
                    authenticator,
                });
            }
            if !out.is_empty() {
                let (sent_at, sent_wall) = (Instant::now(), SystemTime::now());
                next_burst = sent_at + PACE_TICK;
                let failed = sender.send(&self.sock, &out);
                for &id in &building {
                    if let Some(s) = self.slots[usize::from(id)].as_mut() {
                        s.sent_at = sent_at;
                        s.sent_wall = sent_wall;
                    }
                }
                // What the kernel refused was never in flight.
                for (n, _) in &failed {
                    self.slots[usize::from(building[*n])] = None;
                }
                let sent = out.len() - failed.len();
                self.in_flight += sent as u32;
                self.report.sent += sent as u64;
            }
            if now >= deadline && self.in_flight == 0 {
                break;
            }
            if now.duration_since(last_sweep) > Duration::from_millis(100) {
                last_sweep = now;
                for (index, slot) in self.slots.iter_mut().enumerate() {
                    if slot
                        .as_ref()
                        .is_some_and(|s| now.duration_since(s.sent_at) > o.timeout)
                    {
                        let lost = slot.take().map(|s| s.authenticator);
                        self.given_up[index] = lost;
                        self.in_flight -= 1;
                        self.report.lost += 1;
                    }
                }
                if now > deadline + o.timeout {
                    break;
                }
            }
            // Paced: sleep until the next burst is due, then take every answer that
            // came meanwhile. Answers are timed by their kernel arrival stamps, so the
            // wait does not count as latency; waking per answer would (and would take
            // the CPU the server needs). The timer is precise to microseconds; a socket
            // read timeout is not.
            if let Some(rate) = socket_rate.filter(|_| now < deadline) {
                let due = started + Duration::from_secs_f64((self.report.sent + 1) as f64 / rate);
                let wait = due
                    .max(next_burst)
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20));
                if timed {
                    std::thread::sleep(wait);
                } else if !readable_within(&self.sock, wait) {
                    // Without stamps an answer is timed when read: wake for it.
                    continue;
                }
                while readable_within(&self.sock, Duration::ZERO) {
                    if batch.receive(&self.sock).is_err() {
                        break;
                    }
                    let received = Instant::now();
                    for (datagram, _, arrived) in batch.timed_datagrams() {
                        self.answer(o, datagram, received, arrived);
                    }
                }
                continue;
            }
            if batch.receive(&self.sock).is_err() {
                continue;
            }
            let received = Instant::now();
            for (datagram, _, arrived) in batch.timed_datagrams() {
                self.answer(o, datagram, received, arrived);
            }
        }
        (self.report, self.latencies)
    }

    /// Matches a response to its request, verifies it and counts it.
    fn answer(
        &mut self,
        o: &BenchOptions,
        datagram: &[u8],
        received: Instant,
        arrived: Option<SystemTime>,
    ) {
        let Some(id) = datagram.get(1).map(|id| usize::from(*id)) else {
            return;
        };
        let Some(request) = self.slots[id].take() else {
            return;
        };
        // The answer's code when it verifies against the request now outstanding.
        let verified = |authenticator: &[u8; 16]| {
            protocol::validate(datagram)
                .ok()
                .filter(|p| protocol::verify_response(p, authenticator, o.secret.as_bytes()))
                .map(|p| p.code())
        };
        let code = if o.no_verify {
            Some(Code::AccessAccept)
        } else {
            verified(&request.authenticator)
        };
        if code.is_none() && self.given_up[id].is_some_and(|a| verified(&a).is_some()) {
            // The late answer to the request given up under this identifier: the one
            // now outstanding under it is still waiting.
            self.given_up[id] = None;
            self.slots[id] = Some(request);
            return;
        }
        self.in_flight -= 1;
        // The kernel's arrival stamp when there is one (the wall clock could step
        // between send and arrival: then the monotonic time of reading is used).
        let latency = arrived
            .and_then(|at| at.duration_since(request.sent_wall).ok())
            .unwrap_or_else(|| received.duration_since(request.sent_at));
        self.latencies
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        match code {
            Some(Code::AccessAccept | Code::AccountingResponse) => self.report.accepts += 1,
            Some(Code::AccessReject) => self.report.rejects += 1,
            _ => self.report.bad += 1,
        }
    }
}

/// Whether `sock` has a datagram waiting, waiting up to `wait` for one.
fn readable_within(sock: &UdpSocket, wait: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, ppoll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    let timeout = nix::sys::time::TimeSpec::from_duration(wait);
    matches!(ppoll(&mut fds, Some(timeout), None), Ok(n) if n > 0)
}

/// Runs the load for `duration` and reports. Each socket has its own thread.
pub fn run(o: &BenchOptions) -> std::io::Result<BenchReport> {
    let sockets = o.sockets.clamp(1, 64);
    let per_socket = (o.window / sockets).clamp(1, 256);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut workers = Vec::new();
    for s in 0..sockets {
        let sock = UdpSocket::bind(if o.target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        // Answers are timed by the kernel's arrival stamp where the socket gives one.
        let timed = stamp_arrivals(&sock).is_ok();
        workers.push(Worker {
            sock,
            timed,
            slots: (0..256).map(|_| None).collect(),
            given_up: vec![None; 256],
            next_id: 0,
            in_flight: 0,
            latencies: Vec::with_capacity(1 << 20),
            report: BenchReport::default(),
            rng: 0x9E37_79B9_7F4A_7C15
                ^ (u64::from(s) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9)
                ^ seed,
        });
    }
    // The kernel starts stamping a moment after the first socket asks.
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    let deadline = start + o.duration;
    let results = std::thread::scope(|scope| -> std::io::Result<Vec<(BenchReport, Vec<u32>)>> {
        let mut handles = Vec::new();
        for (s, worker) in (0..sockets).zip(workers) {
            handles.push(scope.spawn(move || {
                worker.run(o, per_socket, u64::from(s), u64::from(sockets), deadline)
            }));
        }
        Ok(handles
            .into_iter()
            .map(|h| h.join().expect("bench worker"))
            .collect())
    })?;
    let elapsed = start
        .elapsed()
        .min(o.duration + o.timeout)
        .max(Duration::from_millis(1));
    let mut report = BenchReport {
        elapsed: o.duration.min(elapsed),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    for (r, l) in results {
        report.sent += r.sent;
        report.accepts += r.accepts;
        report.rejects += r.rejects;
        report.bad += r.bad;
        report.lost += r.lost;
        latencies.extend(l);
    }
    percentiles(&mut report, latencies);
    Ok(report)
}

/// Sets the report's latency percentiles from every answer's latency (microseconds).
fn percentiles(report: &mut BenchReport, mut latencies: Vec<u32>) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0)
    };
    report.p50_us = u64::from(pct(0.50));
    report.p99_us = u64::from(pct(0.99));
    report.p999_us = u64::from(pct(0.999));
}

/// A bare UDP echo server: the ceiling for any RADIUS server measured with this tool
/// on this machine. One thread per socket, all bound to `listen` with SO_REUSEPORT
/// would need a dependency; one socket and `threads` threads sharing it does as well.
pub fn echo(listen: SocketAddr, threads: u32) -> std::io::Result<()> {
    let sock = UdpSocket::bind(listen)?;
    eprintln!("echo listening on {}", sock.local_addr()?);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let sock = sock.try_clone().expect("clone socket");
            scope.spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok((len, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..len], from);
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mac;

    #[test]
    fn device_numbers_are_distinct_locally_administered_macs() {
        let mac = |n| {
            std::str::from_utf8(&device_mac_bytes(n))
                .unwrap()
                .parse::<Mac>()
                .unwrap()
        };
        assert_eq!(mac(0x0102_0AFF).to_string(), "02:42:01:02:0A:FF");
        assert_ne!(mac(1), mac(256));
    }

    #[test]
    fn a_late_answer_to_a_request_given_up_is_not_a_bad_answer() {
        let o = BenchOptions {
            target: "127.0.0.1:1812".parse().unwrap(),
            secret: "s3cret".into(),
            load: Load::Auth,
            codes: vec!["12345".into()],
            devices: 1,
            first_device: 0,
            window: 1,
            sockets: 1,
            duration: Duration::from_secs(1),
            no_verify: false,
            timeout: Duration::from_secs(1),
            rate: None,
        };
        let mut w = Worker {
            sock: UdpSocket::bind("127.0.0.1:0").unwrap(),
            timed: false,
            slots: (0..256).map(|_| None).collect(),
            given_up: vec![None; 256],
            next_id: 0,
            in_flight: 1,
            latencies: Vec::new(),
            report: BenchReport::default(),
            rng: 1,
        };
        let (old, new) = ([1u8; 16], [2u8; 16]);
        // Identifier 7 was given up with `old` and is now reused with `new`.
        w.given_up[7] = Some(old);
        w.slots[7] = Some(Outstanding {
            sent_at: Instant::now(),
            sent_wall: SystemTime::now(),
            authenticator: new,
        });
        let answer = |to: &[u8; 16]| {
            PacketBuilder::with_message_authenticator(Code::AccessAccept, 7)
                .finish_response(to, o.secret.as_bytes())
        };
        w.answer(&o, &answer(&old), Instant::now(), None);
        assert_eq!((w.report.bad, w.report.accepts, w.in_flight), (0, 0, 1));
        assert!(w.slots[7].is_some(), "the new request is still waiting");
        w.answer(&o, &answer(&new), Instant::now(), None);
        assert_eq!((w.report.bad, w.report.accepts, w.in_flight), (0, 1, 0));
        // Anything else that does not verify is bad.
        w.in_flight = 1;
        w.slots[7] = Some(Outstanding {
            sent_at: Instant::now(),
            sent_wall: SystemTime::now(),
            authenticator: new,
        });
        w.answer(&o, &answer(&[3; 16]), Instant::now(), None);
        assert_eq!(w.report.bad, 1);
    }
}
