//! memberlist's encryption: AES-GCM (128, 192 or 256-bit keys) with a 12-byte nonce, in
//! the envelope `[version][nonce][ciphertext ‖ tag]`. Version 1 has no padding; version 0
//! (protocol 1) pads with PKCS#7 first. A keyring encrypts with its primary key and
//! decrypts with whichever key authenticates. UDP packets carry no associated data;
//! a stream's associated data is its 5-byte `[10][length]` header.

use crate::wire::WireError;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};

type Aes192Gcm = AesGcm<Aes192, U12>;

const NONCE: usize = 12;
const TAG: usize = 16;

/// Bytes that encryption version 1 adds to a message.
pub const OVERHEAD: usize = 1 + NONCE + TAG;

/// A key of 16, 24 or 32 bytes.
#[derive(Clone)]
pub enum Key {
    /// AES-128.
    Aes128(Box<Aes128Gcm>),
    /// AES-192.
    Aes192(Box<Aes192Gcm>),
    /// AES-256.
    Aes256(Box<Aes256Gcm>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        let bits = match self {
            Key::Aes128(_) => 128,
            Key::Aes192(_) => 192,
            Key::Aes256(_) => 256,
        };
        write!(f, "Key(AES-{bits})")
    }
}

impl Key {
    /// A key from raw bytes, or `None` for a length other than 16, 24 or 32.
    pub fn new(bytes: &[u8]) -> Option<Key> {
        Some(match bytes.len() {
            16 => Key::Aes128(Box::new(Aes128Gcm::new_from_slice(bytes).ok()?)),
            24 => Key::Aes192(Box::new(Aes192Gcm::new_from_slice(bytes).ok()?)),
            32 => Key::Aes256(Box::new(Aes256Gcm::new_from_slice(bytes).ok()?)),
            _ => return None,
        })
    }

    fn seal(&self, nonce: &[u8; NONCE], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let n = Nonce::from_slice(nonce);
        let p = Payload { msg, aad };
        let r = match self {
            Key::Aes128(k) => k.encrypt(n, p),
            Key::Aes192(k) => k.encrypt(n, p),
            Key::Aes256(k) => k.encrypt(n, p),
        };
        // AES-GCM encryption only fails for messages beyond 64 GiB.
        r.unwrap_or_default()
    }

    fn open(&self, nonce: &[u8], ct: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let n = Nonce::from_slice(nonce);
        let p = Payload { msg: ct, aad };
        match self {
            Key::Aes128(k) => k.decrypt(n, p).ok(),
            Key::Aes192(k) => k.decrypt(n, p).ok(),
            Key::Aes256(k) => k.decrypt(n, p).ok(),
        }
    }
}

/// Installed keys; the first is the primary.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A keyring whose primary key is `primary`.
    pub fn new(primary: Key) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    /// Add a secondary key (accepted on receive, never used to send).
    pub fn add(&mut self, key: Key) {
        self.keys.push(key);
    }

    /// Whether any key is installed (encryption on).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Encrypt with the primary key, version 1: `[1][nonce][ct‖tag]`.
    pub fn encrypt(&self, nonce: [u8; NONCE], msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return msg.to_vec();
        };
        let mut out = Vec::with_capacity(OVERHEAD + msg.len());
        out.push(1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&key.seal(&nonce, msg, aad));
        out
    }

    /// Decrypt an envelope with any installed key (versions 0 and 1).
    pub fn decrypt(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>, WireError> {
        let Some((&vsn, rest)) = envelope.split_first() else {
            return Err(WireError::Truncated);
        };
        if vsn > 1 {
            return Err(WireError::Decrypt);
        }
        if rest.len() < NONCE + TAG {
            return Err(WireError::Truncated);
        }
        let (nonce, ct) = rest.split_at(NONCE);
        for key in &self.keys {
            if let Some(mut plain) = key.open(nonce, ct, aad) {
                if vsn == 0 {
                    // PKCS#7: the last byte says how much padding to drop.
                    let pad = usize::from(*plain.last().unwrap_or(&0));
                    if pad == 0 || pad > plain.len() {
                        return Err(WireError::Decrypt);
                    }
                    plain.truncate(plain.len() - pad);
                }
                return Ok(plain);
            }
        }
        Err(WireError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_encrypts_and_any_key_decrypts() {
        let a = Key::new(&[1u8; 16]).unwrap();
        let b = Key::new(&[2u8; 32]).unwrap();
        let sender = Keyring::new(b.clone());
        let mut receiver = Keyring::new(a);
        let env = sender.encrypt([7; 12], b"hello", b"");
        assert_eq!(env.len(), OVERHEAD + 5);
        assert_eq!(receiver.decrypt(&env, b""), Err(WireError::Decrypt));
        receiver.add(b);
        assert_eq!(receiver.decrypt(&env, b"").unwrap(), b"hello");
        // Associated data is authenticated.
        let env = sender.encrypt([8; 12], b"x", b"hdr");
        assert!(receiver.decrypt(&env, b"hdr").is_ok());
        assert_eq!(receiver.decrypt(&env, b"HDR"), Err(WireError::Decrypt));
    }

    #[test]
    fn keys_must_be_16_24_or_32_bytes() {
        assert!(Key::new(&[0; 16]).is_some());
        assert!(Key::new(&[0; 24]).is_some());
        assert!(Key::new(&[0; 20]).is_none());
    }
}
