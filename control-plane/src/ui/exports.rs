//! An organisation's export from the web UI: Settings → Export this
//! organisation (owners) asks for one, follows it live, and downloads it
//! once.

use axum::extract::State;
use axum::response::Response;
use uuid::Uuid;

use super::page::{UiError, see_other};
use super::session::{Path, Submit};
use super::view::{When, bytes};
use crate::api::ApiState;
use crate::store::{ExportState, TenantExport};

/// One export, as Settings shows it.
pub struct ExportRow {
    pub id: Uuid,
    pub asked: When,
    pub status: String,
    /// Until when a ready export can be downloaded.
    pub until: Option<When>,
    pub size: String,
    /// Ready, and asked for by the person looking: they may download it.
    pub downloadable: bool,
}

impl ExportRow {
    pub fn of(export: &TenantExport, viewer: Option<Uuid>) -> Self {
        let status = match export.state {
            ExportState::Queued => "Waiting to start".to_owned(),
            ExportState::Running => {
                format!("Preparing: {}% ({})", export.progress, export.step.replace('_', " "))
            }
            ExportState::Ready => "Ready until".to_owned(),
            ExportState::Failed => "Failed: the server's log says why".to_owned(),
            ExportState::Downloaded => "Downloaded".to_owned(),
            ExportState::Expired => "Expired before it was downloaded".to_owned(),
        };
        Self {
            id: export.id,
            asked: When::of(export.created_at),
            status,
            until: (export.state == ExportState::Ready).then_some(export.expires_at).flatten().map(When::of),
            size: export.size_bytes.map(bytes).unwrap_or_default(),
            downloadable: export.state == ExportState::Ready
                && viewer.is_some()
                && viewer == export.requested_by,
        }
    }
}

/// Asks for an export; the section follows it.
pub async fn create(
    State(state): State<ApiState>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let Submit { page, .. } = submit;
    match state.app.request_tenant_export(&page.access).await {
        Ok(_) | Err(crate::error::Error::Conflict { code: "export_in_progress", .. }) => {
            Ok(see_other(&format!("{}#organisation-export", page.path("/settings"))))
        }
        Err(e) => Err(e.into()),
    }
}

/// The ZIP, once (a form with the CSRF token: a link followed from
/// elsewhere, or prefetched, cannot use the one download up).
pub async fn download(
    State(state): State<ApiState>,
    Path((_, export_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let Submit { page, .. } = submit;
    let (export, file) = state.app.download_tenant_export(&page.access, export_id).await?;
    Ok(crate::api::routes::exports::zip_response(&export, file)?)
}
