//! TLS 1.3 session tickets sealed with keys read from files, so every
//! gateway of a fleet resumes a session another one started, and the keys
//! rotate by replacing the files (nginx's `ssl_session_ticket_key`).
//!
//! rustls's own ticketer makes a random key per process: right for one
//! gateway, but behind a load balancer a returning client lands on another
//! gateway and pays a full handshake. Here the first key seals new tickets
//! and every key opens them, so an operator rotates by putting a new key
//! first and keeping the previous one second for a ticket lifetime.
//!
//! A key file holds 80 bytes (or 48), as nginx's do (`openssl rand 80`):
//! the first 16 are the key's name, written in clear at the start of each
//! ticket to find the key again; the next 32 (or 16) are the AES-256-GCM
//! (AES-128-GCM) key. nginx's HMAC half is not needed: GCM authenticates.
//! The same files serve nginx and the gateway, though a ticket made by one
//! does not resume on the other (they seal different session states).

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Length of a key's name, at the start of each ticket.
const NAME_LEN: usize = 16;

/// How long a client may keep a ticket, in seconds (a hint: a ticket
/// stops working when its key leaves the files).
pub const LIFETIME: u32 = 6 * 3600;

/// Why ticket keys were refused.
#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    /// The file could not be read.
    #[error("{path}: cannot read the session ticket key: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Neither 48 nor 80 bytes.
    #[error("{path}: a session ticket key file holds 80 bytes (or 48), as `openssl rand 80` makes; this one holds {len}")]
    Length { path: PathBuf, len: usize },
    /// The AEAD refused the key (not expected for these lengths).
    #[error("{path}: the session ticket key was refused by the cipher")]
    Cipher { path: PathBuf },
}

struct Key {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

/// Seals and opens tickets with the keys of the configured files; the
/// first seals.
pub struct TicketKeys {
    files: Vec<PathBuf>,
    keys: ArcSwap<Vec<Key>>,
    random: SystemRandom,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("TicketKeys")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn read_key(path: &Path) -> Result<Key, TicketKeyError> {
    let bytes = std::fs::read(path).map_err(|source| TicketKeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let algorithm = match bytes.len() {
        80 => &aead::AES_256_GCM,
        48 => &aead::AES_128_GCM,
        len => {
            return Err(TicketKeyError::Length {
                path: path.to_path_buf(),
                len,
            })
        }
    };
    let mut name = [0u8; NAME_LEN];
    name.copy_from_slice(&bytes[..NAME_LEN]);
    let secret = &bytes[NAME_LEN..NAME_LEN + algorithm.key_len()];
    let unbound = UnboundKey::new(algorithm, secret).map_err(|_| TicketKeyError::Cipher {
        path: path.to_path_buf(),
    })?;
    Ok(Key {
        name,
        aead: LessSafeKey::new(unbound),
    })
}

/// Every key of `files`, in order: all of them, or every error.
fn read_all(files: &[PathBuf]) -> Result<Vec<Key>, Vec<TicketKeyError>> {
    let (mut keys, mut errors) = (Vec::new(), Vec::new());
    for path in files {
        match read_key(path) {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

impl TicketKeys {
    /// Reads the keys of `files` (at least one).
    pub fn load(files: Vec<PathBuf>) -> Result<TicketKeys, Vec<TicketKeyError>> {
        let keys = read_all(&files)?;
        Ok(TicketKeys {
            files,
            keys: ArcSwap::from_pointee(keys),
            random: SystemRandom::new(),
        })
    }

    /// Reads the files again: every key goes live, or none (the old ones
    /// kept). Returns how many keys are live.
    pub fn reload(&self) -> Result<usize, Vec<TicketKeyError>> {
        let keys = read_all(&self.files)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    /// The files the keys are read from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl rustls::server::ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let key = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let tag_len = key.aead.algorithm().tag_len();
        let mut ticket = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + tag_len);
        ticket.extend_from_slice(&key.name);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(plain);
        let (head, body) = ticket.split_at_mut(NAME_LEN + NONCE_LEN);
        let tag = key
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&head[..NAME_LEN]),
                body,
            )
            .ok()?;
        ticket.extend_from_slice(tag.as_ref());
        Some(ticket)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        // Attacker-controlled: every length checked before slicing.
        let name = cipher.get(..NAME_LEN)?;
        let nonce = cipher.get(NAME_LEN..NAME_LEN + NONCE_LEN)?;
        let sealed = cipher.get(NAME_LEN + NONCE_LEN..)?;
        let keys = self.keys.load();
        let key = keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(name), &mut buf)
            .ok()?
            .len();
        buf.truncate(plain_len);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    fn key_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn random(n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        SystemRandom::new().fill(&mut b).unwrap();
        b
    }

    #[test]
    fn a_ticket_opens_with_the_same_key_on_another_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &random(80));
        let a = TicketKeys::load(vec![k.clone()]).unwrap();
        let b = TicketKeys::load(vec![k]).unwrap();
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        // Two tickets of the same state differ (a fresh nonce each).
        assert_ne!(a.encrypt(b"session state").unwrap(), ticket);
    }

    #[test]
    fn rotation_keeps_the_previous_key_for_opening_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = random(80);
        let current = key_file(dir.path(), "current", &old);
        let previous = key_file(dir.path(), "previous", &random(48));
        let keys = TicketKeys::load(vec![current.clone(), previous.clone()]).unwrap();
        let before = keys.encrypt(b"x").unwrap();

        // Rotate: a new first key, the old one second.
        std::fs::write(&current, random(80)).unwrap();
        std::fs::write(&previous, &old).unwrap();
        assert_eq!(keys.reload().unwrap(), 2);
        assert_eq!(keys.decrypt(&before).unwrap(), b"x");
        let after = keys.encrypt(b"y").unwrap();
        assert_ne!(after[..NAME_LEN], before[..NAME_LEN]);

        // The old key gone: its tickets no longer open.
        std::fs::write(&previous, random(80)).unwrap();
        keys.reload().unwrap();
        assert!(keys.decrypt(&before).is_none());
        assert_eq!(keys.decrypt(&after).unwrap(), b"y");
    }

    #[test]
    fn a_bad_file_is_refused_and_the_old_keys_kept() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &random(80));
        let keys = TicketKeys::load(vec![k.clone()]).unwrap();
        let ticket = keys.encrypt(b"x").unwrap();
        std::fs::write(&k, b"short\n").unwrap();
        let errors = keys.reload().unwrap_err();
        assert!(errors[0].to_string().contains("holds 6"), "{}", errors[0]);
        assert_eq!(keys.decrypt(&ticket).unwrap(), b"x");
        let missing = TicketKeys::load(vec![dir.path().join("absent")]).unwrap_err();
        assert!(matches!(missing[0], TicketKeyError::Read { .. }));
    }

    #[test]
    fn tampered_or_short_tickets_do_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TicketKeys::load(vec![key_file(dir.path(), "k", &random(80))]).unwrap();
        let mut ticket = keys.encrypt(b"state").unwrap();
        for n in 0..ticket.len() {
            assert!(keys.decrypt(&ticket[..n]).is_none());
        }
        let last = ticket.len() - 1;
        ticket[last] ^= 1;
        assert!(keys.decrypt(&ticket).is_none());
    }
}
