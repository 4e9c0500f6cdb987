//! Signed tokens every instance in every region can verify without shared state.
//!
//! Write token (README, "On the wire"): `v1.<region>.<not_after_unix_ms>.<key_id>.<mac>`.
//! Affinity cookie: `a1.<region>.<key_id>.<mac>` (no expiry: the cookie's own
//! lifetime bounds it). `mac` is base64url (no padding) HMAC-SHA256 over
//! everything before the last dot. Keys come from `sessions.keys_file`, one per
//! line as `id:base64`; the first signs, all verify, so keys rotate by prepending.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::core::config::is_valid_region;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are rejected before any parsing or crypto.
const MAX_TOKEN_LEN: usize = 512;
/// Shortest accepted key: an HMAC-SHA256 key should carry 256 bits.
const MIN_KEY_LEN: usize = 32;

/// Why a presented token was not trusted; `outcome()` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnknownKey,
    BadSignature,
    Expired,
}

impl TokenError {
    pub fn outcome(self) -> TokenOutcome {
        match self {
            TokenError::Malformed => TokenOutcome::Malformed,
            TokenError::UnknownKey => TokenOutcome::UnknownKey,
            TokenError::BadSignature => TokenOutcome::Tampered,
            TokenError::Expired => TokenOutcome::Expired,
        }
    }
}

crate::util::label_set::label_set! {
    /// What became of a write token: `meridian_write_tokens_total{outcome}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TokenOutcome {
        /// An answer to a write carried a new one.
        Issued => "issued",
        /// A read was pinned to the token's region.
        Honored => "honored",
        /// The token's region is unhealthy: the read was routed normally.
        RegionUnhealthy => "region_unhealthy",
        /// The token's region is outside the client's residency group.
        OutsideResidency => "outside_residency",
        /// The token names a region this config does not have.
        RegionUnknown => "region_unknown",
        /// The token claims a lifetime longer than any instance issues.
        BeyondCap => "beyond_cap",
        Malformed => "malformed",
        UnknownKey => "unknown_key",
        /// The signature does not match.
        Tampered => "tampered",
        Expired => "expired",
    }
}

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A verified write token, borrowing from the presented text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteToken<'t> {
    pub region: &'t str,
    pub not_after_ms: u64,
    pub key_id: &'t str,
}

struct Key {
    id: String,
    /// Keyed once; cloned per use so no request re-derives the key schedule.
    mac: HmacSha256,
}

/// The keys that sign and verify tokens.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("ids", &ids).finish()
    }
}

fn is_valid_key_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Reads `id:base64` lines; `#` comments and blank lines are skipped.
    pub fn load(path: &Path) -> Result<KeyRing, KeyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            file: file.clone(),
            source,
        })?;
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| KeyError::Line {
                file: file.clone(),
                line: i + 1,
                message,
            };
            let (id, b64) = line
                .split_once(':')
                .ok_or_else(|| err("expected `id:base64`".into()))?;
            let secret = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(b64.trim()).ok())
                .ok_or_else(|| err(format!("key `{}` is not valid base64", id.trim())))?;
            keys.push((id.trim().to_string(), secret));
        }
        KeyRing::from_keys(keys).map_err(|e| match e {
            KeyError::Invalid(m) => KeyError::Invalid(format!("{file}: {m}")),
            other => other,
        })
    }

    /// Builds a ring from `(id, secret)` pairs; the first signs.
    pub fn from_keys(keys: Vec<(String, Vec<u8>)>) -> Result<KeyRing, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Invalid("no keys".into()));
        }
        let mut ring = Vec::with_capacity(keys.len());
        for (id, secret) in keys {
            if !is_valid_key_id(&id) {
                return Err(KeyError::Invalid(format!(
                    "key id `{id}` must be 1-32 of [A-Za-z0-9_-]"
                )));
            }
            if secret.len() < MIN_KEY_LEN {
                return Err(KeyError::Invalid(format!(
                    "key `{id}` has {} bytes; at least {MIN_KEY_LEN} are needed",
                    secret.len()
                )));
            }
            if ring.iter().any(|k: &Key| k.id == id) {
                return Err(KeyError::Invalid(format!("key id `{id}` appears twice")));
            }
            let mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes any key length");
            ring.push(Key { id, mac });
        }
        Ok(KeyRing { keys: ring })
    }

    /// One fresh random key (id `ephemeral`): tokens verify only in this process.
    pub fn random() -> KeyRing {
        let secret: [u8; 32] = rand::random();
        KeyRing::from_keys(vec![("ephemeral".into(), secret.to_vec())]).expect("valid key")
    }

    /// Id of the signing key.
    pub fn signing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = self.keys[0].mac.clone();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Splits `payload.mac`, finds the key named in the payload and checks the MAC.
    fn check<'t>(&self, token: &'t str, key_id: &str) -> Result<&'t str, TokenError> {
        let (payload, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != 32 {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or(TokenError::UnknownKey)?;
        let mut mac = key.mac.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(payload)
    }

    /// A write token for `region`, valid until `not_after_ms` (unix ms).
    pub fn sign_write(&self, region: &str, not_after_ms: u64) -> String {
        self.sign(&format!("v1.{region}.{not_after_ms}.{}", self.keys[0].id))
    }

    /// Verifies a write token at `now_ms`. Never panics, whatever the input.
    pub fn verify_write<'t>(
        &self,
        token: &'t str,
        now_ms: u64,
    ) -> Result<WriteToken<'t>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(region), Some(not_after), Some(key_id), Some(_), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if !is_valid_region(region)
            || !is_valid_key_id(key_id)
            || not_after.is_empty()
            || not_after.len() > 20
            || !not_after.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TokenError::Malformed);
        }
        let not_after_ms: u64 = not_after.parse().map_err(|_| TokenError::Malformed)?;
        self.check(token, key_id)?;
        // Expiry is judged only after the MAC: an attacker learns nothing from it.
        if now_ms > not_after_ms {
            return Err(TokenError::Expired);
        }
        Ok(WriteToken {
            region,
            not_after_ms,
            key_id,
        })
    }

    /// An affinity cookie value pinning a client to `region`.
    pub fn sign_affinity(&self, region: &str) -> String {
        self.sign(&format!("a1.{region}.{}", self.keys[0].id))
    }

    /// Verifies an affinity cookie value; returns its region.
    pub fn verify_affinity<'t>(&self, token: &'t str) -> Result<&'t str, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some("a1"), Some(region), Some(key_id), Some(_), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if !is_valid_region(region) || !is_valid_key_id(key_id) {
            return Err(TokenError::Malformed);
        }
        self.check(token, key_id)?;
        Ok(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(ids: &[(&str, u8)]) -> KeyRing {
        KeyRing::from_keys(
            ids.iter()
                .map(|(id, fill)| (id.to_string(), vec![*fill; 32]))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let r = ring(&[("k1", 1)]);
        let t = r.sign_write("eu-west-1", 5_000);
        assert!(t.starts_with("v1.eu-west-1.5000.k1."));
        let v = r.verify_write(&t, 5_000).unwrap();
        assert_eq!(
            v,
            WriteToken {
                region: "eu-west-1",
                not_after_ms: 5_000,
                key_id: "k1"
            }
        );
        assert_eq!(r.verify_write(&t, 5_001), Err(TokenError::Expired));
        let a = r.sign_affinity("us-east-1");
        assert_eq!(r.verify_affinity(&a), Ok("us-east-1"));
        // A write token is no affinity cookie and the other way round.
        assert_eq!(r.verify_affinity(&t), Err(TokenError::Malformed));
        assert_eq!(r.verify_write(&a, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let r = ring(&[("k1", 1), ("k2", 2)]);
        let t = r.sign_write("eu-west-1", 9_000);
        let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.";
        for i in 0..t.len() {
            for &c in alphabet {
                if t.as_bytes()[i] == c {
                    continue;
                }
                let mut b = t.clone().into_bytes();
                b[i] = c;
                let bad = String::from_utf8(b).unwrap();
                // Either it no longer parses, names another key, or fails the MAC;
                // the only way to pass would be a forged MAC.
                // (The last MAC character carries 4 unused bits in base64: decoders
                // reject non-canonical padding bits, so that stays Malformed.)
                assert!(r.verify_write(&bad, 0).is_err(), "accepted {bad}");
            }
        }
    }

    #[test]
    fn tamper_outcomes() {
        let r = ring(&[("k1", 1)]);
        let t = r.sign_write("eu-west-1", 9_000);
        let other = t.replacen("eu-west-1", "us-east-1", 1);
        assert_eq!(r.verify_write(&other, 0), Err(TokenError::BadSignature));
        let later = t.replacen(".9000.", ".9999.", 1);
        assert_eq!(r.verify_write(&later, 0), Err(TokenError::BadSignature));
        let k9 = t.replacen(".k1.", ".k9.", 1);
        assert_eq!(r.verify_write(&k9, 0), Err(TokenError::UnknownKey));
        // Expired and tampered: the signature is judged first.
        assert_eq!(
            r.verify_write(&later, 99_999),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn rotation() {
        let old = ring(&[("old", 1)]);
        let t = old.sign_write("eu-west-1", 9_000);
        let rotated = ring(&[("new", 2), ("old", 1)]);
        assert!(rotated.verify_write(&t, 0).is_ok());
        assert!(rotated.sign_write("eu-west-1", 9_000).contains(".new."));
        let retired = ring(&[("new", 2)]);
        assert_eq!(retired.verify_write(&t, 0), Err(TokenError::UnknownKey));
        // Same id, different secret: tampered, not unknown.
        let replaced = ring(&[("old", 3)]);
        assert_eq!(replaced.verify_write(&t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn malformed() {
        let r = ring(&[("k1", 1)]);
        let good = r.sign_write("eu-west-1", 9_000);
        let mac = good.rsplit('.').next().unwrap();
        for bad in [
            String::new(),
            "v1".into(),
            "v1.eu-west-1".into(),
            format!("v2.eu-west-1.9000.k1.{mac}"),
            format!("v1.EU.9000.k1.{mac}"),
            format!("v1.eu-west-1.90x0.k1.{mac}"),
            format!("v1.eu-west-1..k1.{mac}"),
            format!("v1.eu-west-1.99999999999999999999999.k1.{mac}"),
            format!("v1.eu-west-1.9000.k1.{mac}.extra"),
            "v1.eu-west-1.9000.k1.!!!".into(),
            "v1.eu-west-1.9000.k1.AAAA".into(),
            format!("v1.{}.9000.k1.{mac}", "a".repeat(600)),
        ] {
            assert_eq!(r.verify_write(&bad, 0), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn key_files() {
        let dir = std::env::temp_dir().join(format!("meridian-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("keys");
        let b64 = STANDARD.encode([7u8; 32]);
        std::fs::write(
            &p,
            format!(
                "# rotated 2026-11\n\nnew:{b64}\nold:{}\n",
                URL_SAFE_NO_PAD.encode([8u8; 40])
            ),
        )
        .unwrap();
        let ring = KeyRing::load(&p).unwrap();
        assert_eq!(ring.signing_key_id(), "new");
        std::fs::write(&p, format!("k1:{b64}\nbroken line\n")).unwrap();
        let e = KeyRing::load(&p).unwrap_err().to_string();
        assert_eq!(e, format!("{}:2: expected `id:base64`", p.display()));
        std::fs::write(&p, "k1:c2hvcnQ=\n").unwrap();
        let e = KeyRing::load(&p).unwrap_err().to_string();
        assert!(e.contains("has 5 bytes; at least 32"), "{e}");
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(KeyRing::load(&p)
            .unwrap_err()
            .to_string()
            .ends_with("no keys"));
        assert!(KeyRing::load(&dir.join("missing"))
            .unwrap_err()
            .to_string()
            .contains("cannot read"));
        std::fs::remove_dir_all(&dir).ok();
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_verifies_or_panics(s in ".{0,200}", n in any::<u64>()) {
            let r = ring(&[("k1", 1)]);
            prop_assert!(r.verify_write(&s, n).is_err());
            prop_assert!(r.verify_affinity(&s).is_err());
        }

        #[test]
        fn token_shaped_input_never_verifies(region in "[a-z0-9-]{1,20}", t in any::<u64>(), mac in "[A-Za-z0-9_-]{43}") {
            let r = ring(&[("k1", 1)]);
            let forged = format!("v1.{region}.{t}.k1.{mac}");
            prop_assert!(r.verify_write(&forged, 0).is_err());
        }
    }
}
