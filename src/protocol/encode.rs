//! Building packets. Responses always start with a Message-Authenticator (RFC 3579
//! section 3.2; first in the packet, as FreeRADIUS 3.2.5+ and RouterOS 7.15+ expect
//! since BlastRADIUS, so no attacker-chosen prefix precedes it in the MD5 input).

use super::auth::{
    accounting_request_authenticator, message_authenticator_for_request,
    message_authenticator_for_response, response_authenticator,
};
use super::{HEADER_LEN, MAX_PACKET_LEN, MESSAGE_AUTHENTICATOR_LEN, attr};
use radius::core::code::Code;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    #[error("attribute {typ}: value of {len} bytes exceeds the 253-byte maximum")]
    ValueTooLong { typ: u8, len: usize },
    #[error("packet would be {len} bytes, over the 4096-byte maximum")]
    PacketTooLong { len: usize },
}

/// Accumulates one packet. The header's Length and authenticator fields are filled in
/// by the `finish_*` methods.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    /// The packet under construction, header included.
    buf: Vec<u8>,
    /// Offset of the Message-Authenticator attribute, when the packet carries one.
    message_authenticator: Option<usize>,
}

impl PacketBuilder {
    /// A packet whose first attribute is a zeroed Message-Authenticator, to be computed
    /// by `finish_*`. Used for every response and for the requests we send.
    pub fn with_message_authenticator(code: Code, identifier: u8) -> Self {
        let mut b = Self::without_message_authenticator(code, identifier);
        b.buf.push(attr::MESSAGE_AUTHENTICATOR);
        b.buf.push(MESSAGE_AUTHENTICATOR_LEN as u8);
        b.buf.extend_from_slice(&[0u8; 16]);
        b.message_authenticator = Some(HEADER_LEN);
        b
    }

    /// A packet without Message-Authenticator (tests of servers that must drop such
    /// requests, and the RFC 2865 byte vectors, which predate RFC 3579).
    pub fn without_message_authenticator(code: Code, identifier: u8) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(code as u8);
        buf.push(identifier);
        buf.extend_from_slice(&[0u8; 18]);
        Self {
            buf,
            message_authenticator: None,
        }
    }

    /// Appends one attribute.
    pub fn add(&mut self, typ: u8, value: &[u8]) -> Result<&mut Self, EncodeError> {
        if value.len() > 253 {
            return Err(EncodeError::ValueTooLong {
                typ,
                len: value.len(),
            });
        }
        self.ensure_room(2 + value.len())?;
        self.buf.push(typ);
        self.buf.push((2 + value.len()) as u8);
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// Appends an attribute whose value is `parts` one after another (no allocation
    /// to join them first).
    pub fn add_parts(&mut self, typ: u8, parts: &[&[u8]]) -> Result<&mut Self, EncodeError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > 253 {
            return Err(EncodeError::ValueTooLong { typ, len });
        }
        self.ensure_room(2 + len)?;
        self.buf.push(typ);
        self.buf.push((len + 2) as u8);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        Ok(self)
    }

    pub fn add_u32(&mut self, typ: u8, value: u32) -> Result<&mut Self, EncodeError> {
        self.add(typ, &value.to_be_bytes())
    }

    /// Appends a Vendor-Specific attribute with one sub-attribute in the RFC 2865
    /// section 5.26 format (vendor type, vendor length, value).
    pub fn add_vendor(
        &mut self,
        vendor: u32,
        vendor_type: u8,
        value: &[u8],
    ) -> Result<&mut Self, EncodeError> {
        if value.len() > 247 {
            return Err(EncodeError::ValueTooLong {
                typ: attr::VENDOR_SPECIFIC,
                len: value.len() + 6,
            });
        }
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vendor_type);
        v.push((2 + value.len()) as u8);
        v.extend_from_slice(value);
        self.add(attr::VENDOR_SPECIFIC, &v)
    }

    fn ensure_room(&self, more: usize) -> Result<(), EncodeError> {
        let len = self.buf.len() + more;
        if len > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong { len });
        }
        Ok(())
    }

    fn set_length(&mut self) {
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Finishes a response (Access-Accept/Reject/Challenge, Accounting-Response,
    /// Status-Server answers): Message-Authenticator computed with the Request
    /// Authenticator in the header (RFC 3579 3.2), then the Response Authenticator over
    /// the final bytes (RFC 2865 section 3).
    pub fn finish_response(mut self, request_authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        self.set_length();
        if let Some(off) = self.message_authenticator {
            let ma = message_authenticator_for_response(&self.buf, request_authenticator, secret);
            self.buf[off + 2..off + 18].copy_from_slice(&ma);
        }
        let auth = response_authenticator(&self.buf, request_authenticator, secret);
        self.buf[4..HEADER_LEN].copy_from_slice(&auth);
        self.buf
    }

    /// Finishes an Accounting-Response (or Disconnect/CoA-ACK/NAK): unlike Access
    /// responses, the Message-Authenticator is computed over a zero authenticator
    /// field (as FreeRADIUS and RouterOS compute and verify it), then the Response
    /// Authenticator over the result with the request's authenticator (RFC 2866 3).
    pub fn finish_accounting_response(
        mut self,
        request_authenticator: &[u8; 16],
        secret: &[u8],
    ) -> Vec<u8> {
        self.set_length();
        if let Some(off) = self.message_authenticator {
            let ma = message_authenticator_for_request(&self.buf, secret);
            self.buf[off + 2..off + 18].copy_from_slice(&ma);
        }
        let auth = response_authenticator(&self.buf, request_authenticator, secret);
        self.buf[4..HEADER_LEN].copy_from_slice(&auth);
        self.buf
    }

    /// Finishes an Accounting-Request (or Disconnect/CoA-Request, RFC 5176 2.3): the
    /// Message-Authenticator, if any, is computed with a zero authenticator field, then
    /// the Request Authenticator over the result (RFC 2866 section 3).
    pub fn finish_accounting_request(mut self, secret: &[u8]) -> Vec<u8> {
        self.set_length();
        if let Some(off) = self.message_authenticator {
            let ma = message_authenticator_for_request(&self.buf, secret);
            self.buf[off + 2..off + 18].copy_from_slice(&ma);
        }
        let auth = accounting_request_authenticator(&self.buf, secret);
        self.buf[4..HEADER_LEN].copy_from_slice(&auth);
        self.buf
    }

    /// Finishes an Access-Request or Status-Server with the given Request Authenticator
    /// (16 random octets chosen by the caller); the Message-Authenticator, if any, is
    /// computed over the packet as sent.
    pub fn finish_request(mut self, authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        self.set_length();
        self.buf[4..HEADER_LEN].copy_from_slice(authenticator);
        if let Some(off) = self.message_authenticator {
            let ma = message_authenticator_for_request(&self.buf, secret);
            self.buf[off + 2..off + 18].copy_from_slice(&ma);
        }
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{validate, verify_message_authenticator, verify_response};

    const SECRET: &[u8] = b"xyzzy5461";

    /// RFC 2865 section 7.1: the Access-Accept for "nemo" is byte for byte the RFC's.
    #[test]
    fn rfc2865_7_1_access_accept_bytes() {
        let request_auth: [u8; 16] = [
            0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4,
            0x22, 0x7a,
        ];
        let mut b = PacketBuilder::without_message_authenticator(Code::AccessAccept, 0);
        b.add_u32(6, 1).unwrap(); // Service-Type = Login-User
        b.add_u32(15, 0).unwrap(); // Login-Service = Telnet
        b.add(14, &[192, 168, 1, 3]).unwrap(); // Login-IP-Host
        let bytes = b.finish_response(&request_auth, SECRET);
        let expected: [u8; 38] = [
            0x02, 0x00, 0x00, 0x26, 0x86, 0xfe, 0x22, 0x0e, 0x76, 0x24, 0xba, 0x2a, 0x10, 0x05,
            0xf6, 0xbf, 0x9b, 0x55, 0xe0, 0xb2, 0x06, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0f, 0x06,
            0x00, 0x00, 0x00, 0x00, 0x0e, 0x06, 0xc0, 0xa8, 0x01, 0x03,
        ];
        assert_eq!(bytes, expected);
    }

    /// RFC 2865 section 7.2: the authentic Access-Accept for "flopsy". The RFC's
    /// decoded listing says Framed-Routing = None, but the bytes that carry a valid
    /// Response Authenticator have Framed-Routing = 2 (Listen).
    #[test]
    fn rfc2865_7_2_access_accept_bytes() {
        let request: [u8; 71] = [
            0x01, 0x01, 0x00, 0x47, 0x2a, 0xee, 0x86, 0xf0, 0x8d, 0x0d, 0x55, 0x96, 0x9c, 0xa5,
            0x97, 0x8e, 0x0d, 0x33, 0x67, 0xa2, 0x01, 0x08, 0x66, 0x6c, 0x6f, 0x70, 0x73, 0x79,
            0x03, 0x13, 0x16, 0xe9, 0x75, 0x57, 0xc3, 0x16, 0x18, 0x58, 0x95, 0xf2, 0x93, 0xff,
            0x63, 0x44, 0x07, 0x72, 0x75, 0x04, 0x06, 0xc0, 0xa8, 0x01, 0x10, 0x05, 0x06, 0x00,
            0x00, 0x00, 0x14, 0x06, 0x06, 0x00, 0x00, 0x00, 0x02, 0x07, 0x06, 0x00, 0x00, 0x00,
            0x01,
        ];
        let req = validate(&request).unwrap();
        assert_eq!(req.value(attr::USER_NAME), Some(&b"flopsy"[..]));
        let chap = req.value(attr::CHAP_PASSWORD).unwrap();
        assert_eq!(chap[0], 0x16);
        let mut b = PacketBuilder::without_message_authenticator(Code::AccessAccept, 1);
        b.add_u32(6, 2).unwrap(); // Service-Type = Framed-User
        b.add_u32(7, 1).unwrap(); // Framed-Protocol = PPP
        b.add(8, &[255, 255, 255, 254]).unwrap(); // Framed-IP-Address
        b.add_u32(10, 2).unwrap(); // Framed-Routing = Listen (see above)
        b.add_u32(13, 1).unwrap(); // Framed-Compression = Van Jacobson
        b.add_u32(12, 1500).unwrap(); // Framed-MTU
        let bytes = b.finish_response(req.authenticator(), SECRET);
        let expected: [u8; 56] = [
            0x02, 0x01, 0x00, 0x38, 0x15, 0xef, 0xbc, 0x7d, 0xab, 0x26, 0xcf, 0xa3, 0xdc, 0x34,
            0xd9, 0xc0, 0x3c, 0x86, 0x01, 0xa4, 0x06, 0x06, 0x00, 0x00, 0x00, 0x02, 0x07, 0x06,
            0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xff, 0xff, 0xff, 0xfe, 0x0a, 0x06, 0x00, 0x00,
            0x00, 0x02, 0x0d, 0x06, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x06, 0x00, 0x00, 0x05, 0xdc,
        ];
        assert_eq!(bytes, expected);
        assert!(verify_response(
            &validate(&bytes).unwrap(),
            req.authenticator(),
            SECRET
        ));
    }

    #[test]
    fn response_has_message_authenticator_first_and_verifies() {
        let req_auth = [9u8; 16];
        let mut b = PacketBuilder::with_message_authenticator(Code::AccessReject, 3);
        b.add(attr::REPLY_MESSAGE, b"no").unwrap();
        let bytes = b.finish_response(&req_auth, b"s3cret");
        let p = validate(&bytes).unwrap();
        assert_eq!(
            p.attributes().next().unwrap().typ,
            attr::MESSAGE_AUTHENTICATOR
        );
        assert!(verify_response(&p, &req_auth, b"s3cret"));
        assert!(!verify_response(&p, &req_auth, b"other"));
        assert!(!verify_response(&p, &[8u8; 16], b"s3cret"));
        assert_eq!(
            verify_message_authenticator(&p, b"s3cret", Some(&req_auth)),
            Some(true)
        );
    }

    #[test]
    fn request_message_authenticator_verifies() {
        let mut b = PacketBuilder::with_message_authenticator(Code::AccessRequest, 1);
        b.add(attr::USER_NAME, b"12345").unwrap();
        let mut bytes = b.finish_request(&[1u8; 16], b"k");
        assert_eq!(
            verify_message_authenticator(&validate(&bytes).unwrap(), b"k", None),
            Some(true)
        );
        assert_eq!(
            verify_message_authenticator(&validate(&bytes).unwrap(), b"j", None),
            Some(false)
        );
        *bytes.last_mut().unwrap() ^= 1;
        assert_eq!(
            verify_message_authenticator(&validate(&bytes).unwrap(), b"k", None),
            Some(false)
        );
    }

    #[test]
    fn accounting_request_authenticates_over_length_only() {
        let mut b = PacketBuilder::with_message_authenticator(Code::AccountingRequest, 5);
        b.add_u32(attr::ACCT_STATUS_TYPE, 1).unwrap();
        let mut bytes = b.finish_accounting_request(b"acct");
        assert!(crate::protocol::verify_accounting_request(
            &validate(&bytes).unwrap(),
            b"acct"
        ));
        assert!(!crate::protocol::verify_accounting_request(
            &validate(&bytes).unwrap(),
            b"other"
        ));
        // Padding past Length is not part of the packet.
        bytes.extend_from_slice(&[0xAB; 7]);
        assert!(crate::protocol::verify_accounting_request(
            &validate(&bytes).unwrap(),
            b"acct"
        ));
        // The answer verifies with its zero-authenticator Message-Authenticator.
        let req = validate(&bytes).unwrap();
        let resp = PacketBuilder::with_message_authenticator(Code::AccountingResponse, 5)
            .finish_accounting_response(req.authenticator(), b"acct");
        assert!(verify_response(
            &validate(&resp).unwrap(),
            req.authenticator(),
            b"acct"
        ));
        assert!(!verify_response(
            &validate(&resp).unwrap(),
            &[0u8; 16],
            b"acct"
        ));
        // The radius crate agrees.
        let n = bytes.len() - 7;
        assert!(radius::core::packet::Packet::is_authentic_request(
            &bytes[..n],
            b"acct"
        ));
    }

    #[test]
    fn size_limits() {
        let mut b = PacketBuilder::without_message_authenticator(Code::AccessAccept, 0);
        assert!(b.add(18, &[0u8; 254]).is_err());
        for _ in 0..15 {
            b.add(18, &[0u8; 253]).unwrap();
        }
        assert!(matches!(
            b.add(18, &[0u8; 253]),
            Err(EncodeError::PacketTooLong { .. })
        ));
    }
}
