//! Which NAS sent a datagram: exact addresses and CIDR ranges, most specific first;
//! and which RadSec client a TLS connection is, by its certificate's name.

use crate::config::Client;
use crate::metrics::{ClientCounters, Metrics};
use std::net::IpAddr;
use std::sync::Arc;

/// The configured clients, ordered so the longest prefix matches first (an exact
/// address beats the range around it), each with its metric counters.
#[derive(Debug, Clone, Default)]
pub struct ClientTable {
    clients: Vec<(Arc<Client>, ClientCounters)>,
}

impl ClientTable {
    pub fn new(clients: &[Client], metrics: &Metrics) -> Self {
        let mut clients: Vec<_> = clients
            .iter()
            .map(|c| {
                let transport = if c.certificate_name.is_some() {
                    "radsec"
                } else {
                    "udp"
                };
                (
                    Arc::new(c.clone()),
                    metrics.client_counters(&c.name, transport),
                )
            })
            .collect();
        clients.sort_by_key(|(c, _)| std::cmp::Reverse(c.network.prefix_len()));
        Self { clients }
    }

    /// The client for `ip` and its counters; an IPv4-mapped IPv6 source (dual-stack
    /// socket) is matched as the IPv4 address it is.
    /// RadSec clients are never matched here: a datagram is not a TLS connection.
    pub fn find(&self, ip: IpAddr) -> Option<(&Arc<Client>, &ClientCounters)> {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .find(|(c, _)| c.certificate_name.is_none() && c.network.contains(&ip))
            .map(|(c, counters)| (c, counters))
    }

    /// The RadSec client whose `certificate_name` is one of `names` (the peer
    /// certificate's, lower-cased) and whose `address` holds `ip`.
    pub fn find_radsec(
        &self,
        ip: IpAddr,
        names: &[String],
    ) -> Option<(&Arc<Client>, &ClientCounters)> {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .find(|(c, _)| {
                c.certificate_name
                    .as_deref()
                    .is_some_and(|n| names.iter().any(|m| m == n))
                    && c.network.contains(&ip)
            })
            .map(|(c, counters)| (c, counters))
    }

    /// The client with this `name` (sessions remember their client by name).
    pub fn by_name(&self, name: &str) -> Option<&Arc<Client>> {
        self.clients
            .iter()
            .map(|(c, _)| c)
            .find(|c| &*c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn most_specific_match_wins() {
        let cfg = Config::from_toml(
            Path::new("x.toml"),
            r#"[server]
[[client]]
name = "range"
address = "10.0.0.0/8"
secret = "a"
business_id = 1
[[client]]
name = "exact"
address = "10.1.2.3"
secret = "b"
business_id = 2
"#,
        )
        .unwrap();
        let metrics = Metrics::new();
        let t = ClientTable::new(&cfg.clients, &metrics);
        assert_eq!(
            t.find("10.1.2.3".parse().unwrap()).unwrap().0.name.as_ref(),
            "exact"
        );
        assert_eq!(
            t.find("10.1.2.4".parse().unwrap()).unwrap().0.name.as_ref(),
            "range"
        );
        assert_eq!(
            t.find("::ffff:10.1.2.3".parse().unwrap())
                .unwrap()
                .0
                .name
                .as_ref(),
            "exact"
        );
        assert!(t.find("11.0.0.1".parse().unwrap()).is_none());
    }
}
