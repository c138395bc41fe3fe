//! Credentials: password hashing, access tokens (JWT), opaque bearer tokens
//! (refresh tokens, API keys, invitations) and login throttling.

pub mod password;
pub mod throttle;
pub mod tokens;
