//! The answer to an Access-Request: what it asks (read once from its packet), the
//! outcome decided for it, and that outcome encoded as Access-Accept or
//! Access-Reject (RFC 2865 sections 4.2 and 4.3), counted and logged.

use super::grant::PendingGrant;
use super::guard::{Charge, NasLabel};
use super::{Context, ReplySettings, Settings};
use crate::config::Client;
use crate::metrics::ClientCounters;
use crate::model::{AccessToken, LogSafe, Mac, MaskedCode};
use crate::policy::{Grant, RejectReason};
use crate::protocol::{self, Code, Packet, PacketBuilder, attr};
use crate::store::SharedToken;
use std::net::SocketAddr;

/// The outcome of one login, before encoding.
pub(super) enum Outcome {
    Accept {
        token: SharedToken,
        grant: Grant,
    },
    Reject(RejectReason),
    /// Accepted once its writes are durable (`grant.rs`).
    Write(PendingGrant),
}

/// What an Access-Request says, read once from its packet.
pub(super) struct Request<'a> {
    pub packet: Packet<'a>,
    /// The User-Name: a code, or an email.
    pub code: Option<&'a str>,
    station: Option<&'a str>,
    pub device: Option<Mac>,
    /// The User-Name when it is an email and the client takes email + PIN logins.
    pub email: Option<&'a str>,
    nas: NasLabel<'a>,
}

impl<'a> Request<'a> {
    pub(super) fn read(client: &'a Client, packet: Packet<'a>, source: SocketAddr) -> Self {
        let text = |typ| packet.value(typ).and_then(|v| std::str::from_utf8(v).ok());
        let code = text(attr::USER_NAME);
        let station = text(attr::CALLING_STATION_ID);
        Request {
            code,
            station,
            device: station.and_then(|s| s.parse().ok()),
            email: code.filter(|c| client.email_login && c.contains('@')),
            nas: NasLabel {
                client: &client.name,
                nas: super::nas_of(&packet, source.ip()),
            },
            packet,
        }
    }

    /// Who the attempt is charged to.
    pub(super) fn charge(&self, client: &Client) -> Charge<'a> {
        Charge {
            nas: self.nas,
            device: self.device,
            account: self.email.map(|e| (client.business_id, e)),
            user_name: self.code,
        }
    }
}

/// Logs, counts and encodes a decided login.
pub(super) fn encode_outcome(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    counters: &ClientCounters,
    request: &Request<'_>,
    outcome: Outcome,
) -> Option<Vec<u8>> {
    let packet = &request.packet;
    let masked = MaskedCode(request.code);
    let station = LogSafe(request.station.unwrap_or("-"));
    let mut b;
    match &outcome {
        Outcome::Accept { token, grant } => {
            tracing::debug!(client = %client.name, code = %masked, %station, token = token.id,
                session_timeout = grant.session_timeout, limited_by = %grant.limited_by, "accept");
            counters.accepts.inc();
            b = PacketBuilder::with_message_authenticator(Code::AccessAccept, packet.identifier());
            encode_accept(&mut b, &settings.reply, client, token, grant).ok()?;
        }
        Outcome::Reject(reason) => {
            tracing::debug!(client = %client.name, code = %masked, %station, reason = reason.label(), "reject: {reason}");
            ctx.reject_log
                .count(&client.name, reason.label(), std::time::Instant::now());
            ctx.metrics
                .rejects
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: reason.label(),
                })
                .inc();
            b = PacketBuilder::with_message_authenticator(Code::AccessReject, packet.identifier());
            b.add(attr::REPLY_MESSAGE, reason.to_string().as_bytes())
                .ok()?;
        }
        // Decided only once its writes are in (`grant.rs`).
        Outcome::Write(_) => return None,
    }
    protocol::copy_proxy_state(packet, &mut b);
    Some(b.finish_response(packet.authenticator(), client.secret.as_bytes()))
}

/// The Class value that lets accounting find the token again (RFC 2865 section 5.25:
/// the NAS echoes it unmodified in Accounting-Requests): the token's uid, which no
/// other token will ever have, so a late record can never charge another token.
pub fn class_for_token(uid: &str) -> String {
    format!("{CLASS_PREFIX}{uid}")
}

const CLASS_PREFIX: &str = "pinradius:uid=";

fn encode_accept(
    b: &mut PacketBuilder,
    reply: &ReplySettings,
    client: &Client,
    token: &AccessToken,
    grant: &Grant,
) -> Result<(), protocol::EncodeError> {
    b.add_u32(attr::SESSION_TIMEOUT, grant.session_timeout)?;
    if let Some(idle) = reply.idle_timeout {
        b.add_u32(attr::IDLE_TIMEOUT, idle)?;
    }
    if let Some(interim) = reply.acct_interim_interval {
        b.add_u32(attr::ACCT_INTERIM_INTERVAL, interim)?;
    }
    b.add_parts(
        attr::CLASS,
        &[CLASS_PREFIX.as_bytes(), token.uid.as_bytes()],
    )?;
    for a in &client.reply_attributes {
        match a.vendor {
            Some(vendor) => b.add_vendor(vendor, a.number, &a.value)?,
            None => b.add(a.number, &a.value)?,
        };
    }
    Ok(())
}
