//! Authenticators and password hiding. Everything secret is compared in constant time
//! (`subtle`), so response timing says nothing about how many bytes matched.

use super::packet::Packet;
use super::{HEADER_LEN, attr};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use radius::core::code::Code;
use subtle::ConstantTimeEq;

type HmacMd5 = Hmac<Md5>;

const ZEROS: [u8; 16] = [0u8; 16];

/// An HMAC-MD5 keyed with `secret`. Keying costs two MD5 blocks (the padded key
/// XOR ipad and opad), as much as hashing a typical packet; each thread keeps the
/// keyed state of the secret it used last and clones it, since a server thread
/// mostly answers the same few clients. (Comparing the secret with the cached one
/// is not a secret-dependent branch an attacker can time: both are ours.)
fn hmac(secret: &[u8]) -> HmacMd5 {
    use std::cell::RefCell;
    thread_local! {
        static KEYED: RefCell<Option<(Vec<u8>, HmacMd5)>> = const { RefCell::new(None) };
    }
    KEYED.with(|cell| {
        let mut cached = cell.borrow_mut();
        match cached.as_ref() {
            Some((key, state)) if key.as_slice() == secret => state.clone(),
            _ => {
                // HMAC accepts keys of any length; this cannot fail.
                let state =
                    <HmacMd5 as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
                *cached = Some((secret.to_vec(), state.clone()));
                state
            }
        }
    })
}

/// Feeds `bytes` to the HMAC with the 16-octet value of the Message-Authenticator at
/// `ma_offset` replaced by zeros and, when given, the header's authenticator field
/// replaced by `authenticator` (RFC 3579 section 3.2).
fn hmac_zeroed(
    mac: &mut HmacMd5,
    bytes: &[u8],
    ma_offset: usize,
    authenticator: Option<&[u8; 16]>,
) {
    match authenticator {
        Some(a) => {
            mac.update(&bytes[..4]);
            mac.update(a);
            mac.update(&bytes[HEADER_LEN..ma_offset + 2]);
        }
        None => mac.update(&bytes[..ma_offset + 2]),
    }
    mac.update(&ZEROS);
    mac.update(&bytes[ma_offset + 18..]);
}

/// Verifies the Message-Authenticator of a received packet: `None` when the packet has
/// none, `Some(valid)` otherwise. `authenticator` replaces the header's authenticator
/// for the calculation: the Request Authenticator when checking a response; `None`
/// for an Access-Request or Status-Server, which are hashed as received.
pub fn verify_message_authenticator(
    packet: &Packet<'_>,
    secret: &[u8],
    authenticator: Option<&[u8; 16]>,
) -> Option<bool> {
    let ma = packet.attribute(attr::MESSAGE_AUTHENTICATOR)?;
    let mut mac = hmac(secret);
    hmac_zeroed(&mut mac, packet.bytes(), ma.offset, authenticator);
    let expected = mac.finalize().into_bytes();
    Some(bool::from(expected.as_slice().ct_eq(ma.value)))
}

/// Message-Authenticator of a request being built: `bytes` is the whole packet with the
/// attribute's value still zero and the Request Authenticator in place.
pub fn message_authenticator_for_request(bytes: &[u8], secret: &[u8]) -> [u8; 16] {
    let mut mac = hmac(secret);
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// Message-Authenticator of a response being built: computed with the Request
/// Authenticator of the request answered in the authenticator field (RFC 3579 3.2).
/// `bytes` is the whole response with the attribute value still zero.
pub fn message_authenticator_for_response(
    bytes: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; 16] {
    let mut mac = hmac(secret);
    mac.update(&bytes[..4]);
    mac.update(request_authenticator);
    mac.update(&bytes[HEADER_LEN..]);
    mac.finalize().into_bytes().into()
}

/// Response Authenticator = MD5(Code + Identifier + Length + RequestAuth + Attributes +
/// Secret) (RFC 2865 section 3). `bytes` is the complete response.
pub fn response_authenticator(
    bytes: &[u8],
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&bytes[..4]);
    md5.update(request_authenticator);
    md5.update(&bytes[HEADER_LEN..]);
    md5.update(secret);
    md5.finalize().into()
}

/// Request Authenticator of an Accounting-Request (RFC 2866 section 3):
/// MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret), over the
/// packet's Length (padding excluded).
pub fn accounting_request_authenticator(bytes: &[u8], secret: &[u8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(&bytes[..4]);
    md5.update(ZEROS);
    md5.update(&bytes[HEADER_LEN..]);
    md5.update(secret);
    md5.finalize().into()
}

/// Whether an Accounting-Request (or, RFC 5176, a Disconnect/CoA-Request) is
/// authentic: its Request Authenticator and, when present, its Message-Authenticator
/// (computed with the authenticator field zeroed, as FreeRADIUS and RouterOS do).
pub fn verify_accounting_request(packet: &Packet<'_>, secret: &[u8]) -> bool {
    let expected = accounting_request_authenticator(packet.bytes(), secret);
    let auth_ok = bool::from(expected.ct_eq(packet.authenticator()));
    let ma_ok = verify_message_authenticator(packet, secret, Some(&ZEROS)).unwrap_or(true);
    auth_ok & ma_ok
}

/// Client side: whether `response` answers the request with `request_authenticator`
/// under `secret`: the Response Authenticator and, when present, the
/// Message-Authenticator must both be right. Used by the load generator and tests.
pub fn verify_response(
    response: &Packet<'_>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> bool {
    let expected = response_authenticator(response.bytes(), request_authenticator, secret);
    let auth_ok = bool::from(expected.ct_eq(response.authenticator()));
    // Accounting and CoA/Disconnect responses hash a zero authenticator field;
    // Access responses the Request Authenticator (RFC 3579 3.2).
    let ma_authenticator = match response.code() {
        Code::AccountingResponse
        | Code::DisconnectACK
        | Code::DisconnectNAK
        | Code::CoAACK
        | Code::CoANAK => &ZEROS,
        _ => request_authenticator,
    };
    let ma_ok =
        verify_message_authenticator(response, secret, Some(ma_authenticator)).unwrap_or(true);
    auth_ok & ma_ok
}

/// Reveals a User-Password hidden per RFC 2865 section 5.2:
/// b1 = MD5(S + RA), p1 = c1 xor b1, bi = MD5(S + c(i-1)), pi = ci xor bi.
/// The NUL padding is removed. `hidden` is 16..=128 bytes, a multiple of 16, as
/// [`super::validate`] guarantees; other lengths return `None`.
pub fn pap_decrypt(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Password> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return None;
    }
    let mut out = Password {
        bytes: [0; 128],
        len: 0,
    };
    let mut prev: &[u8] = authenticator;
    for (chunk, plain) in hidden.chunks_exact(16).zip(out.bytes.chunks_exact_mut(16)) {
        let mut md5 = Md5::new();
        md5.update(secret);
        md5.update(prev);
        let b = md5.finalize();
        for ((p, c), b) in plain.iter_mut().zip(chunk).zip(b.iter()) {
            *p = c ^ b;
        }
        prev = chunk;
    }
    let len = out.bytes[..hidden.len()]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    out.len = len as u8; // at most 128
    Some(out)
}

/// A revealed User-Password (at most 128 octets), kept on the stack: the accept
/// path allocates nothing for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    bytes: [u8; 128],
    len: u8,
}

impl std::ops::Deref for Password {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Password({} octets)", self.len)
    }
}

/// Hides a password per RFC 2865 section 5.2, padding with NULs to a multiple of 16.
/// `None` when the password is longer than 128 octets.
pub fn pap_encrypt(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    if password.len() > 128 {
        return None;
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut out = Vec::with_capacity(padded_len);
    let mut prev = *authenticator;
    for i in (0..padded_len).step_by(16) {
        let mut md5 = Md5::new();
        md5.update(secret);
        md5.update(prev);
        let b = md5.finalize();
        for j in 0..16 {
            let p = password.get(i + j).copied().unwrap_or(0);
            prev[j] = p ^ b[j];
        }
        out.extend_from_slice(&prev);
    }
    Some(out)
}

/// CHAP (RFC 1994 section 4.1, RFC 2865 section 5.3): CHAP-Password carries the CHAP
/// identifier and MD5(identifier + password + challenge). The challenge is the
/// CHAP-Challenge attribute when present, else the Request Authenticator.
pub fn chap_matches(chap_password: &[u8], challenge: &[u8], password: &[u8]) -> bool {
    let [ident, response @ ..] = chap_password else {
        return false;
    };
    if response.len() != 16 {
        return false;
    }
    let mut md5 = Md5::new();
    md5.update([*ident]);
    md5.update(password);
    md5.update(challenge);
    bool::from(md5.finalize().as_slice().ct_eq(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::validate;

    #[test]
    fn keyed_state_cache_follows_the_secret() {
        let data = b"any packet bytes at all";
        let fresh = |secret: &[u8]| -> [u8; 16] {
            let mut m = <HmacMd5 as Mac>::new_from_slice(secret).unwrap();
            m.update(data);
            m.finalize().into_bytes().into()
        };
        // Alternating secrets (and a secret that is a prefix of another) never reuse
        // the wrong keyed state.
        for secret in [
            &b"alpha-secret"[..],
            b"beta",
            b"alpha-secret",
            b"alpha",
            b"",
            b"alpha",
        ] {
            assert_eq!(
                message_authenticator_for_request(data, secret),
                fresh(secret),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn pap_round_trips_every_length() {
        let auth = [7u8; 16];
        for len in 0usize..=128 {
            let pw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = pap_encrypt(&pw, b"secret", &auth).unwrap();
            assert_eq!(hidden.len(), len.div_ceil(16).max(1) * 16);
            assert_eq!(&*pap_decrypt(&hidden, b"secret", &auth).unwrap(), &pw[..]);
        }
        assert!(pap_encrypt(&[b'x'; 129], b"s", &auth).is_none());
        assert!(pap_decrypt(&[0u8; 15], b"s", &auth).is_none());
    }

    /// RFC 2865 section 7.1: user "nemo", password "arctangent", secret "xyzzy5461".
    #[test]
    fn rfc2865_7_1_user_password() {
        let request: [u8; 56] = [
            0x01, 0x00, 0x00, 0x38, 0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83,
            0xd5, 0xcb, 0x98, 0xf4, 0x22, 0x7a, 0x01, 0x06, 0x6e, 0x65, 0x6d, 0x6f, 0x02, 0x12,
            0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a,
            0x0a, 0xee, 0x04, 0x06, 0xc0, 0xa8, 0x01, 0x10, 0x05, 0x06, 0x00, 0x00, 0x00, 0x03,
        ];
        let p = validate(&request).unwrap();
        let hidden = p.value(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            &*pap_decrypt(hidden, b"xyzzy5461", p.authenticator()).unwrap(),
            b"arctangent"
        );
        assert_eq!(
            pap_encrypt(b"arctangent", b"xyzzy5461", p.authenticator()).unwrap(),
            hidden
        );
    }

    #[test]
    fn chap_uses_ident_password_challenge() {
        let challenge = [0x11u8; 16];
        let mut md5 = Md5::new();
        md5.update([42u8]);
        md5.update(b"12345");
        md5.update(challenge);
        let mut chap = vec![42u8];
        chap.extend(md5.finalize());
        assert!(chap_matches(&chap, &challenge, b"12345"));
        assert!(!chap_matches(&chap, &challenge, b"12346"));
        assert!(!chap_matches(&chap[..16], &challenge, b"12345"));
        chap[0] = 43;
        assert!(!chap_matches(&chap, &challenge, b"12345"));
    }
}
