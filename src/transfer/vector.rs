//! Vector columns, per element type, in one place: PostgreSQL's binary format to and from the crate's
//! SQLite BLOB format (the neutral form of a vector value), and the BLOB's checks.
//!
//! | element | SQLite BLOB (neutral form) | PostgreSQL binary |
//! |---|---|---|
//! | `vector` | each `f32` little-endian | `u16` dims, `u16` 0, each `f32` big-endian |
//!
//! `halfvec`, `sparsevec` and `bit` columns are refused by [`supported`] until their codecs exist: a
//! copy names such a column before it writes anything.

use crate::index::Element;

/// Whether the copy can move columns of this element type.
pub(crate) fn supported(element: Element) -> Result<(), String> {
    match element {
        Element::Vector => Ok(()),
        other => Err(format!("`{other}` columns cannot be copied by this version yet (only `vector`)")),
    }
}

/// Checks a BLOB in the element's SQLite format, and its dimensions against the column's.
pub(crate) fn check_blob(element: Element, blob: &[u8], dims: Option<u32>) -> Result<(), String> {
    supported(element)?;
    let found = crate::codec::check_sqlite(blob).map_err(|e| e.to_string())?;
    check_dims(found, dims)
}

fn check_dims(found: usize, dims: Option<u32>) -> Result<(), String> {
    match dims {
        Some(d) if usize::try_from(d).ok() != Some(found) => {
            Err(format!("the vector has {found} dimensions; the column holds {d}"))
        }
        _ => Ok(()),
    }
}

/// PostgreSQL's binary value (from a binary result or `COPY`) to the neutral BLOB, validated.
#[cfg(feature = "pg")]
pub(crate) fn from_pg(element: Element, bytes: &[u8], dims: Option<u32>) -> Result<Vec<u8>, String> {
    supported(element)?;
    let mut blob = Vec::new();
    crate::codec::pg_payload_to_sqlite(bytes, &mut blob).map_err(|e| e.to_string())?;
    check_dims(blob.len() / 4, dims)?;
    Ok(blob)
}

/// Appends the neutral BLOB to `out` in PostgreSQL's binary format.
#[cfg(feature = "pg")]
pub(crate) fn append_pg(element: Element, blob: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    supported(element)?;
    crate::codec::append_sqlite_as_pg(blob, out).map_err(|e| e.to_string())
}

/// Writes the neutral BLOB as a JSON array of numbers, each in the shortest form that reads back to
/// the same bits.
#[cfg(feature = "jsonl")]
pub(crate) fn write_json(element: Element, blob: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    use std::io::Write;
    supported(element)?;
    let v = crate::codec::decode_sqlite(blob).map_err(|e| e.to_string())?;
    write!(out, "{v}").map_err(|e| e.to_string())
}

/// Parses a JSON array of numbers (each straight to `f32`, never through `f64`) into the neutral BLOB.
#[cfg(feature = "jsonl")]
pub(crate) fn parse_json(element: Element, text: &str, dims: Option<u32>) -> Result<Vec<u8>, String> {
    supported(element)?;
    let v: crate::Vector = text.parse().map_err(|e| format!("not a vector: {e}"))?;
    check_dims(v.dims(), dims)?;
    Ok(crate::codec::encode_sqlite(&v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn blobs_are_checked_for_shape_values_and_dimensions() {
        assert_eq!(check_blob(Element::Vector, &le(&[1.0, -0.0]), Some(2)), Ok(()));
        assert!(check_blob(Element::Vector, &[0; 6], None).unwrap_err().contains("not a whole number"));
        assert!(check_blob(Element::Vector, &le(&[1.0, f32::NAN]), None).unwrap_err().contains("NaN"));
        assert_eq!(
            check_blob(Element::Vector, &le(&[1.0]), Some(3)).unwrap_err(),
            "the vector has 1 dimensions; the column holds 3"
        );
        assert!(check_blob(Element::HalfVector, &[0; 4], None).unwrap_err().contains("`halfvec` columns"));
    }

    #[cfg(feature = "pg")]
    #[test]
    fn postgresql_bytes_and_blobs_convert_bit_exact_both_ways() {
        let blob = le(&[f32::MIN_POSITIVE, -0.0, f32::from_bits(1), 3.5]);
        let mut pg = vec![9];
        append_pg(Element::Vector, &blob, &mut pg).unwrap();
        assert_eq!(&pg[..5], &[9, 0, 4, 0, 0]);
        assert_eq!(from_pg(Element::Vector, &pg[1..], Some(4)).unwrap(), blob);
        assert!(from_pg(Element::Vector, &pg[1..], Some(5)).is_err());
        let mut out = vec![7];
        assert!(append_pg(Element::Vector, &le(&[f32::INFINITY]), &mut out).is_err());
        assert_eq!(out, [7], "left as it was");
    }
}
