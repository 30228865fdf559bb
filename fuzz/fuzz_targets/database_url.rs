#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|url: &str| {
    let _ = diesel_vector::database::BackendKind::from_url(url);
    let _ = diesel_vector::database::sqlite_read_only_uri(url);
});
