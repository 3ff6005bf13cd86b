//! The RADIUS wire format and nothing else: strict validation of raw datagrams,
//! attribute access, authenticators (RFC 2865 section 3, RFC 3579 section 3.2),
//! User-Password hiding (RFC 2865 section 5.2), CHAP (RFC 2865 section 5.3, RFC 1994),
//! Vendor-Specific attributes (RFC 2865 section 5.26) and FreeRADIUS-format
//! dictionaries.
//!
//! No sockets, no clock, no SQL: every function takes bytes and returns values, so the
//! fuzzers and the RFC byte vectors exercise exactly the code the server runs.
//!
//! The `radius` crate supplies the packet codes and attribute numbers. Its decoder is
//! not used on the request path because it accepts malformed input (an attribute length
//! past the end of the packet, duplicate Message-Authenticators) and it cannot place a
//! Message-Authenticator first in a response, which RouterOS 7.15+ and FreeRADIUS 3.2.5+
//! expect since BlastRADIUS (CVE-2024-3596).

mod auth;
mod dictionary;
mod encode;
mod packet;
mod vsa;

#[cfg(test)]
mod proptests;

pub use auth::{
    Password, accounting_request_authenticator, chap_matches, message_authenticator_for_request,
    message_authenticator_for_response, pap_decrypt, pap_encrypt, response_authenticator,
    verify_accounting_request, verify_message_authenticator, verify_response,
};
pub use dictionary::{AttributeDef, AttributeKind, Dictionary, DictionaryError, EncodedAttribute};
pub use encode::{EncodeError, PacketBuilder};
pub use packet::{Attribute, Attributes, Packet, ProtocolError, validate};
pub use radius::core::code::Code;
pub use vsa::{VendorAttribute, VendorSpecific, vendor_specific};

/// Attribute numbers used by pinradius (RFC 2865, RFC 2866, RFC 2869), taken from the
/// `radius` crate so there is one table of them.
pub mod attr {
    pub use radius::core::rfc2865::{
        CALLING_STATION_ID_TYPE as CALLING_STATION_ID, CHAP_CHALLENGE_TYPE as CHAP_CHALLENGE,
        CHAP_PASSWORD_TYPE as CHAP_PASSWORD, CLASS_TYPE as CLASS,
        IDLE_TIMEOUT_TYPE as IDLE_TIMEOUT, NAS_IDENTIFIER_TYPE as NAS_IDENTIFIER,
        NAS_IP_ADDRESS_TYPE as NAS_IP_ADDRESS, PROXY_STATE_TYPE as PROXY_STATE,
        REPLY_MESSAGE_TYPE as REPLY_MESSAGE, SESSION_TIMEOUT_TYPE as SESSION_TIMEOUT,
        USER_NAME_TYPE as USER_NAME, USER_PASSWORD_TYPE as USER_PASSWORD,
        VENDOR_SPECIFIC_TYPE as VENDOR_SPECIFIC,
    };
    pub use radius::core::rfc2866::{
        ACCT_DELAY_TIME_TYPE as ACCT_DELAY_TIME, ACCT_SESSION_ID_TYPE as ACCT_SESSION_ID,
        ACCT_SESSION_TIME_TYPE as ACCT_SESSION_TIME, ACCT_STATUS_TYPE_TYPE as ACCT_STATUS_TYPE,
    };
    pub use radius::core::rfc2869::{
        ACCT_INTERIM_INTERVAL_TYPE as ACCT_INTERIM_INTERVAL,
        MESSAGE_AUTHENTICATOR_TYPE as MESSAGE_AUTHENTICATOR,
    };
}

/// Copies every Proxy-State of `request` into the answer being built, unmodified and
/// in order (RFC 2865 section 5.33, RFC 2866): a proxy in front of us finds its
/// request again by them. One that would make the answer longer than 4096 octets is
/// left out (the answer stays valid).
pub fn copy_proxy_state(request: &Packet<'_>, answer: &mut PacketBuilder) {
    for a in request.attributes().filter(|a| a.typ == attr::PROXY_STATE) {
        let _ = answer.add(attr::PROXY_STATE, a.value);
    }
}

/// Size of the header: Code, Identifier, Length, Authenticator (RFC 2865 section 3).
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 section 3 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// Length of a Message-Authenticator attribute, header included (RFC 3579 section 3.2).
pub const MESSAGE_AUTHENTICATOR_LEN: usize = 18;
