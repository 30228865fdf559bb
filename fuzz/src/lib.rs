//! What the fuzz targets share: the [`Codec`] trait with its two generic checks, and helpers that turn
//! fuzzer bytes into values.
//!
//! Adding a codec (a new vector type's wire format) is one small file in `fuzz_targets/`: a unit struct,
//! its `impl Codec`, and `fuzz_target!(|data: &[u8]| diesel_vector_fuzz::check_codec::<ThatCodec>(data));`
//! (`cargo fuzz add NAME` writes the file and its `[[bin]]` entry; `scripts/fuzz.sh` runs every target it
//! finds there).

use arbitrary::Unstructured;

pub use diesel_vector;

/// A wire format for one value type: both directions as pure functions.
pub trait Codec {
    /// The decoded value.
    type Value: std::fmt::Debug;
    /// Decodes bytes, validating them. Must never panic.
    fn decode(bytes: &[u8]) -> Result<Self::Value, diesel_vector::VectorError>;
    /// Encodes a value; for a value that came from [`Codec::decode`], the same bytes.
    fn encode(value: &Self::Value) -> Vec<u8>;
    /// A valid value made from fuzzer input, or `None` when the input makes none.
    fn value(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Self::Value>>;
    /// Further checks on arbitrary bytes (conversions to other formats agreeing with decode...).
    fn more_checks(_bytes: &[u8]) {}
}

/// The checks every codec gets: decoding arbitrary bytes never panics and, when it succeeds, encoding
/// the value gives the same bytes back; a valid value encodes, decodes and encodes again to the same
/// bytes (bit-exact, so `-0.0` and subnormals survive).
pub fn check_codec<C: Codec>(data: &[u8]) {
    let (selector, rest) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    if selector & 1 == 0 {
        if let Ok(value) = C::decode(rest) {
            assert_eq!(C::encode(&value), rest, "decode then encode changed the bytes of {value:?}");
        }
        C::more_checks(rest);
    } else {
        let mut u = Unstructured::new(rest);
        if let Ok(Some(value)) = C::value(&mut u) {
            let bytes = C::encode(&value);
            let back = C::decode(&bytes).unwrap_or_else(|e| panic!("encoded {value:?} does not decode: {e}"));
            assert_eq!(C::encode(&back), bytes, "round trip changed {value:?}");
        }
    }
}

/// `f32`s from fuzzer bytes, non-finite ones made finite (the exponent's lowest bit cleared), at most
/// `max` of them: most inputs then make a valid vector.
pub fn finite_f32s(u: &mut Unstructured<'_>, max: usize) -> arbitrary::Result<Vec<f32>> {
    let n = u.int_in_range(0..=max)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let bits: u32 = u.arbitrary()?;
        let x = f32::from_bits(bits);
        out.push(if x.is_finite() { x } else { f32::from_bits(bits & !0x0080_0000) });
    }
    Ok(out)
}

/// A valid [`diesel_vector::Vector`] of 1 to 16000 dimensions from fuzzer input.
pub fn vector(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<diesel_vector::Vector>> {
    Ok(diesel_vector::Vector::new(finite_f32s(u, diesel_vector::MAX_DIMS)?).ok())
}

/// The bits of each element: equal bits mean a bit-exact copy.
pub fn bits(v: &diesel_vector::Vector) -> Vec<u32> {
    v.as_slice().iter().map(|x| x.to_bits()).collect()
}
