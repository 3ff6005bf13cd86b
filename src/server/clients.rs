//! Which NAS sent a datagram: exact addresses and CIDR ranges, most specific first.

use crate::config::Client;
use std::net::IpAddr;
use std::sync::Arc;

/// The configured clients, ordered so the longest prefix matches first (an exact
/// address beats the range around it).
#[derive(Debug, Clone, Default)]
pub struct ClientTable {
    clients: Vec<Arc<Client>>,
}

impl ClientTable {
    pub fn new(clients: &[Client]) -> Self {
        let mut clients: Vec<Arc<Client>> = clients.iter().cloned().map(Arc::new).collect();
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix_len()));
        Self { clients }
    }

    /// The client for `ip`; an IPv4-mapped IPv6 source (dual-stack socket) is
    /// matched as the IPv4 address it is.
    pub fn find(&self, ip: IpAddr) -> Option<&Arc<Client>> {
        let ip = ip.to_canonical();
        self.clients.iter().find(|c| c.network.contains(&ip))
    }

    /// The client with this `name` (sessions remember their client by name).
    pub fn by_name(&self, name: &str) -> Option<&Arc<Client>> {
        self.clients.iter().find(|c| &*c.name == name)
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
        let t = ClientTable::new(&cfg.clients);
        assert_eq!(
            t.find("10.1.2.3".parse().unwrap()).unwrap().name.as_ref(),
            "exact"
        );
        assert_eq!(
            t.find("10.1.2.4".parse().unwrap()).unwrap().name.as_ref(),
            "range"
        );
        assert_eq!(
            t.find("::ffff:10.1.2.3".parse().unwrap())
                .unwrap()
                .name
                .as_ref(),
            "exact"
        );
        assert!(t.find("11.0.0.1".parse().unwrap()).is_none());
    }
}
