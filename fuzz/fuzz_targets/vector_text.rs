//! pgvector's text form: `Vector::from_str` on arbitrary text never panics; what it accepts prints
//! (`Display`) as text that parses back to the same bits; a valid vector's text parses back bit-exact.
#![no_main]

use diesel_vector::Vector;
use diesel_vector_fuzz::bits;
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (selector, rest) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    if selector & 1 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(v) = text.parse::<Vector>() {
            let printed = v.to_string();
            let back: Vector = printed.parse().unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
            assert_eq!(bits(&back), bits(&v), "{text:?} -> {printed:?}");
        }
    } else if let Ok(Some(v)) = diesel_vector_fuzz::vector(&mut Unstructured::new(rest)) {
        let printed = v.to_string();
        let back: Vector = printed.parse().unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
        assert_eq!(bits(&back), bits(&v), "{printed:?}");
    }
});
