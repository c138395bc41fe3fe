//! The control plane's vocabulary: tenants, users, roles, projects and the
//! value types that can only be constructed valid ("parse, don't validate").
//!
//! Nothing here knows about HTTP or SQL; the store persists these types and the
//! API layer (de)serialises them.

mod labels;
mod names;
mod project;
mod role;
mod tenant;
mod timestamp;
mod user;

pub use labels::{MAX_LABELS, check_labels, parse_label};
pub use names::{Description, LongText, Name, ParseError};
pub use project::{Campaign, LlmPolicy, ModelName, Project};
pub use role::{Permission, Role};
pub use tenant::{ComplianceMode, Plan, Slug, Tenant};
pub use timestamp::Timestamp;
pub use user::{Email, Password, User};

/// A new, time-ordered identifier (UUIDv7). Every row the control plane creates
/// gets one, so primary keys sort by creation time and pagination by id is
/// chronological.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

// Calendar dates (campaign start and end) travel as `YYYY-MM-DD`.
time::serde::format_description!(pub iso_date, Date, "[year]-[month]-[day]");
