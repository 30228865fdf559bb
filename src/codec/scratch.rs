//! A per-thread buffer in which encoders prepare a value before handing it to a writer in one
//! `write_all`, so that a growing buffer (Diesel's bind buffer starts empty) allocates once, at the right
//! size.

use std::cell::RefCell;
use std::io;

/// Buffers larger than this are not kept for the next value (a 10 MB bit string should not stay
/// allocated on every thread that once wrote one).
const KEEP_AT_MOST: usize = 256 * 1024;

/// Runs `fill` on an empty buffer and writes what it wrote to `out` in one `write_all`.
pub(super) fn write_all_via<W: io::Write + ?Sized>(out: &mut W, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            fill(&mut buf);
            let result = out.write_all(&buf);
            if buf.capacity() > KEEP_AT_MOST {
                *buf = Vec::new();
            }
            result
        }
        // `out` is itself encoding a value on this thread: use a buffer of its own.
        Err(_) => {
            let mut buf = Vec::new();
            fill(&mut buf);
            out.write_all(&buf)
        }
    })
}
