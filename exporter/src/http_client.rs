//! The outgoing HTTP client (reqwest over rustls with the ring provider and the system's
//! certificate store), for range fetches and `egressor top`.

use std::time::Duration;

/// A client with `timeout` for a whole request (connect, headers and body).
///
/// # Errors
/// reqwest's error if the TLS backend cannot be set up.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // Installing twice is harmless: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("egressor/", env!("CARGO_PKG_VERSION")))
        .build()
}
