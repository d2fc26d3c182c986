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

/// Serde for byte strings in bulk: `#[serde(with = "raftor::codec::bytes")]` on a `Vec<u8>` or an
/// `Arc<[u8]>` field. Plain serde hands a byte vector over as a sequence, one `u8` at a time; this
/// hands it over as one slice, which bincode copies at once. bincode writes both the same way (a
/// length, then the bytes), so data already stored or sent reads back unchanged; a format that
/// writes byte strings differently (JSON's arrays of numbers) is still read, as a sequence.
///
/// Reading asks for borrowed bytes: decoding from a slice ([`decode`]), bincode lends the bytes
/// in place and the field is built from them in one allocation and one copy. Asked for an owned
/// buffer instead, bincode first zeroes a fresh vector and copies into it, and an `Arc<[u8]>`
/// then took a second allocation and copy: the two together were about 3 % of a key-value
/// server's CPU with 256-byte values. A decoder that cannot lend (one reading from a stream)
/// hands over an owned buffer, which is taken as it is.
pub mod bytes {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes the bytes as one byte string.
    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(
        bytes: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes.as_ref())
    }

    /// Deserializes a byte string (or a sequence of bytes).
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: From<Vec<u8>> + for<'a> From<&'a [u8]>,
    {
        deserializer.deserialize_bytes(BytesVisitor(PhantomData))
    }

    struct BytesVisitor<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for BytesVisitor<T>
    where
        T: From<Vec<u8>> + for<'a> From<&'a [u8]>,
    {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a byte string")
        }

        fn visit_bytes<E>(self, bytes: &[u8]) -> Result<T, E> {
            Ok(T::from(bytes))
        }

        fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<T, E> {
            Ok(T::from(bytes))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
            // A hostile length must not reserve memory up front: grow as bytes arrive.
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(T::from(bytes))
        }
    }
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

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Bulk {
        #[serde(with = "super::bytes")]
        data: Vec<u8>,
        #[serde(with = "super::bytes")]
        shared: Arc<[u8]>,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Plain {
        data: Vec<u8>,
        shared: Arc<[u8]>,
    }

    #[test]
    fn bulk_bytes_encode_as_plain_sequences_do_and_read_them_back() {
        let bulk = Bulk {
            data: (0..=255).collect(),
            shared: Arc::from(vec![1u8, 2, 3]),
        };
        let plain = Plain {
            data: bulk.data.clone(),
            shared: Arc::clone(&bulk.shared),
        };
        let encoded = encode(&bulk).expect("encodes");
        assert_eq!(
            encoded,
            encode(&plain).expect("encodes"),
            "same bytes on the wire"
        );
        assert_eq!(decode::<Bulk>(&encoded), Ok(bulk));
        assert_eq!(decode::<Plain>(&encoded), Ok(plain));
    }

    #[test]
    fn bulk_bytes_read_back_from_a_stream_too() {
        // A stream cannot lend its bytes: bincode hands over an owned buffer instead.
        let bulk = Bulk {
            data: vec![5u8; 1000],
            shared: Arc::from(vec![6u8; 70_000]),
        };
        let encoded = encode(&bulk).expect("encodes");
        let mut reader = std::io::Cursor::new(&encoded);
        let streamed: Result<Bulk, _> =
            bincode::serde::decode_from_std_read(&mut reader, bincode::config::standard());
        assert_eq!(streamed.ok(), Some(bulk));
        assert_eq!(reader.position() as usize, encoded.len());
    }

    #[test]
    fn a_byte_string_longer_than_its_input_is_an_error() {
        let mut encoded = encode(&Bulk {
            data: vec![1u8; 10],
            shared: Arc::from(vec![2u8; 10]),
        })
        .expect("encodes");
        encoded.truncate(encoded.len() - 1);
        assert!(decode::<Bulk>(&encoded).is_err());
        // A length far past the end (varint 0xfb + u32) reserves nothing and fails.
        let hostile = [0xfbu8, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3];
        assert!(decode::<Bulk>(&hostile).is_err());
    }
}
