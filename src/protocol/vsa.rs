//! Reading Vendor-Specific attributes (RFC 2865 section 5.26): Vendor-Id (4 octets)
//! followed by sub-attributes in the recommended format: vendor type (1), vendor length
//! (1, including these two octets), value.

/// A Vendor-Specific attribute split into its vendor and sub-attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorSpecific<'a> {
    pub vendor_id: u32,
    pub attributes: Vec<VendorAttribute<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorAttribute<'a> {
    pub vendor_type: u8,
    pub value: &'a [u8],
}

/// Splits a Vendor-Specific value. `None` when it is shorter than a Vendor-Id plus one
/// sub-attribute header, or when a sub-attribute's length is below 2 or runs past the
/// end (vendors that do not follow the recommended format are not readable here).
pub fn vendor_specific(value: &[u8]) -> Option<VendorSpecific<'_>> {
    let (id, mut rest) = value.split_first_chunk::<4>()?;
    if rest.is_empty() {
        return None;
    }
    let mut attributes = Vec::new();
    while !rest.is_empty() {
        let [vendor_type, len, ..] = *rest else {
            return None;
        };
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            return None;
        }
        attributes.push(VendorAttribute {
            vendor_type,
            value: &rest[2..len],
        });
        rest = &rest[len..];
    }
    Some(VendorSpecific {
        vendor_id: u32::from_be_bytes(*id),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mikrotik_rate_limit_and_rejects_bad_shapes() {
        let mut v = 14988u32.to_be_bytes().to_vec();
        v.extend([8, 9, b'1', b'0', b'M', b'/', b'5', b'M', b'!']);
        v.extend([3, 2]);
        let vs = vendor_specific(&v).unwrap();
        assert_eq!(vs.vendor_id, 14988);
        assert_eq!(
            vs.attributes[0],
            VendorAttribute {
                vendor_type: 8,
                value: b"10M/5M!"
            }
        );
        assert_eq!(vs.attributes[1].value, b"");
        assert!(vendor_specific(&[0, 0, 0x3a, 0x8c]).is_none());
        assert!(vendor_specific(&[0, 0, 0x3a, 0x8c, 8]).is_none());
        assert!(vendor_specific(&[0, 0, 0x3a, 0x8c, 8, 1]).is_none());
        assert!(vendor_specific(&[0, 0, 0x3a, 0x8c, 8, 4, 0]).is_none());
    }
}
