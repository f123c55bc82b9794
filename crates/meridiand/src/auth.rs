//! Turns `[authentication]` into the protocol core's keys: the server's key table and the key
//! of each association, following the guide's rules (authentication disabled: no keys at
//! all, so associations are unauthenticated and keyed requests get a crypto-NAK).

use crate::config::{AuthenticationConfig, KeyAlgorithm};
use meridian_proto::keys::{Algorithm, Key, KeyId, KeyTable};

fn algorithm(a: KeyAlgorithm) -> Algorithm {
    match a {
        KeyAlgorithm::Md5 => Algorithm::Md5,
        KeyAlgorithm::Sha1 => Algorithm::Sha1,
        KeyAlgorithm::Sha256 => Algorithm::Sha256,
        KeyAlgorithm::Aes128Cmac => Algorithm::Aes128Cmac,
        KeyAlgorithm::Aes256Cmac => Algorithm::Aes256Cmac,
    }
}

/// Every configured key with its trusted flag; empty when authentication is disabled.
/// Errors name the key id, never the secret.
pub fn key_table(config: &AuthenticationConfig) -> Result<KeyTable, String> {
    let mut table = KeyTable::new();
    if !config.enable {
        return Ok(table);
    }
    for k in &config.keys {
        let trusted = config.trusted.contains(&k.id);
        let key = Key::new(KeyId(k.id), algorithm(k.algorithm), &k.secret, trusted)
            .map_err(|e| format!("authentication key {}: {e}", k.id))?;
        table
            .insert(key)
            .map_err(|e| format!("authentication key {}: {e}", k.id))?;
    }
    Ok(table)
}

/// The key of an association with `key_id`: `None` (unauthenticated) when authentication is
/// disabled or no key id is given. A key id missing from the table is a configuration error
/// (the configuration reader already refuses it).
pub fn association_key(table: &KeyTable, key_id: Option<u32>) -> Result<Option<Key>, String> {
    match key_id {
        None => Ok(None),
        Some(_) if table.is_empty() => Ok(None),
        Some(id) => table
            .get(KeyId(id))
            .copied()
            .map(Some)
            .ok_or_else(|| format!("key-id {id} is not a configured key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthKey;

    fn config(enable: bool) -> AuthenticationConfig {
        AuthenticationConfig {
            enable,
            keys_file: None,
            keys: vec![
                AuthKey {
                    id: 1,
                    algorithm: KeyAlgorithm::Md5,
                    secret: b"one".to_vec(),
                },
                AuthKey {
                    id: 2,
                    algorithm: KeyAlgorithm::Aes256Cmac,
                    secret: vec![7; 32],
                },
            ],
            trusted: vec![2],
        }
    }

    #[test]
    fn enabled_table_has_trust_flags() {
        let t = key_table(&config(true)).unwrap();
        assert_eq!(t.len(), 2);
        assert!(!t.get(KeyId(1)).unwrap().trusted());
        assert!(t.get(KeyId(2)).unwrap().trusted());
        assert_eq!(t.get(KeyId(2)).unwrap().algorithm(), Algorithm::Aes256Cmac);
        let k = association_key(&t, Some(1)).unwrap().unwrap();
        assert!(
            !k.trusted(),
            "an untrusted key stays untrusted: no synchronization"
        );
        assert_eq!(association_key(&t, None).unwrap(), None);
        assert!(association_key(&t, Some(3)).is_err());
    }

    #[test]
    fn disabled_authentication_means_no_keys() {
        let t = key_table(&config(false)).unwrap();
        assert!(t.is_empty());
        assert_eq!(association_key(&t, Some(2)).unwrap(), None);
    }
}
