//! An authenticator app's side of two-factor sign-in (RFC 6238, through
//! `totp-rs`): the codes a person would type, and waiting for a fresh
//! 30-second step so a code stays good while a test uses it.

use std::time::Duration;

use totp_rs::Totp;

/// Seconds since the Unix epoch, as the codes count them.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The code `totp` shows `offset` seconds from now (negative: earlier).
pub fn code(totp: &Totp, offset: i64) -> String {
    totp.generate(unix_now().saturating_add_signed(offset)).to_string()
}

/// Waits until at least 12 seconds of the current step remain, so a code
/// (and its reuse) fall in one window.
pub async fn early_in_a_step() {
    let into = unix_now() % 30;
    if into > 18 {
        tokio::time::sleep(Duration::from_secs(30 - into + 1)).await;
    }
}
