//! `POST /api/webhooks/nexudus`: the platform's webhooks. The body (a JSON array of
//! the changed records) is accepted only with `X-Nexudus-Hook-Signature` = the
//! upper-case hex HMAC-SHA256 of the raw body with `[nexudus] webhook_secret`,
//! compared in constant time; anything else is 401 and changes nothing. A good one
//! is answered 200 at once (the platform switches off a hook that answers slowly or
//! fails) and queued for the sync thread, which re-reads each record from the API by
//! `Id` before applying it: a forged or partial payload cannot set data.

use crate::server::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The signature header.
pub const SIGNATURE: &str = "x-nexudus-hook-signature";

/// The signature of `body` with `secret`: upper-case hex HMAC-SHA256.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

pub async fn receive(
    axum::extract::State(ctx): axum::extract::State<Arc<Context>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let settings = ctx.settings();
    let (Some(secret), Some(inbox)) = (&settings.webhook_secret, ctx.platform_inbox.get()) else {
        ctx.metrics.webhook("disabled");
        return (
            StatusCode::NOT_FOUND,
            "webhooks are off: no [nexudus] webhook_secret",
        )
            .into_response();
    };
    let given = headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    let expected = signature(secret.as_bytes(), &body);
    if given.len() != expected.len() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        ctx.metrics.webhook("bad_signature");
        tracing::warn!("webhook refused: missing or wrong {SIGNATURE}");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    match inbox.try_send(body.to_vec()) {
        Ok(()) => {
            ctx.metrics.webhook("queued");
            StatusCode::OK.into_response()
        }
        Err(_) => {
            // Not kept, so not acknowledged: the platform retries.
            ctx.metrics.webhook("queue_full");
            (StatusCode::SERVICE_UNAVAILABLE, "busy; try again").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_upper_case_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        );
    }
}
