//! Strict validation of a raw datagram before anything reads it (RFC 2865 section 3 and
//! section 5). A [`Packet`] can only be obtained from [`validate`], so code holding one
//! may index attributes without further bounds checks.

use super::{HEADER_LEN, MAX_PACKET_LEN, attr};
use radius::core::code::Code;
use thiserror::Error;

/// Why a datagram is not a RADIUS packet we will look at. Every variant names the field
/// and the offending value, because these end up in rate-limited logs.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("datagram of {len} bytes is shorter than the 20-byte RADIUS header")]
    TooShort { len: usize },
    #[error("Length field {length} is outside 20..=4096")]
    LengthOutOfRange { length: usize },
    #[error("Length field {length} is larger than the {datagram} bytes received")]
    LengthBeyondDatagram { length: usize, datagram: usize },
    #[error("Code {code} is not a RADIUS packet code")]
    UnknownCode { code: u8 },
    #[error("attribute {typ} at offset {offset}: header runs past the end of the packet")]
    AttributeHeaderTruncated { typ: u8, offset: usize },
    #[error("attribute {typ} at offset {offset}: length {length} is less than 2")]
    AttributeLengthTooSmall { typ: u8, offset: usize, length: u8 },
    #[error("attribute {typ} at offset {offset}: length {length} runs past the packet end ({end})")]
    AttributePastEnd {
        typ: u8,
        offset: usize,
        length: u8,
        end: usize,
    },
    #[error("attribute {name} at offset {offset}: value length {length} is invalid ({rule})")]
    BadAttributeLength {
        name: &'static str,
        offset: usize,
        length: usize,
        rule: &'static str,
    },
    #[error("attribute {name} appears {count} times; at most once is allowed")]
    Repeated { name: &'static str, count: usize },
}

/// A datagram that passed [`validate`]: the header is sane and the attributes tile the
/// packet exactly. Borrowed, so validating allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The packet proper: exactly `Length` bytes. Octets past Length in the datagram are
    /// padding that RFC 2865 section 3 says to ignore.
    bytes: &'a [u8],
    /// Decoded once so callers can `match` on it.
    code: Code,
}

/// One attribute: its type, its value, and where the attribute header starts in the
/// packet (needed to zero the Message-Authenticator when verifying it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub typ: u8,
    pub value: &'a [u8],
    pub offset: usize,
}

/// Iterator over the attributes of a validated packet.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // Bounds were proven by `validate`; `get` keeps this panic-free regardless.
        let typ = *self.bytes.get(self.pos)?;
        let len = usize::from(*self.bytes.get(self.pos + 1)?);
        let value = self.bytes.get(self.pos + 2..self.pos + len)?;
        let offset = self.pos;
        self.pos += len;
        Some(Attribute { typ, value, offset })
    }
}

/// Codes this server may receive or send; anything else is not RADIUS to us.
fn known_code(code: u8) -> Option<Code> {
    match Code::from(code) {
        Code::Invalid | Code::Reserved => None,
        c => Some(c),
    }
}

/// Value-length rules for the attributes whose shape is fixed by their RFC. A packet
/// breaking one is malformed and is dropped, never answered.
fn check_value_length(typ: u8, offset: usize, len: usize) -> Result<(), ProtocolError> {
    let (name, ok, rule) = match typ {
        attr::USER_PASSWORD => (
            "User-Password",
            (16..=128).contains(&len) && len.is_multiple_of(16),
            "16 to 128, a multiple of 16 (RFC 2865 5.2)",
        ),
        attr::CHAP_PASSWORD => ("CHAP-Password", len == 17, "exactly 17 (RFC 2865 5.3)"),
        attr::CHAP_CHALLENGE => ("CHAP-Challenge", len >= 5, "at least 5 (RFC 2865 5.40)"),
        attr::MESSAGE_AUTHENTICATOR => (
            "Message-Authenticator",
            len == 16,
            "exactly 16 (RFC 3579 3.2)",
        ),
        attr::VENDOR_SPECIFIC => ("Vendor-Specific", len >= 5, "at least 5 (RFC 2865 5.26)"),
        attr::USER_NAME => ("User-Name", len >= 1, "at least 1 (RFC 2865 5.1)"),
        _ => return Ok(()),
    };
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::BadAttributeLength {
            name,
            offset,
            length: len,
            rule,
        })
    }
}

/// Checks a raw datagram and returns a view of it. Rejects: fewer than 20 bytes, a
/// Length outside 20..=4096 or beyond the datagram, unknown codes, attributes shorter
/// than 2 or running past Length, attributes that do not end exactly at Length, values
/// of the wrong size for their type, and a repeated Message-Authenticator,
/// User-Password or CHAP-Password (RFC 2865 section 5.44 table: "0-1").
pub fn validate(datagram: &[u8]) -> Result<Packet<'_>, ProtocolError> {
    if datagram.len() < HEADER_LEN {
        return Err(ProtocolError::TooShort {
            len: datagram.len(),
        });
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&length) {
        return Err(ProtocolError::LengthOutOfRange { length });
    }
    if length > datagram.len() {
        return Err(ProtocolError::LengthBeyondDatagram {
            length,
            datagram: datagram.len(),
        });
    }
    let code = known_code(datagram[0]).ok_or(ProtocolError::UnknownCode { code: datagram[0] })?;
    let bytes = &datagram[..length];

    let mut pos = HEADER_LEN;
    let (mut ma, mut pap, mut chap) = (0usize, 0usize, 0usize);
    while pos < length {
        let typ = bytes[pos];
        let Some(&alen) = bytes.get(pos + 1) else {
            return Err(ProtocolError::AttributeHeaderTruncated { typ, offset: pos });
        };
        if alen < 2 {
            return Err(ProtocolError::AttributeLengthTooSmall {
                typ,
                offset: pos,
                length: alen,
            });
        }
        let end = pos + usize::from(alen);
        if end > length {
            return Err(ProtocolError::AttributePastEnd {
                typ,
                offset: pos,
                length: alen,
                end: length,
            });
        }
        check_value_length(typ, pos, usize::from(alen) - 2)?;
        match typ {
            attr::MESSAGE_AUTHENTICATOR => ma += 1,
            attr::USER_PASSWORD => pap += 1,
            attr::CHAP_PASSWORD => chap += 1,
            _ => {}
        }
        pos = end;
    }
    for (name, count) in [
        ("Message-Authenticator", ma),
        ("User-Password", pap),
        ("CHAP-Password", chap),
    ] {
        if count > 1 {
            return Err(ProtocolError::Repeated { name, count });
        }
    }
    Ok(Packet { bytes, code })
}

impl<'a> Packet<'a> {
    pub fn code(&self) -> Code {
        self.code
    }

    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    /// The Request or Response Authenticator field.
    pub fn authenticator(&self) -> &'a [u8; 16] {
        self.bytes[4..HEADER_LEN]
            .try_into()
            .expect("header is 20 bytes by validation")
    }

    /// The packet's bytes, exactly `Length` long.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            bytes: self.bytes,
            pos: HEADER_LEN,
        }
    }

    /// The first attribute of type `typ`.
    pub fn attribute(&self, typ: u8) -> Option<Attribute<'a>> {
        self.attributes().find(|a| a.typ == typ)
    }

    /// The value of the first attribute of type `typ`.
    pub fn value(&self, typ: u8) -> Option<&'a [u8]> {
        self.attribute(typ).map(|a| a.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u8, attrs: &[u8], pad: usize) -> Vec<u8> {
        let len = (HEADER_LEN + attrs.len()) as u16;
        let mut v = vec![code, 7];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(attrs);
        v.extend(std::iter::repeat_n(0xEE, pad));
        v
    }

    #[test]
    fn accepts_minimal_and_ignores_padding() {
        let p = packet(1, &[1, 5, b'a', b'b', b'c'], 9);
        let v = validate(&p).unwrap();
        assert_eq!(v.bytes().len(), 25);
        assert_eq!(v.value(attr::USER_NAME), Some(&b"abc"[..]));
        assert_eq!(v.attributes().count(), 1);
    }

    #[test]
    fn rejects_each_malformation_with_its_own_error() {
        assert!(matches!(
            validate(&[1u8; 19]),
            Err(ProtocolError::TooShort { len: 19 })
        ));
        let mut p = packet(1, &[], 0);
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            validate(&p),
            Err(ProtocolError::LengthOutOfRange { length: 19 })
        ));
        p[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert!(matches!(
            validate(&p),
            Err(ProtocolError::LengthOutOfRange { length: 4097 })
        ));
        p[2..4].copy_from_slice(&21u16.to_be_bytes());
        assert!(matches!(
            validate(&p),
            Err(ProtocolError::LengthBeyondDatagram {
                length: 21,
                datagram: 20
            })
        ));
        assert!(matches!(
            validate(&packet(99, &[], 0)),
            Err(ProtocolError::UnknownCode { code: 99 })
        ));
        assert!(matches!(
            validate(&packet(0, &[], 0)),
            Err(ProtocolError::UnknownCode { code: 0 })
        ));
        assert!(matches!(
            validate(&packet(1, &[1], 0)),
            Err(ProtocolError::AttributeHeaderTruncated { .. })
        ));
        assert!(matches!(
            validate(&packet(1, &[1, 0], 0)),
            Err(ProtocolError::AttributeLengthTooSmall { length: 0, .. })
        ));
        assert!(matches!(
            validate(&packet(1, &[1, 1], 0)),
            Err(ProtocolError::AttributeLengthTooSmall { length: 1, .. })
        ));
        assert!(matches!(
            validate(&packet(1, &[1, 9, b'a'], 0)),
            Err(ProtocolError::AttributePastEnd { .. })
        ));
        // Length covers only part of the attribute even though the datagram holds it all.
        let mut p = packet(1, &[1, 5, b'a', b'b', b'c'], 0);
        p[2..4].copy_from_slice(&23u16.to_be_bytes());
        assert!(matches!(
            validate(&p),
            Err(ProtocolError::AttributePastEnd { .. })
        ));
    }

    #[test]
    fn rejects_bad_value_lengths() {
        let mut pw = vec![2, 2 + 15];
        pw.extend([0u8; 15]);
        assert!(matches!(
            validate(&packet(1, &pw, 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "User-Password",
                ..
            })
        ));
        let mut pw = vec![2, 2 + 144];
        pw.extend([0u8; 144]);
        assert!(matches!(
            validate(&packet(1, &pw, 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "User-Password",
                ..
            })
        ));
        let mut ma = vec![80, 2 + 15];
        ma.extend([0u8; 15]);
        assert!(matches!(
            validate(&packet(1, &ma, 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "Message-Authenticator",
                ..
            })
        ));
        let mut chap = vec![3, 2 + 16];
        chap.extend([0u8; 16]);
        assert!(matches!(
            validate(&packet(1, &chap, 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "CHAP-Password",
                ..
            })
        ));
        assert!(matches!(
            validate(&packet(1, &[26, 5, 0, 0, 1], 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "Vendor-Specific",
                ..
            })
        ));
        assert!(matches!(
            validate(&packet(1, &[1, 2], 0)),
            Err(ProtocolError::BadAttributeLength {
                name: "User-Name",
                ..
            })
        ));
    }

    #[test]
    fn rejects_repeated_message_authenticator() {
        let mut attrs = vec![80, 18];
        attrs.extend([0u8; 16]);
        attrs.extend(attrs.clone());
        assert!(matches!(
            validate(&packet(1, &attrs, 0)),
            Err(ProtocolError::Repeated {
                name: "Message-Authenticator",
                count: 2
            })
        ));
    }

    #[test]
    fn accepts_4096_byte_packet() {
        let mut attrs = Vec::new();
        while attrs.len() + 255 <= 4096 - HEADER_LEN {
            attrs.push(18);
            attrs.push(255);
            attrs.extend([b'x'; 253]);
        }
        let rest = 4096 - HEADER_LEN - attrs.len();
        attrs.push(18);
        attrs.push(rest as u8);
        attrs.extend(std::iter::repeat_n(b'y', rest - 2));
        let p = packet(2, &attrs, 0);
        assert_eq!(p.len(), 4096);
        assert!(validate(&p).is_ok());
    }
}
