//! Every level against the portable reference, on random and edge inputs: lengths around every register
//! width, values of every magnitude, NaN and infinities, masks that skip rows.
#![allow(clippy::cast_possible_truncation)]

use super::*;

/// splitmix64: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    fn f32(&mut self, scale: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32(scale)).collect()
    }

    fn words(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Lengths around each register width (4, 8, 16 lanes; 64-word blocks of the codecs), and real sizes.
fn lengths() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=70).collect();
    v.extend([127, 128, 129, 255, 256, 257, 383, 768, 1535, 1536, 1537, 3072, 16_000]);
    v
}

fn bits(x: f32) -> u32 {
    x.to_bits()
}

#[test]
fn detection_gives_a_supported_level_and_the_portable_one_always_exists() {
    assert!(Simd::detect().level().is_supported());
    assert_eq!(Simd::portable().level(), Level::Portable);
    assert_eq!(Simd::at_most(Level::Portable).level(), Level::Portable);
    assert!(Simd::at_most(Level::Avx512).level() <= Level::best_supported());
    for level in Level::ALL {
        assert_eq!(Simd::new(level).is_some(), level.is_supported(), "{level}");
    }
    assert_eq!(Simd::all_supported()[0], Simd::portable());
}

#[test]
fn the_environment_variable_caps_the_level_and_never_raises_it() {
    assert_eq!(capped(Level::Avx512, Some("portable")), Level::Portable);
    assert_eq!(capped(Level::Avx512, Some(" AVX2 ")), Level::Avx2);
    assert_eq!(capped(Level::Popcnt, Some("avx512")), Level::Popcnt);
    assert_eq!(capped(Level::Avx2, Some("sse9")), Level::Avx2, "an unknown name is ignored");
    assert_eq!(capped(Level::Avx2, None), Level::Avx2);
    for level in Level::ALL {
        assert_eq!(Level::from_name(level.name()), Some(level));
    }
}

#[test]
fn f32_kernels_give_the_portable_bits_at_every_level() {
    let mut rng = Rng(1);
    for n in lengths() {
        for scale in [1.0, 1e-3, 1e19] {
            let (a, b) = (rng.vec(n, scale), rng.vec(n, scale));
            let p = Simd::portable();
            for simd in Simd::all_supported() {
                let at = simd.level();
                assert_eq!(bits(simd.dot(&a, &b)), bits(p.dot(&a, &b)), "dot {at} n={n} scale={scale}");
                assert_eq!(bits(simd.l2_squared(&a, &b)), bits(p.l2_squared(&a, &b)), "l2 {at} n={n}");
                assert_eq!(simd.l1(&a, &b).to_bits(), p.l1(&a, &b).to_bits(), "l1 {at} n={n}");
                let (d, nb) = simd.dot_and_norm(&a, &b);
                assert_eq!((bits(d), bits(nb)), (bits(p.dot(&a, &b)), bits(p.dot(&b, &b))), "dot_and_norm {at} n={n}");
                assert_eq!(bits(simd.norm_squared(&a)), bits(p.dot(&a, &a)));
            }
        }
    }
}

#[test]
fn f32_kernels_compute_the_textbook_values_and_use_the_common_length() {
    for simd in Simd::all_supported() {
        let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 6.0, 3.0, 99.0]);
        assert_eq!(simd.dot(&a, &b), 25.0);
        assert_eq!(simd.l2_squared(&a, &b), 25.0);
        assert_eq!(simd.l1(&a, &b), 7.0);
        assert_eq!(simd.dot_and_norm(&a, &b), (25.0, 61.0));
        assert_eq!(simd.dot(&[], &[]), 0.0);
        // 40 elements: two whole blocks of 16 and a rest of 8.
        let ones = vec![1.0f32; 40];
        let twos = vec![2.0f32; 40];
        assert_eq!(simd.dot(&ones, &twos), 80.0);
        assert_eq!(simd.l1(&ones, &twos), 40.0);
    }
}

#[test]
fn f32_kernels_propagate_nan_and_infinity_like_the_portable_ones() {
    for simd in Simd::all_supported() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 15, 16, 33] {
                let mut a = vec![0.5f32; 34];
                a[at] = bad;
                let b = vec![1.0f32; 34];
                let p = Simd::portable();
                assert_eq!(simd.dot(&a, &b).is_nan(), p.dot(&a, &b).is_nan());
                assert_eq!(bits(simd.l2_squared(&a, &b)), bits(p.l2_squared(&a, &b)));
                assert_eq!(simd.l1(&a, &b).to_bits(), p.l1(&a, &b).to_bits());
            }
        }
    }
}

#[test]
fn sign_codes_give_the_portable_bits_at_every_level_and_the_textbook_signs() {
    let mut rng = Rng(13);
    for n in lengths() {
        let (v, centre) = (rng.vec(n, 3.0), rng.vec(n, 0.5));
        // Some elements exactly on the centre (o = 0: no bit) and a centre shorter than the vector.
        let mut v = v;
        for i in (0..n).step_by(7) {
            v[i] = centre[i];
        }
        let words = n.div_ceil(64);
        let mut reference = vec![u64::MAX; words];
        portable::sign_code(&v, 1.0, &centre, &mut reference);
        for (w, word) in reference.iter().enumerate().take(n / 64) {
            let expected =
                (0..64).fold(0u64, |acc, j| acc | (u64::from(v[w * 64 + j] - centre[w * 64 + j] > 0.0) << j));
            assert_eq!(*word, expected, "n={n} word {w}");
        }
        // Words beyond the whole blocks are the caller's: left as they were.
        assert!(reference[n / 64..].iter().all(|w| *w == u64::MAX), "n={n}");
        for simd in Simd::all_supported() {
            for s in [1.0, 0.37] {
                let mut code = vec![u64::MAX; words];
                let got = simd.sign_code(&v, s, &centre, &mut code);
                let mut want_code = vec![u64::MAX; words];
                let want = portable::sign_code(&v, s, &centre, &mut want_code);
                assert_eq!(code, want_code, "{:?} n={n} s={s}", simd.level());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.map(bits), w.map(bits), "{:?} n={n} s={s}", simd.level());
                }
            }
        }
        let short = &centre[..n / 2];
        for simd in Simd::all_supported() {
            let mut code = vec![0u64; words];
            let mut want_code = vec![0u64; words];
            let got = simd.sign_code(&v, 1.0, short, &mut code);
            let want = portable::sign_code(&v, 1.0, short, &mut want_code);
            assert_eq!(code, want_code, "{:?} n={n} short centre", simd.level());
            assert_eq!(got.map(|l| l.map(bits)), want.map(|l| l.map(bits)));
        }
    }
}

fn naive_hamming(query: &[u64], codes: &[u64], keep: &[u64], rows: usize) -> Vec<u16> {
    (0..rows)
        .map(|r| {
            let kept = keep.get(r / 64).is_some_and(|w| w >> (r % 64) & 1 == 1);
            let code = codes.get(r * query.len()..(r + 1) * query.len());
            match (kept, code) {
                (true, Some(code)) => query.iter().zip(code).map(|(q, c)| (q ^ c).count_ones()).sum::<u32>() as u16,
                _ => u16::MAX,
            }
        })
        .collect()
}

#[test]
fn hamming_scans_agree_with_a_naive_count_at_every_level_and_skip_masked_rows() {
    let mut rng = Rng(2);
    // 1023 words is the longest code the four-row AVX2 kernel takes (a distance fits 16 bits), 1024 the first
    // it leaves to the row-by-row loop.
    for words in (1..=33).chain([48, 250, 1023, 1024]) {
        for rows in [0, 1, 7, 64, 65, 130] {
            let query = rng.words(words);
            let mut codes = rng.words(words * rows);
            if rows > 2 {
                codes[..words].copy_from_slice(&query); // distance 0
                for w in &mut codes[words..2 * words] {
                    *w = !*w; // distance words * 64, saturated above u16::MAX - 1 for long codes
                }
            }
            let n = rows.div_ceil(64);
            // All rows, about half, about seven in eight (dense enough for four rows at a time, with holes), none.
            let dense: Vec<u64> = (0..n).map(|_| rng.next() | rng.next() | rng.next()).collect();
            let masks = [vec![u64::MAX; n], rng.words(n), dense, vec![0; n]];
            for keep in &masks {
                let mut expected = naive_hamming(&query, &codes, keep, rows);
                for e in &mut expected {
                    if *e != u16::MAX {
                        *e = (*e).min(u16::MAX - 1);
                    }
                }
                for simd in Simd::all_supported() {
                    let mut out = vec![7u16; rows];
                    simd.hamming_scan(&query, &codes, keep, &mut out);
                    assert_eq!(out, expected, "{} words={words} rows={rows}", simd.level());
                }
            }
        }
    }
}

#[test]
fn hamming_scans_mark_rows_beyond_the_codes_or_the_mask_as_skipped() {
    let query = [0b1011u64, 0];
    let codes = [0u64, 0, 1, 0, 3, 0];
    for simd in Simd::all_supported() {
        // Five outputs for three codes; the mask covers all.
        let mut out = [0u16; 5];
        simd.hamming_scan(&query, &codes, &[u64::MAX], &mut out);
        assert_eq!(out, [3, 2, 1, u16::MAX, u16::MAX]);
        // An empty mask keeps nothing.
        simd.hamming_scan(&query, &codes, &[], &mut out);
        assert_eq!(out, [u16::MAX; 5]);
        // Row 1 masked out.
        simd.hamming_scan(&query, &codes, &[0b101], &mut out[..3]);
        assert_eq!(&out[..3], &[3, u16::MAX, 1]);
    }
}

#[test]
fn hamming_rows_agree_with_a_naive_count_at_every_level() {
    let mut rng = Rng(3);
    for words in [1, 3, 4, 7, 8, 9, 16, 17, 250] {
        let rows = 40;
        let query = rng.words(words);
        let codes = rng.words(words * rows);
        // In order, out of order, repeated, and beyond the codes (`u16::MAX`).
        let picks: Vec<u32> = vec![0, 39, 5, 5, 17, 40, 1000, u32::MAX, 2];
        let naive = |row: u32| {
            let row = row as usize;
            if row < rows {
                let d: u32 = query.iter().zip(&codes[row * words..]).map(|(q, c)| (q ^ c).count_ones()).sum();
                (d as u16).min(u16::MAX - 1)
            } else {
                u16::MAX
            }
        };
        let expected: Vec<u16> = picks.iter().map(|r| naive(*r)).collect();
        for simd in Simd::all_supported() {
            let mut out = vec![7u16; picks.len()];
            simd.hamming_rows(&query, &codes, &picks, &mut out);
            assert_eq!(out, expected, "{} words={words}", simd.level());
            // Only `out.len()` rows, and none when either is empty.
            let mut short = [7u16; 3];
            simd.hamming_rows(&query, &codes, &picks, &mut short);
            assert_eq!(short, expected[..3], "{}", simd.level());
            simd.hamming_rows(&query, &codes, &[], &mut short);
            assert_eq!(short, expected[..3]);
            simd.hamming_rows(&query, &codes[..words * 3], &picks, &mut out);
            assert_eq!(&out[..3], &[expected[0], u16::MAX, u16::MAX], "{} words={words}", simd.level());
        }
    }
}

#[test]
fn plane_sums_agree_with_a_naive_sum_at_every_level() {
    let mut rng = Rng(3);
    for words in (1..=33).chain([96, 250]) {
        for planes in 0..=4 {
            let code = rng.words(words);
            let plane_words = rng.words(planes * words);
            // The query values the planes encode, and the naive sum over the code's set bits.
            let value =
                |i: usize| (0..planes).map(|j| (plane_words[j * words + i / 64] >> (i % 64) & 1) << j).sum::<u64>();
            let set = |i: usize| code[i / 64] >> (i % 64) & 1 == 1;
            let expected_weighted: u64 = (0..words * 64).filter(|&i| set(i)).map(value).sum();
            let expected_ones = (0..words * 64).filter(|&i| set(i)).count() as u32;
            for simd in Simd::all_supported() {
                let got = simd.plane_sums(&plane_words, &code);
                assert_eq!(
                    got,
                    (expected_weighted as u32, expected_ones),
                    "{} words={words} planes={planes}",
                    simd.level()
                );
            }
        }
    }
}

fn naive_convert(src: &[[u8; 4]], swap: bool) -> Vec<u8> {
    src.iter().flat_map(|w| if swap { [w[3], w[2], w[1], w[0]] } else { *w }).collect()
}

#[test]
fn conversions_copy_every_word_and_report_non_finite_values_at_every_level() {
    let mut rng = Rng(4);
    for n in lengths() {
        let values = rng.vec(n, 1e3);
        let src: Vec<[u8; 4]> = values.iter().map(|v| v.to_be_bytes()).collect();
        for simd in Simd::all_supported() {
            let at = simd.level();
            for swap in [false, true] {
                // A NaN in the written values.
                let mut poisoned = src.clone();
                if n > 0 {
                    let nan = f32::NAN.to_ne_bytes();
                    poisoned[n / 2] = if swap { [nan[3], nan[2], nan[1], nan[0]] } else { nan };
                }
                for (input, finite) in [(&src, true), (&poisoned, n == 0)] {
                    let expected = naive_convert(input, swap);
                    let mut bytes = vec![9u8, 9];
                    let ok = simd.extend_bytes(input, swap, false, &mut bytes);
                    assert_eq!(&bytes[..2], &[9, 9], "what was there stays");
                    assert_eq!(&bytes[2..], &expected[..], "{at} n={n} swap={swap}");
                    let mut floats = vec![1.5f32];
                    let ok_f = simd.extend_f32(input, swap, &mut floats);
                    let as_bytes: Vec<u8> = floats[1..].iter().flat_map(|f| f.to_ne_bytes()).collect();
                    assert_eq!(as_bytes, expected, "{at} n={n} swap={swap}");
                    assert_eq!(floats[0], 1.5);
                    // Swapped big-endian words are the values themselves; unswapped they are arbitrary
                    // bits, some of them not finite. The flag is exact either way.
                    let all_finite =
                        expected.chunks_exact(4).all(|w| f32::from_ne_bytes([w[0], w[1], w[2], w[3]]).is_finite());
                    assert_eq!((ok, ok_f), (all_finite, all_finite), "{at} n={n} swap={swap}");
                    if swap {
                        assert_eq!(all_finite, finite, "{at} n={n}");
                    }
                }
            }
        }
    }
}

#[test]
fn conversions_can_check_the_source_words_instead_of_the_written_ones() {
    for simd in Simd::all_supported() {
        for n in [1, 5, 16, 64, 100, 300] {
            // Values in this machine's order, written reversed: the source words are what is checked.
            let mut src = vec![2.5f32.to_ne_bytes(); n];
            let mut out = Vec::new();
            assert!(simd.extend_bytes(&src, true, true, &mut out), "{} n={n}", simd.level());
            src[n - 1] = f32::INFINITY.to_ne_bytes();
            out.clear();
            assert!(!simd.extend_bytes(&src, true, true, &mut out), "{} n={n}", simd.level());
            assert_eq!(out, naive_convert(&src, true));
        }
    }
}

#[test]
fn conversions_accept_the_largest_finite_values_whose_sum_would_overflow() {
    for simd in Simd::all_supported() {
        for n in [1, 16, 63, 64, 65, 200] {
            let words = vec![f32::MAX.to_ne_bytes(); n];
            let mut out = Vec::new();
            assert!(simd.extend_f32(&words, false, &mut out), "{} n={n}", simd.level());
            let mut bytes = Vec::new();
            assert!(simd.extend_bytes(&words, true, true, &mut bytes), "{} n={n}", simd.level());
            // The smallest non-finite pattern, and a NaN whose exponent bits alone are all ones.
            for bad in [f32::INFINITY.to_bits(), 0xffc0_0001] {
                let mut words = words.clone();
                words[n - 1] = bad.to_ne_bytes();
                out.clear();
                assert!(!simd.extend_f32(&words, false, &mut out), "{} n={n} {bad:#x}", simd.level());
            }
        }
    }
}

#[test]
fn conversions_report_infinities_at_every_position() {
    for simd in Simd::all_supported() {
        for n in [1, 16, 63, 64, 65, 200] {
            for at in [0, n / 2, n - 1] {
                let mut words = vec![1.0f32.to_ne_bytes(); n];
                words[at] = f32::NEG_INFINITY.to_ne_bytes();
                let mut out = Vec::new();
                assert!(!simd.extend_f32(&words, false, &mut out), "{} n={n} at={at}", simd.level());
                assert_eq!(out.len(), n);
            }
        }
    }
}

#[test]
fn matching_keys_sets_the_same_bits_at_every_level() {
    let mut rng = Rng(41);
    for n in [0usize, 1, 3, 4, 5, 63, 64, 65, 100, 255, 256, 300] {
        // Keys drawn from a few values, so that every mask matches some and misses others.
        let values = rng.words(5);
        let keys: Vec<u64> = (0..n).map(|_| values[(rng.next() % 5) as usize]).collect();
        for (key, mask) in
            [(values[0], u64::MAX), (values[1], 0xffff_0000_0000_0000), (values[2], 0), (rng.next(), u64::MAX)]
        {
            for words in [0, n / 64, n.div_ceil(64), n.div_ceil(64) + 1] {
                let mut expected = vec![0u64; words];
                for (i, k) in keys.iter().enumerate().take(64 * words) {
                    expected[i / 64] |= u64::from((k ^ key) & mask == 0) << (i % 64);
                }
                for simd in Simd::all_supported() {
                    let mut out = vec![u64::MAX; words];
                    simd.matching_keys(&keys, key, mask, &mut out);
                    assert_eq!(out, expected, "{} keys, {words} words, mask {mask:x}, {}", n, simd.level());
                }
            }
        }
    }
}

#[test]
fn prefetches_take_any_slice_and_change_nothing() {
    let words: Vec<u64> = (0..1000).collect();
    let floats = vec![1.5f32; 333];
    for simd in Simd::all_supported() {
        // Empty, one element, unaligned starts, lengths not a multiple of a cache line, zero-sized elements.
        simd.prefetch::<u64>(&[]);
        simd.prefetch(&words[..1]);
        simd.prefetch(&words[3..517]);
        simd.prefetch(&floats[1..]);
        simd.prefetch(&[(); 8]);
        simd.prefetch(std::slice::from_ref(&floats[332]));
    }
    assert_eq!(words, (0..1000).collect::<Vec<u64>>());
    assert!(floats.iter().all(|x| *x == 1.5));
}
