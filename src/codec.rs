//! Typed values (feature `serde`): how a value becomes bytes in Redis and
//! back. JSON by default; any format through [`Codec`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A value format: bytes in Redis, a typed value in Rust.
///
/// ```
/// use aci_cache::Codec;
/// /// Plain UTF-8 for `String`s, no quotes (a format other clients read as text).
/// struct Text;
/// impl Codec for Text {
///     type Error = std::string::FromUtf8Error;
///     fn encode<V: serde::Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, Self::Error> {
///         let json = serde_json::to_value(value).unwrap_or_default();
///         Ok(json.as_str().unwrap_or_default().as_bytes().to_vec())
///     }
///     fn decode<V: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<V, Self::Error> {
///         let text = String::from_utf8(bytes.to_vec())?;
///         Ok(serde_json::from_value(serde_json::Value::String(text)).expect("a string"))
///     }
/// }
/// let cache = aci_cache::AdaptiveCache::builder()
///     .transport(aci_cache::transports::MemoryTransport::new())?;
/// cache.set_encoded("greeting", "hello", &Text)?;
/// assert_eq!(cache.get("greeting")?.as_deref(), Some(&b"hello"[..]));
/// let back: Option<String> = cache.get_decoded("greeting", &Text)?;
/// assert_eq!(back.as_deref(), Some("hello"));
/// # Ok::<(), aci_cache::Error>(())
/// ```
pub trait Codec {
    /// Why a value could not be encoded or decoded.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The bytes stored for `value`.
    fn encode<V: Serialize + ?Sized>(&self, value: &V)
        -> std::result::Result<Vec<u8>, Self::Error>;
    /// The value stored as `bytes`.
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> std::result::Result<V, Self::Error>;
}

/// JSON through `serde_json`: what `get_json` and `set_json` use.
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

impl Codec for Json {
    type Error = serde_json::Error;
    fn encode<V: Serialize + ?Sized>(
        &self,
        value: &V,
    ) -> std::result::Result<Vec<u8>, Self::Error> {
        serde_json::to_vec(value)
    }
    fn decode<V: DeserializeOwned>(&self, bytes: &[u8]) -> std::result::Result<V, Self::Error> {
        serde_json::from_slice(bytes)
    }
}

/// `value` encoded, or [`Error::Encode`] naming `key`.
pub(crate) fn encode<C: Codec, V: Serialize + ?Sized>(
    codec: &C,
    key: &str,
    value: &V,
) -> Result<Vec<u8>> {
    codec.encode(value).map_err(|e| Error::Encode {
        key: key.to_owned(),
        source: Box::new(e),
    })
}

/// `bytes` decoded, or [`Error::Decode`] naming `key`.
pub(crate) fn decode<C: Codec, V: DeserializeOwned>(
    codec: &C,
    key: &str,
    bytes: Option<bytes::Bytes>,
) -> Result<Option<V>> {
    bytes
        .map(|b| {
            codec.decode(&b).map_err(|e| Error::Decode {
                key: key.to_owned(),
                source: Box::new(e),
            })
        })
        .transpose()
}
