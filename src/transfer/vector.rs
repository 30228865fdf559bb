//! Vector columns, per element type, in one place: PostgreSQL's binary format to and from the crate's
//! SQLite BLOB format (the neutral form of a vector value), the BLOB's checks, and the JSON form.
//!
//! | element | SQLite BLOB (neutral form) | PostgreSQL binary | JSON lines | dimensions |
//! |---|---|---|---|---|
//! | `vector` | each `f32` little-endian | `u16` dims, `u16` 0, each `f32` big-endian | an array of numbers | elements |
//! | `halfvec` | each `f16` little-endian | `u16` dims, `u16` 0, each `f16` big-endian | an array of numbers | elements |
//! | `sparsevec` | `u32` dims, indices, values, little-endian | `i32` dims, nnz, 0, indices, values, big-endian | pgvector's text as a string, `"{1:1.5}/5"` | declared dimensions |
//! | `bit` | the packed bytes (whole bytes only) | `i32` length in bits, the packed bytes | PostgreSQL's text as a string, `"0101..."` | bits |
//!
//! Every conversion goes through the codec's validating decoder (`codec`, `codec::halfvec`,
//! `codec::sparsevec`, `codec::bit`): a malformed value is an error naming the problem, never a panic
//! or a silent change. `vector` converts straight between the two byte orders; the others through their
//! value type.

use crate::codec;
use crate::index::Element;

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The dimensions of a BLOB in the element's SQLite format, after checking all of it.
fn blob_dims(element: Element, blob: &[u8]) -> Result<usize, String> {
    Ok(match element {
        Element::Vector => codec::check_sqlite(blob).map_err(text)?,
        Element::HalfVector => codec::halfvec::decode_sqlite(blob).map_err(text)?.dims(),
        Element::SparseVector => codec::sparsevec::decode_sqlite(blob).map_err(text)?.dims(),
        Element::Bit => codec::bit::decode_sqlite(blob).map_err(text)?.len(),
    })
}

/// Checks a BLOB in the element's SQLite format, and its dimensions against the column's.
pub(crate) fn check_blob(element: Element, blob: &[u8], dims: Option<u32>) -> Result<(), String> {
    check_dims(element, blob_dims(element, blob)?, dims)
}

fn check_dims(element: Element, found: usize, dims: Option<u32>) -> Result<(), String> {
    match dims {
        Some(d) if usize::try_from(d).ok() != Some(found) => {
            let what = if element == Element::Bit { "bits" } else { "dimensions" };
            Err(format!("the {element} has {found} {what}; the column holds {d}"))
        }
        _ => Ok(()),
    }
}

/// PostgreSQL's binary value (from a binary result or `COPY`) to the neutral BLOB, validated.
#[cfg(feature = "pg")]
pub(crate) fn from_pg(element: Element, bytes: &[u8], dims: Option<u32>) -> Result<Vec<u8>, String> {
    let (blob, found) = match element {
        Element::Vector => {
            let mut blob = Vec::new();
            codec::pg_payload_to_sqlite(bytes, &mut blob).map_err(text)?;
            let found = blob.len() / 4;
            (blob, found)
        }
        Element::HalfVector => {
            let v = codec::halfvec::decode_pg(bytes).map_err(text)?;
            (codec::halfvec::encode_sqlite(&v).into_owned(), v.dims())
        }
        Element::SparseVector => {
            let v = codec::sparsevec::decode_pg(bytes).map_err(text)?;
            (codec::sparsevec::encode_sqlite(&v), v.dims())
        }
        Element::Bit => {
            let b = codec::bit::decode_pg(bytes).map_err(text)?;
            // A length that is not the column's is named as such before SQLite's whole bytes are.
            check_dims(element, b.len(), dims)?;
            (codec::bit::encode_sqlite(&b).map_err(text)?.to_vec(), b.len())
        }
    };
    check_dims(element, found, dims)?;
    Ok(blob)
}

/// Appends the neutral BLOB to `out` in PostgreSQL's binary format.
#[cfg(feature = "pg")]
pub(crate) fn append_pg(element: Element, blob: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match element {
        Element::Vector => codec::append_sqlite_as_pg(blob, out).map_err(text),
        Element::HalfVector => {
            codec::halfvec::write_pg(&codec::halfvec::decode_sqlite(blob).map_err(text)?, out).map_err(text)
        }
        Element::SparseVector => {
            codec::sparsevec::write_pg(&codec::sparsevec::decode_sqlite(blob).map_err(text)?, out).map_err(text)
        }
        Element::Bit => codec::bit::write_pg(&codec::bit::decode_sqlite(blob).map_err(text)?, out).map_err(text),
    }
}

/// Writes the neutral BLOB in its JSON form (see the module docs), each float in the shortest form that
/// reads back to the same bits.
#[cfg(feature = "jsonl")]
pub(crate) fn write_json(element: Element, blob: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    use std::io::Write;
    let string = |out: &mut Vec<u8>, s: String| serde_json::to_writer(out, &s).map_err(text);
    match element {
        Element::Vector => write!(out, "{}", codec::decode_sqlite(blob).map_err(text)?).map_err(text),
        Element::HalfVector => write!(out, "{}", codec::halfvec::decode_sqlite(blob).map_err(text)?).map_err(text),
        Element::SparseVector => string(out, codec::sparsevec::decode_sqlite(blob).map_err(text)?.to_string()),
        Element::Bit => string(out, codec::bit::decode_sqlite(blob).map_err(text)?.to_string()),
    }
}

/// Parses the JSON form (an array straight to `f32`, never through `f64`; the string forms with their
/// types' parsers) into the neutral BLOB.
#[cfg(feature = "jsonl")]
pub(crate) fn parse_json(element: Element, json: &str, dims: Option<u32>) -> Result<Vec<u8>, String> {
    let string = || serde_json::from_str::<String>(json).map_err(|_| format!("{json} is not a string"));
    let (blob, found) = match element {
        Element::Vector => {
            let v: crate::Vector = json.parse().map_err(|e| format!("not a vector: {e}"))?;
            (codec::encode_sqlite(&v).into_owned(), v.dims())
        }
        Element::HalfVector => {
            let v: crate::HalfVector = json.parse().map_err(|e| format!("not a halfvec: {e}"))?;
            (codec::halfvec::encode_sqlite(&v).into_owned(), v.dims())
        }
        Element::SparseVector => {
            let v: crate::SparseVector = string()?.parse().map_err(|e| format!("not a sparsevec: {e}"))?;
            (codec::sparsevec::encode_sqlite(&v), v.dims())
        }
        Element::Bit => {
            let b: crate::Bit = string()?.parse().map_err(|e| format!("not a bit string: {e}"))?;
            check_dims(element, b.len(), dims)?;
            (codec::bit::encode_sqlite(&b).map_err(text)?.to_vec(), b.len())
        }
    };
    check_dims(element, found, dims)?;
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bit, HalfVector, SparseVector};

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// One value of each element type, as the neutral BLOB, with its dimensions.
    fn samples() -> Vec<(Element, Vec<u8>, u32)> {
        let half = HalfVector::from_f32_slice(&[1.5, -0.0, 65504.0]).unwrap();
        let sparse: SparseVector = "{1:1.5,4:-2}/6".parse().unwrap();
        let bits = Bit::from_bytes(&[0b1010_0000, 0xff]);
        vec![
            (Element::Vector, le(&[f32::MIN_POSITIVE, -0.0, f32::from_bits(1), 3.5]), 4),
            (Element::HalfVector, codec::halfvec::encode_sqlite(&half).into_owned(), 3),
            (Element::SparseVector, codec::sparsevec::encode_sqlite(&sparse), 6),
            (Element::Bit, codec::bit::encode_sqlite(&bits).unwrap().to_vec(), 16),
        ]
    }

    #[test]
    fn blobs_are_checked_for_shape_values_and_dimensions() {
        for (element, blob, dims) in samples() {
            assert_eq!(check_blob(element, &blob, Some(dims)), Ok(()), "{element}");
            assert!(check_blob(element, &blob, Some(dims + 8)).unwrap_err().contains("the column holds"), "{element}");
            assert!(check_blob(element, &blob[..blob.len() - 1], Some(dims)).is_err(), "{element}: truncated");
        }
        assert!(check_blob(Element::Vector, &[0; 6], None).unwrap_err().contains("not a whole number"));
        assert!(check_blob(Element::Vector, &le(&[1.0, f32::NAN]), None).unwrap_err().contains("NaN"));
        assert_eq!(
            check_blob(Element::Vector, &le(&[1.0]), Some(3)).unwrap_err(),
            "the vector has 1 dimensions; the column holds 3"
        );
    }

    #[cfg(feature = "pg")]
    #[test]
    fn postgresql_bytes_and_blobs_convert_bit_exact_both_ways() {
        for (element, blob, dims) in samples() {
            let mut pg = vec![9];
            append_pg(element, &blob, &mut pg).unwrap();
            assert_eq!(pg[0], 9, "appended");
            assert_eq!(from_pg(element, &pg[1..], Some(dims)).unwrap(), blob, "{element}");
            assert!(from_pg(element, &pg[1..], Some(dims + 8)).is_err(), "{element}");
            assert!(from_pg(element, &pg[1..pg.len() - 1], None).is_err(), "{element}: truncated");
        }
        let mut out = vec![7];
        assert!(append_pg(Element::Vector, &le(&[f32::INFINITY]), &mut out).is_err());
        assert_eq!(out, [7], "left as it was");
    }

    #[cfg(feature = "jsonl")]
    #[test]
    fn the_json_forms_read_back_bit_exact() {
        for (element, blob, dims) in samples() {
            let mut json = Vec::new();
            write_json(element, &blob, &mut json).unwrap();
            let json = String::from_utf8(json).unwrap();
            assert_eq!(parse_json(element, &json, Some(dims)).unwrap(), blob, "{element}: {json}");
        }
        let mut json = Vec::new();
        write_json(Element::SparseVector, &samples()[2].1, &mut json).unwrap();
        assert_eq!(json, br#""{1:1.5,4:-2}/6""#);
        assert!(parse_json(Element::Bit, r#""0101""#, None).unwrap_err().contains("whole"));
        // Against a declared length, the length is what is wrong (trial 6).
        assert_eq!(
            parse_json(Element::Bit, r#""0101""#, Some(256)).unwrap_err(),
            "the bit has 4 bits; the column holds 256"
        );
    }
}
