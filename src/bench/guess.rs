//! `pinradius bench guess`: an attacker behind one NAS guessing 5-digit PINs as fast
//! as the server answers, to measure what the failure budgets leave him. PINs are
//! tried in a shuffled order (an attacker does not know which are valid), by PAP with
//! the PIN as password, from a new MAC per request, with no Calling-Station-Id, or
//! from one MAC, with `window` requests in flight. Every answer is classified:
//! a checked guess (an Access-Accept, or a reject that followed a look-up) or a
//! refusal by the budgets ("Too many failed ...": nothing was looked up).

use super::{device_mac_bytes, random_authenticator};
use crate::protocol::{self, Code, PacketBuilder, attr};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Where the attacker's Calling-Station-Id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MacMode {
    /// A new MAC for every guess.
    Rotating,
    /// No Calling-Station-Id at all.
    None,
    /// One MAC for every guess.
    One,
}

#[derive(Debug, Clone)]
pub struct GuessOptions {
    pub target: SocketAddr,
    pub secret: String,
    pub macs: MacMode,
    /// Requests in flight (at most 255: one socket's identifiers).
    pub window: u32,
    pub duration: Duration,
    /// Seed of the guessing order.
    pub seed: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuessReport {
    pub sent: u64,
    /// Guesses the server looked up: accepts and rejects other than the budgets'.
    pub checked: u64,
    pub accepts: u64,
    /// Refused by a lock or spent budget, without a look-up.
    pub refused: u64,
    pub lost: u64,
    pub elapsed: Duration,
    /// From the first request to the first Access-Accept.
    pub first_accept: Option<Duration>,
}

impl std::fmt::Display for GuessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let minutes = self.elapsed.as_secs_f64() / 60.0;
        write!(
            f,
            "{:.1} checked guesses/minute over {:.1} s: sent {}, checked {}, accepts {}, refused unchecked {}, lost {}; first valid PIN ",
            self.checked as f64 / minutes.max(1e-9),
            self.elapsed.as_secs_f64(),
            self.sent,
            self.checked,
            self.accepts,
            self.refused,
            self.lost,
        )?;
        match self.first_accept {
            Some(t) => write!(f, "after {:.3} s", t.as_secs_f64()),
            None => f.write_str("not found"),
        }
    }
}

/// The 100,000 5-digit PINs in a shuffled order (Fisher-Yates, xorshift).
fn guessing_order(seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..100_000).collect();
    let mut state = seed | 1;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Runs the attack for `duration` (or until all 100,000 PINs were checked). A guess
/// refused unchecked or lost is tried again.
pub fn run(o: &GuessOptions) -> std::io::Result<GuessReport> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(o.target)?;
    sock.set_read_timeout(Some(Duration::from_millis(5)))?;
    let secret = o.secret.as_bytes();
    let order = guessing_order(o.seed);
    let window = o.window.clamp(1, 255) as usize;
    let timeout = Duration::from_secs(2);
    let mut report = GuessReport::default();
    let mut rng = o.seed ^ 0x9E37_79B9_7F4A_7C15;
    // identifier -> (sent at, request authenticator, PIN index)
    let mut outstanding: HashMap<u8, (Instant, [u8; 16], usize)> = HashMap::new();
    // Guesses refused unchecked are tried again, before new ones.
    let mut retry: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut next_new = 0usize;
    let mut next_id: u8 = 0;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let running = started.elapsed() < o.duration;
        while running && outstanding.len() < window {
            let Some(index) = retry.pop_front().or_else(|| {
                (next_new < order.len()).then(|| {
                    next_new += 1;
                    next_new - 1
                })
            }) else {
                break;
            };
            while outstanding.contains_key(&next_id) {
                next_id = next_id.wrapping_add(1);
            }
            let n = report.sent;
            let pin = format!("{:05}", order[index]);
            let authenticator = random_authenticator(&mut rng);
            let hidden =
                protocol::pap_encrypt(pin.as_bytes(), secret, &authenticator).unwrap_or_default();
            let mut b = PacketBuilder::with_message_authenticator(Code::AccessRequest, next_id);
            let _ = b.add(attr::USER_NAME, pin.as_bytes());
            let _ = b.add(attr::USER_PASSWORD, &hidden);
            match o.macs {
                MacMode::Rotating => {
                    let _ = b.add(attr::CALLING_STATION_ID, &device_mac_bytes(n as u32));
                }
                MacMode::One => {
                    let _ = b.add(attr::CALLING_STATION_ID, &device_mac_bytes(7));
                }
                MacMode::None => {}
            }
            sock.send(&b.finish_request(&authenticator, secret))?;
            outstanding.insert(next_id, (Instant::now(), authenticator, index));
            next_id = next_id.wrapping_add(1);
            report.sent += 1;
        }
        if outstanding.is_empty() && (!running || retry.is_empty() && next_new >= order.len()) {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(len) => {
                let Ok(reply) = protocol::validate(&buf[..len]) else {
                    continue;
                };
                let Some((_, authenticator, index)) = outstanding.remove(&reply.identifier())
                else {
                    continue;
                };
                if !protocol::verify_response(&reply, &authenticator, secret) {
                    continue;
                }
                let message = reply.value(attr::REPLY_MESSAGE).unwrap_or_default();
                match reply.code() {
                    Code::AccessAccept => {
                        report.checked += 1;
                        report.accepts += 1;
                        report.first_accept.get_or_insert(started.elapsed());
                    }
                    _ if message.starts_with(b"Too many failed") => {
                        report.refused += 1;
                        retry.push_back(index);
                    }
                    _ => report.checked += 1,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let before = outstanding.len();
        outstanding.retain(|_, (sent, _, index)| {
            let live = now.duration_since(*sent) < timeout;
            if !live {
                retry.push_back(*index);
            }
            live
        });
        report.lost += (before - outstanding.len()) as u64;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_guessing_order_is_a_permutation() {
        let mut order = super::guessing_order(42);
        assert_ne!(order[..10], (0..10).collect::<Vec<_>>()[..]);
        order.sort_unstable();
        assert_eq!(order, (0..100_000).collect::<Vec<_>>());
    }
}
