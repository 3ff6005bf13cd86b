//! `[reply]`: the timers and attributes sent in every Access-Accept, and how they are
//! validated.

use super::{AttributeValue, ConfigError, encode_attributes, invalid, positive_u32};
use crate::protocol::{Dictionary, EncodedAttribute};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySection {
    pub idle_timeout: Option<i64>,
    pub acct_interim_interval: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// The validated `[reply]` section, before its attributes are merged into each client.
pub(super) struct ReplyDefaults {
    pub(super) idle_timeout: Option<u32>,
    pub(super) acct_interim_interval: Option<u32>,
    /// `[reply.attributes]`, encoded, each keyed by its lower-case name.
    pub(super) attributes: Vec<(String, EncodedAttribute)>,
}

impl ReplySection {
    pub(super) fn validate(&self, dictionary: &Dictionary) -> Result<ReplyDefaults, ConfigError> {
        let idle_timeout = positive_u32("reply.idle_timeout", self.idle_timeout)?;
        let acct_interim_interval =
            positive_u32("reply.acct_interim_interval", self.acct_interim_interval)?;
        if let Some(i) = acct_interim_interval
            && i < 60
        {
            return Err(invalid(
                "reply.acct_interim_interval",
                i,
                "RFC 2869 5.16 asks for at least 60 seconds",
            ));
        }
        let attributes = encode_attributes("reply.attributes", dictionary, &self.attributes)?;
        Ok(ReplyDefaults {
            idle_timeout,
            acct_interim_interval,
            attributes,
        })
    }
}
