//! FreeRADIUS-format dictionaries (`VENDOR`, `BEGIN-VENDOR`/`END-VENDOR`, `ATTRIBUTE`,
//! `VALUE`), so operators name reply attributes as they do in FreeRADIUS
//! (`Mikrotik-Rate-Limit = "10M/10M"`) and can drop in another vendor's file.
//! Parsing takes text, not paths: reading files is the caller's business.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DictionaryError {
    #[error("{source_name}:{line}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        message: String,
    },
    #[error("unknown attribute {name:?} (not in any dictionary)")]
    UnknownAttribute { name: String },
    #[error("attribute {name}: {value:?} is not a valid {kind}: {reason}")]
    BadValue {
        name: String,
        value: String,
        kind: &'static str,
        reason: String,
    },
}

/// The data types pinradius can encode (RFC 8044 names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeKind {
    String,
    Octets,
    IpAddr,
    Ipv6Addr,
    Integer,
    Integer64,
    Short,
    Byte,
    Date,
}

impl AttributeKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "string" | "text" => Self::String,
            "octets" => Self::Octets,
            "ipaddr" => Self::IpAddr,
            "ipv6addr" => Self::Ipv6Addr,
            "integer" | "signed" => Self::Integer,
            "integer64" => Self::Integer64,
            "short" => Self::Short,
            "byte" => Self::Byte,
            "date" => Self::Date,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Octets => "octets (0x-prefixed hex)",
            Self::IpAddr => "IPv4 address",
            Self::Ipv6Addr => "IPv6 address",
            Self::Integer => "32-bit integer or VALUE name",
            Self::Integer64 => "64-bit integer",
            Self::Short => "16-bit integer",
            Self::Byte => "8-bit integer",
            Self::Date => "date (Unix seconds)",
        }
    }
}

/// One `ATTRIBUTE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDef {
    /// As written in the dictionary (lookups ignore case, as FreeRADIUS does).
    pub name: String,
    /// Vendor-Id for attributes inside `BEGIN-VENDOR`, `None` for standard attributes.
    pub vendor: Option<u32>,
    /// Attribute number (vendor type for vendor attributes).
    pub number: u8,
    pub kind: AttributeKind,
    /// `encrypt=` flag: such values need hiding we do not implement, so they are refused.
    pub encrypted: bool,
    /// `VALUE` names for integer attributes.
    pub values: HashMap<String, u64>,
}

/// An attribute ready to append: `vendor` tells whether it goes inside a
/// Vendor-Specific attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAttribute {
    pub vendor: Option<u32>,
    pub number: u8,
    pub value: Vec<u8>,
}

/// All attributes known from the loaded dictionary texts, by lower-cased name.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    attributes: HashMap<String, AttributeDef>,
    vendors: HashMap<String, u32>,
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Dictionary {
    /// Adds the definitions in `text`; `source_name` (a file name) is used in errors.
    /// Later definitions of the same name replace earlier ones, as in FreeRADIUS.
    pub fn load(&mut self, source_name: &str, text: &str) -> Result<(), DictionaryError> {
        let mut vendor: Option<u32> = None;
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| DictionaryError::Syntax {
                source_name: source_name.to_string(),
                line: i + 1,
                message,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["VENDOR", name, id, rest @ ..] => {
                    let id = parse_number(id)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| err(format!("VENDOR {name}: bad vendor id {id:?}")))?;
                    if let Some(fmt) = rest.iter().find_map(|f| f.strip_prefix("format="))
                        && fmt != "1,1"
                    {
                        return Err(err(format!(
                            "VENDOR {name}: format={fmt} is not supported, only 1,1"
                        )));
                    }
                    self.vendors.insert(name.to_ascii_lowercase(), id);
                }
                ["BEGIN-VENDOR", name, ..] => {
                    let id = self
                        .vendors
                        .get(&name.to_ascii_lowercase())
                        .ok_or_else(|| {
                            err(format!(
                                "BEGIN-VENDOR {name}: vendor not defined by a VENDOR line"
                            ))
                        })?;
                    vendor = Some(*id);
                }
                ["END-VENDOR", ..] => vendor = None,
                ["ATTRIBUTE", name, number, kind, flags @ ..] => {
                    let number = parse_number(number)
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            err(format!(
                                "ATTRIBUTE {name}: number {number:?} is not 1..=255"
                            ))
                        })?;
                    let kind = AttributeKind::parse(kind).ok_or_else(|| {
                        err(format!("ATTRIBUTE {name}: unsupported type {kind:?}"))
                    })?;
                    let encrypted = flags.iter().any(|f| f.contains("encrypt="));
                    self.attributes.insert(
                        name.to_ascii_lowercase(),
                        AttributeDef {
                            name: name.to_string(),
                            vendor,
                            number,
                            kind,
                            encrypted,
                            values: HashMap::new(),
                        },
                    );
                }
                ["VALUE", attribute, value_name, number] => {
                    let n = parse_number(number).ok_or_else(|| {
                        err(format!(
                            "VALUE {attribute} {value_name}: bad number {number:?}"
                        ))
                    })?;
                    let def = self
                        .attributes
                        .get_mut(&attribute.to_ascii_lowercase())
                        .ok_or_else(|| {
                            err(format!("VALUE for undefined attribute {attribute:?}"))
                        })?;
                    def.values.insert(value_name.to_ascii_lowercase(), n);
                }
                [keyword, ..] if keyword.starts_with('$') => {
                    return Err(err(format!(
                        "{keyword} is not supported; list each dictionary file in [server] dictionaries"
                    )));
                }
                [keyword, ..] => return Err(err(format!("unknown keyword {keyword:?}"))),
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes.get(&name.to_ascii_lowercase())
    }

    /// Encodes `value` (as written in the config) for the attribute called `name`.
    pub fn encode(&self, name: &str, value: &str) -> Result<EncodedAttribute, DictionaryError> {
        let def = self
            .get(name)
            .ok_or_else(|| DictionaryError::UnknownAttribute {
                name: name.to_string(),
            })?;
        let bad = |reason: &str| DictionaryError::BadValue {
            name: def.name.clone(),
            value: value.to_string(),
            kind: def.kind.name(),
            reason: reason.to_string(),
        };
        if def.encrypted {
            return Err(bad(
                "attributes with encrypt= flags cannot be sent from the config",
            ));
        }
        let integer = |max: u64| -> Result<u64, DictionaryError> {
            let n = def
                .values
                .get(&value.to_ascii_lowercase())
                .copied()
                .or_else(|| parse_number(value))
                .ok_or_else(|| bad("not a number or a VALUE name of this attribute"))?;
            if n > max {
                return Err(bad(&format!("larger than {max}")));
            }
            Ok(n)
        };
        let bytes = match def.kind {
            AttributeKind::String => value.as_bytes().to_vec(),
            AttributeKind::Octets => {
                let hex = value
                    .strip_prefix("0x")
                    .ok_or_else(|| bad("octets are written as 0x followed by hex digits"))?;
                if hex.len() % 2 != 0 {
                    return Err(bad("odd number of hex digits"));
                }
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| bad("not hex"))?
            }
            AttributeKind::IpAddr => value
                .parse::<Ipv4Addr>()
                .map_err(|e| bad(&e.to_string()))?
                .octets()
                .to_vec(),
            AttributeKind::Ipv6Addr => value
                .parse::<Ipv6Addr>()
                .map_err(|e| bad(&e.to_string()))?
                .octets()
                .to_vec(),
            AttributeKind::Integer | AttributeKind::Date => (integer(u64::from(u32::MAX))? as u32)
                .to_be_bytes()
                .to_vec(),
            AttributeKind::Integer64 => integer(u64::MAX)?.to_be_bytes().to_vec(),
            AttributeKind::Short => (integer(u64::from(u16::MAX))? as u16)
                .to_be_bytes()
                .to_vec(),
            AttributeKind::Byte => vec![integer(u64::from(u8::MAX))? as u8],
        };
        let limit = if def.vendor.is_some() { 247 } else { 253 };
        if bytes.len() > limit {
            return Err(bad(&format!(
                "longer than the {limit} bytes an attribute can carry"
            )));
        }
        Ok(EncodedAttribute {
            vendor: def.vendor,
            number: def.number,
            value: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# test\nVENDOR Mikrotik 14988\nBEGIN-VENDOR Mikrotik\nATTRIBUTE Mikrotik-Rate-Limit 8 string\nATTRIBUTE Mikrotik-Wireless-Forward 4 integer\nVALUE Mikrotik-Wireless-Forward Yes 1\nATTRIBUTE Mikrotik-Host-IP 10 ipaddr\nEND-VENDOR Mikrotik\nATTRIBUTE Filter-Id 11 string\nATTRIBUTE Secret-Thing 99 string encrypt=2\n";

    #[test]
    fn parses_and_encodes() {
        let mut d = Dictionary::default();
        d.load("test", TEXT).unwrap();
        assert_eq!(
            d.encode("mikrotik-rate-limit", "10M/10M").unwrap(),
            EncodedAttribute {
                vendor: Some(14988),
                number: 8,
                value: b"10M/10M".to_vec()
            }
        );
        assert_eq!(
            d.encode("Mikrotik-Wireless-Forward", "yes").unwrap().value,
            vec![0, 0, 0, 1]
        );
        assert_eq!(
            d.encode("Mikrotik-Host-IP", "10.0.0.1").unwrap().value,
            vec![10, 0, 0, 1]
        );
        assert_eq!(d.encode("Filter-Id", "guests").unwrap().vendor, None);
        assert!(matches!(
            d.encode("Nope", "1"),
            Err(DictionaryError::UnknownAttribute { .. })
        ));
        let e = d
            .encode("Mikrotik-Wireless-Forward", "maybe")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Mikrotik-Wireless-Forward") && e.contains("maybe"),
            "{e}"
        );
        assert!(d.encode("Secret-Thing", "x").is_err());
        assert!(d.encode("Mikrotik-Host-IP", "10.0.0").is_err());
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let mut d = Dictionary::default();
        let e = d
            .load("dictionary.bad", "VENDOR X 1\nATTRIBUTE Foo 300 string\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("dictionary.bad:2:"), "{e}");
        assert!(d.load("d", "BEGIN-VENDOR Unknown\n").is_err());
        assert!(d.load("d", "$INCLUDE other\n").is_err());
        assert!(d.load("d", "ATTRIBUTE A 1 tlv\n").is_err());
    }
}
