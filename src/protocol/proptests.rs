//! Property tests: validation never panics on any input; what we encode validates and
//! decodes to what was put in; authenticators catch every single-byte change; the
//! `radius` crate reads our packets the same way (an independent decoder).

use super::*;
use proptest::prelude::*;

/// Attribute types whose value length `validate` constrains, with a valid value shape.
fn attribute() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (1u8..=255)
            .prop_filter("length-checked types have their own strategy", |t| {
                ![
                    attr::USER_PASSWORD,
                    attr::CHAP_PASSWORD,
                    attr::CHAP_CHALLENGE,
                    attr::MESSAGE_AUTHENTICATOR,
                    attr::VENDOR_SPECIFIC,
                    attr::USER_NAME,
                ]
                .contains(t)
            })
            .prop_flat_map(|t| (Just(t), proptest::collection::vec(any::<u8>(), 0..=253))),
        proptest::collection::vec(any::<u8>(), 1..=253).prop_map(|v| (attr::USER_NAME, v)),
        (1usize..=8).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 16)
            .prop_map(|v| (attr::USER_PASSWORD, v))),
        proptest::collection::vec(any::<u8>(), 17).prop_map(|v| (attr::CHAP_PASSWORD, v)),
        proptest::collection::vec(any::<u8>(), 5..=253).prop_map(|v| (attr::VENDOR_SPECIFIC, v)),
    ]
}

/// Attribute lists `validate` accepts: User-Password and CHAP-Password at most once.
fn attribute_list(max: usize) -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(attribute(), 0..max).prop_filter(
        "0-1 User-Password and CHAP-Password",
        |v| {
            [attr::USER_PASSWORD, attr::CHAP_PASSWORD]
                .iter()
                .all(|t| v.iter().filter(|(x, _)| x == t).count() <= 1)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        if let Ok(p) = validate(&bytes) {
            // Everything reachable from a validated packet is in bounds.
            let total: usize = p.attributes().map(|a| a.value.len() + 2).sum();
            prop_assert_eq!(total + HEADER_LEN, p.bytes().len());
            let _ = verify_message_authenticator(&p, b"s", None);
            for a in p.attributes() {
                let _ = vendor_specific(a.value);
                let _ = pap_decrypt(a.value, b"s", p.authenticator());
                let _ = chap_matches(a.value, p.authenticator(), b"x");
            }
        }
    }

    #[test]
    fn validate_never_panics_on_near_valid_headers(
        code in 1u8..=45, id in any::<u8>(), length in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![code, id];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend(body);
        let _ = validate(&bytes);
    }

    #[test]
    fn encode_then_decode_round_trips(
        attrs in attribute_list(14),
        id in any::<u8>(), req_auth in any::<[u8; 16]>(),
        secret in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut b = PacketBuilder::with_message_authenticator(Code::AccessAccept, id);
        for (t, v) in &attrs {
            b.add(*t, v).unwrap();
        }
        let bytes = b.finish_response(&req_auth, &secret);
        let p = validate(&bytes).unwrap();
        prop_assert_eq!(p.identifier(), id);
        let got: Vec<(u8, Vec<u8>)> = p.attributes().skip(1).map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(&got, &attrs);
        prop_assert!(verify_response(&p, &req_auth, &secret));

        // The radius crate, an independent decoder, agrees on the attributes and on
        // the Response Authenticator.
        let theirs = radius::core::packet::Packet::decode(&bytes, &secret).unwrap();
        for (t, v) in &attrs {
            prop_assert!(theirs.lookup_all(*t).iter().any(|a| a.encode_bytes() == *v));
        }
        let mut request = vec![1u8, id, 0, 20];
        request.extend_from_slice(&req_auth);
        prop_assert!(radius::core::packet::Packet::is_authentic_response(&bytes, &request, &secret));
    }

    #[test]
    fn any_single_byte_change_is_detected(
        attrs in attribute_list(6),
        req_auth in any::<[u8; 16]>(), pos in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let mut b = PacketBuilder::with_message_authenticator(Code::AccessReject, 9);
        for (t, v) in &attrs {
            b.add(*t, v).unwrap();
        }
        let mut bytes = b.finish_response(&req_auth, b"secret");
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(p) = validate(&bytes) {
            prop_assert!(!verify_response(&p, &req_auth, b"secret"), "byte {} changed unnoticed", i);
        }
    }

    #[test]
    fn pap_round_trips(
        password in proptest::collection::vec(1u8..=255, 0..=128),
        secret in proptest::collection::vec(any::<u8>(), 1..64), auth in any::<[u8; 16]>(),
    ) {
        let hidden = pap_encrypt(&password, &secret, &auth).unwrap();
        prop_assert_eq!(hidden.len() % 16, 0);
        prop_assert_eq!(&*pap_decrypt(&hidden, &secret, &auth).unwrap(), &password[..]);
    }
}
