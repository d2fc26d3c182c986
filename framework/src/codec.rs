//! bincode 2 (standard configuration) over serde: how commands, responses and messages become
//! bytes.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| e.to_string())
}

/// Encodes a value straight into shared bytes: a command is encoded once and then shared by the
/// log, the followers' messages and any retry. A small value costs one allocation (encoded on the
/// stack first), a larger one two.
pub fn encode_shared<T: Serialize>(value: &T) -> Result<Arc<[u8]>, String> {
    let mut buffer = [0u8; 128];
    match bincode::serde::encode_into_slice(value, &mut buffer, bincode::config::standard()) {
        Ok(written) => Ok(Arc::from(&buffer[..written])),
        Err(_) => encode(value).map(Arc::from),
    }
}

/// Decodes a value, refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_encoding_matches_the_plain_one_small_or_large() {
        for value in [vec![7u8; 3], vec![9u8; 5000]] {
            let shared = encode_shared(&value).expect("encodes");
            assert_eq!(&shared[..], &encode(&value).expect("encodes")[..]);
            assert_eq!(decode::<Vec<u8>>(&shared), Ok(value));
        }
    }
}
