//! `[radsec]`: RADIUS over TLS (RFC 6614) beside the UDP ports. The certificates are
//! read and checked here, when the config is loaded (serve, SIGHUP, check-config): a
//! chain that does not parse, a key that is not the certificate's, a certificate
//! expired or not yet valid is an error naming the key and the file; one that expires
//! within [`EXPIRY_WARNING_DAYS`] is a warning.

use super::{ConfigError, invalid, parse_listen};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Warn this long before a certificate expires.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RadsecSection {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The server's certificate chain (PEM, leaf first).
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// The CA (PEM, one or more certificates) that signs the NASes' certificates.
    pub client_ca: PathBuf,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_seconds: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
}

fn default_listen() -> String {
    "0.0.0.0:2083".into()
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_handshakes() -> usize {
    64
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    120
}

/// How many connections the listener keeps, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct RadsecLimits {
    /// Connections open at once (handshaking or not); more are closed at accept.
    pub max_connections: usize,
    /// TLS handshakes in progress at once; more wait (within their timeout).
    pub max_handshakes: usize,
    /// From accept to the end of the handshake.
    pub handshake_timeout: Duration,
    /// A connection with no packet for this long is closed (a NAS keeps its
    /// connection alive with Status-Server, RFC 6614 section 2.6).
    pub idle_timeout: Duration,
}

/// `[radsec]`, validated: the TLS configuration ready to accept with.
#[derive(Debug, Clone)]
pub struct RadsecConfig {
    pub listen: SocketAddr,
    pub tls: Arc<rustls::ServerConfig>,
    pub limits: RadsecLimits,
    /// Certificates that expire within [`EXPIRY_WARNING_DAYS`]: (key, file, days left).
    pub expiring: Vec<(&'static str, PathBuf, i64)>,
}

impl RadsecSection {
    /// Loads and checks the certificates (`base`: the config file's folder) at `now`
    /// (Unix seconds).
    pub(super) fn validate(&self, base: &Path, now: i64) -> Result<RadsecConfig, ConfigError> {
        let listen = parse_listen("radsec.listen", &self.listen)?;
        for (key, value, range) in [
            (
                "radsec.max_connections",
                self.max_connections as u64,
                1..=1_000_000,
            ),
            (
                "radsec.max_handshakes",
                self.max_handshakes as u64,
                1..=10_000,
            ),
            (
                "radsec.handshake_timeout_seconds",
                self.handshake_timeout_seconds,
                1..=300,
            ),
            (
                "radsec.idle_timeout_seconds",
                self.idle_timeout_seconds,
                10..=86_400,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    value,
                    format!("must be {}..={}", range.start(), range.end()),
                ));
            }
        }
        let path = |p: &Path| base.join(p);
        let (certificate, private_key, client_ca) = (
            path(&self.certificate),
            path(&self.private_key),
            path(&self.client_ca),
        );
        let mut expiring = Vec::new();
        let chain = certificates("radsec.certificate", &certificate)?;
        check_validity(
            "radsec.certificate",
            &certificate,
            &chain[0],
            now,
            &mut expiring,
        )?;
        let key = PrivateKeyDer::from_pem_file(&private_key).map_err(|e| {
            invalid(
                "radsec.private_key",
                private_key.display(),
                format!("no private key read: {e}"),
            )
        })?;
        let cas = certificates("radsec.client_ca", &client_ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in &cas {
            check_validity("radsec.client_ca", &client_ca, ca, now, &mut expiring)?;
            roots.add(ca.clone()).map_err(|e| {
                invalid(
                    "radsec.client_ca",
                    client_ca.display(),
                    format!("not a usable CA certificate: {e}"),
                )
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Mutual TLS: a NAS must present a certificate chaining to client_ca (expired
        // or from another CA: the handshake fails).
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| invalid("radsec.client_ca", client_ca.display(), e.to_string()))?;
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid("radsec", "", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| {
                invalid(
                    "radsec.private_key",
                    private_key.display(),
                    format!("does not go with radsec.certificate: {e}"),
                )
            })?;
        Ok(RadsecConfig {
            listen,
            tls: Arc::new(tls),
            limits: RadsecLimits {
                max_connections: self.max_connections,
                max_handshakes: self.max_handshakes,
                handshake_timeout: Duration::from_secs(self.handshake_timeout_seconds),
                idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            },
            expiring,
        })
    }
}

/// The certificates of a PEM file, at least one.
fn certificates(
    key: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let chain = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(key, file.display(), format!("no certificate read: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(key, file.display(), "holds no certificate"));
    }
    Ok(chain)
}

/// Errors for a certificate outside its validity at `now`; notes one that ends soon.
fn check_validity(
    key: &'static str,
    file: &Path,
    der: &CertificateDer<'_>,
    now: i64,
    expiring: &mut Vec<(&'static str, PathBuf, i64)>,
) -> Result<(), ConfigError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        invalid(
            key,
            file.display(),
            format!("not an X.509 certificate: {e}"),
        )
    })?;
    let validity = cert.validity();
    let (from, to) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now < from {
        return Err(invalid(
            key,
            file.display(),
            format!("is not valid before {}", validity.not_before),
        ));
    }
    if now > to {
        return Err(invalid(
            key,
            file.display(),
            format!("expired on {}", validity.not_after),
        ));
    }
    let days_left = (to - now) / 86_400;
    if days_left < EXPIRY_WARNING_DAYS {
        expiring.push((key, file.to_path_buf(), days_left));
    }
    Ok(())
}

/// The names a NAS's certificate holds: its subjectAltName dNSNames, else its
/// subject's commonName (RFC 6614 section 2.3 matches either).
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let dns: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !dns.is_empty() {
        return dns;
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::path::Path;

    /// A CA and a server certificate valid for `days` (from, to) around today, in
    /// `dir`; returns a config using them.
    fn setup(dir: &Path, days: (i64, i64), extra: &str) -> Result<Config, String> {
        use chrono::Datelike;
        let at = |n: i64| {
            let d = chrono::Utc::now() + chrono::Duration::days(n);
            rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["radius.example.net".to_string()]).unwrap();
        (p.not_before, p.not_after) = (at(days.0), at(days.1));
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(
            dir.join("other.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        Config::from_toml(
            &dir.join("p.toml"),
            &format!(
                "[server]\n[[client]]\nname = \"lobby\"\naddress = \"0.0.0.0/0\"\ncertificate_name = \"Lobby.example.net\"\nbusiness_id = 1\n\
                 [radsec]\ncertificate = \"server.pem\"\nprivate_key = \"server.key\"\nclient_ca = \"ca.pem\"\n{extra}"
            ),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn certificates_are_checked_when_the_config_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let c = setup(dir.path(), (-1, 365), "").unwrap();
        let r = c.radsec.as_ref().unwrap();
        assert_eq!(r.listen, "0.0.0.0:2083".parse().unwrap());
        assert_eq!(
            c.clients[0].certificate_name.as_deref(),
            Some("lobby.example.net")
        );
        assert_eq!(c.clients[0].secret.as_bytes(), b"radsec");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        // Expiring within 30 days: a warning naming the key and the file.
        let c = setup(dir.path(), (-1, 10), "").unwrap();
        let w = c.warnings().join("\n");
        assert!(
            w.contains("radsec.certificate")
                && w.contains("server.pem")
                && w.contains("expires in"),
            "{w}"
        );
        // Expired, not yet valid, a key that is not the certificate's, a missing file.
        let e = setup(dir.path(), (-10, -2), "").unwrap_err();
        assert!(
            e.contains("radsec.certificate") && e.contains("expired on"),
            "{e}"
        );
        let e = setup(dir.path(), (2, 10), "").unwrap_err();
        assert!(e.contains("is not valid before"), "{e}");
        setup(dir.path(), (-1, 365), "").unwrap(); // valid again for the key check
        let e = Config::from_toml(
            &dir.path().join("p.toml"),
            "[server]\n[[client]]\nname = \"l\"\naddress = \"0.0.0.0/0\"\ncertificate_name = \"l\"\nbusiness_id = 1\n\
             [radsec]\ncertificate = \"server.pem\"\nprivate_key = \"other.key\"\nclient_ca = \"ca.pem\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("radsec.private_key")
                && e.contains("other.key")
                && e.contains("does not go with"),
            "{e}"
        );
        let e = Config::from_toml(
            &dir.path().join("p.toml"),
            "[server]\n[[client]]\nname = \"l\"\naddress = \"0.0.0.0/0\"\ncertificate_name = \"l\"\nbusiness_id = 1\n\
             [radsec]\ncertificate = \"nope.pem\"\nprivate_key = \"other.key\"\nclient_ca = \"ca.pem\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("radsec.certificate") && e.contains("nope.pem"),
            "{e}"
        );
    }

    #[test]
    fn radsec_clients_need_the_section_and_the_fixed_secret() {
        let load = |text: &str| {
            Config::from_toml(Path::new("/tmp/p.toml"), text).map_err(|e| e.to_string())
        };
        let e = load(
            "[server]\n[[client]]\nname = \"l\"\naddress = \"0.0.0.0/0\"\ncertificate_name = \"lobby\"\nbusiness_id = 1\n",
        )
        .unwrap_err();
        assert!(
            e.contains("client[0].certificate_name") && e.contains("[radsec]"),
            "{e}"
        );
        let e = load(
            "[server]\n[[client]]\nname = \"l\"\naddress = \"0.0.0.0/0\"\ncertificate_name = \"lobby\"\nsecret = \"x\"\nbusiness_id = 1\n",
        )
        .unwrap_err();
        assert!(
            e.contains("client[0].secret") && e.contains("radsec"),
            "{e}"
        );
        let e =
            load("[server]\n[[client]]\nname = \"l\"\naddress = \"10.0.0.1\"\nbusiness_id = 1\n")
                .unwrap_err();
        assert!(e.contains("client[0].secret"), "{e}");
    }
}
