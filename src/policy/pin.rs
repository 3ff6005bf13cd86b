//! PINs and GUIDs. PINs are drawn from the thread-local CSPRNG (`rand::rng()`:
//! ChaCha12 seeded and reseeded from the operating system), uniform over 00000-99999
//! (`random_range` rejects instead of taking a biased modulo): never sequential, never
//! guessable from each other.

use rand::{Rng, RngCore};

/// A uniformly random 5-digit PIN, leading zeros kept.
pub fn random_pin() -> String {
    format!("{:05}", rand::rng().random_range(0..100_000u32))
}

/// Whether `pin` is the 5 ASCII digits Wi-Fi, door and print integrations expect.
pub fn is_valid_pin(pin: &str) -> bool {
    pin.len() == 5 && pin.bytes().all(|b| b.is_ascii_digit())
}

/// A random (version 4, RFC 9562) GUID in lower-case hyphenated form.
pub fn new_guid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_five_digits_and_spread_over_the_space() {
        let pins: Vec<String> = (0..20_000).map(|_| random_pin()).collect();
        assert!(pins.iter().all(|p| is_valid_pin(p)));
        // Leading digits are roughly uniform (each ~2000 of 20000; far outside 1500..2500
        // would mean a broken draw).
        for d in b'0'..=b'9' {
            let n = pins.iter().filter(|p| p.as_bytes()[0] == d).count();
            assert!(
                (1500..2500).contains(&n),
                "digit {} leads {n} PINs",
                d as char
            );
        }
        assert!(
            !is_valid_pin("1234")
                && !is_valid_pin("123456")
                && !is_valid_pin("12a45")
                && !is_valid_pin("１２３４５")
        );
    }

    #[test]
    fn guids_are_v4() {
        let g = new_guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        assert!(matches!(&g[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_guid(), g);
    }
}
