use ring::rand::{SecureRandom, SystemRandom};

/// Whether `id` is one [`new_event_id`] makes. Ids made before ids were time-ordered (`evt_` and
/// 24 random hex digits) are not.
pub(crate) fn is_time_ordered(id: &str) -> bool {
    id.len() == 36 && id.starts_with("evt_") && id.bytes().skip(4).all(|b| b.is_ascii_hexdigit())
}

/// `evt_` + milliseconds since the epoch (12 hex digits) + 80 random bits: unguessable, and in
/// creation order, so each insert lands at the end of the id index instead of at a random page.
pub fn new_event_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut random = [0u8; 10];
    // The system RNG does not fail on the platforms we build for; if it ever did, the time part
    // and a counter still keep ids unique, which is what the log needs.
    if SystemRandom::new().fill(&mut random).is_err() {
        static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        random[..8].copy_from_slice(&n.to_be_bytes());
    }
    format!("evt_{:012x}{}", millis & 0xffff_ffff_ffff, hex::encode(random))
}
