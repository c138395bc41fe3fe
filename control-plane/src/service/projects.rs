//! Projects and campaigns.

use serde::Deserialize;
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess, actions, double_option};
use crate::domain::{
    Campaign, Description, LlmPolicy, LongText, ModelName, Name, Permission, Project, iso_date, new_id,
};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{CampaignPatch, NewCampaign, NewProject, Page, PageRequest, ProjectPatch};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: Name,
    pub description: Option<Description>,
    /// Brand voice guidelines given to the writer and editor.
    pub brand_voice: Option<LongText>,
    /// Defaults to `edge_only`, and must be `edge_only` in a `hipaa` tenant.
    pub llm_policy: Option<LlmPolicy>,
    pub default_model: Option<ModelName>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub name: Option<Name>,
    pub description: Option<Description>,
    pub brand_voice: Option<LongText>,
    pub llm_policy: Option<LlmPolicy>,
    /// `null` clears the default model.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, nullable)]
    pub default_model: Option<Option<ModelName>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    pub name: Name,
    #[serde(default, with = "iso_date::option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub start_date: Option<Date>,
    #[serde(default, with = "iso_date::option")]
    #[schema(value_type = Option<String>, format = Date)]
    pub end_date: Option<Date>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCampaign {
    pub name: Option<Name>,
    /// `null` clears the date.
    #[serde(default, deserialize_with = "double_option_date")]
    #[schema(value_type = Option<String>, format = Date, nullable)]
    pub start_date: Option<Option<Date>>,
    #[serde(default, deserialize_with = "double_option_date")]
    #[schema(value_type = Option<String>, format = Date, nullable)]
    pub end_date: Option<Option<Date>>,
}

fn double_option_date<'de, D>(deserializer: D) -> std::result::Result<Option<Option<Date>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    iso_date::option::deserialize(deserializer).map(Some)
}

impl App {
    pub async fn create_project(&self, access: &TenantAccess, req: CreateProject) -> Result<Project> {
        access.require(Permission::ProjectsCreate)?;
        let project = NewProject {
            id: new_id(),
            tenant_id: access.tenant_id,
            name: req.name,
            description: req.description.unwrap_or_default(),
            brand_voice: req.brand_voice.unwrap_or_default(),
            llm_policy: req.llm_policy.unwrap_or(LlmPolicy::EdgeOnly),
            default_model: req.default_model,
        };
        let audit = access
            .audit(actions::PROJECT_CREATE)
            .resource("project", project.id)
            .details(serde_json::json!({ "name": project.name, "llm_policy": project.llm_policy }));
        Ok(self.store.create_project(&project, &audit).await?)
    }

    pub async fn project(&self, access: &TenantAccess, id: Uuid) -> Result<Project> {
        access.require(Permission::ProjectsRead)?;
        self.store.project(access.tenant_id, id).await.found("project")
    }

    pub async fn projects(&self, access: &TenantAccess, page: PageRequest) -> Result<Page<Project>> {
        access.require(Permission::ProjectsRead)?;
        Ok(self.store.projects(access.tenant_id, page).await?)
    }

    pub async fn update_project(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: UpdateProject,
    ) -> Result<Project> {
        access.require(Permission::ProjectsUpdate)?;
        let audit = access.audit(actions::PROJECT_UPDATE).resource("project", id).details(
            serde_json::json!({ "changed": changed_fields(&[
                ("name", req.name.is_some()),
                ("description", req.description.is_some()),
                ("brand_voice", req.brand_voice.is_some()),
                ("llm_policy", req.llm_policy.is_some()),
                ("default_model", req.default_model.is_some()),
            ]), "llm_policy": req.llm_policy }),
        );
        let patch = ProjectPatch {
            name: req.name,
            description: req.description,
            brand_voice: req.brand_voice,
            llm_policy: req.llm_policy,
            default_model: req.default_model,
        };
        self.store.update_project(access.tenant_id, id, &patch, &audit).await.or_not_found("project")
    }

    pub async fn delete_project(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::ProjectsDelete)?;
        let audit = access.audit(actions::PROJECT_DELETE).resource("project", id);
        self.store.delete_project(access.tenant_id, id, &audit).await.or_not_found("project")
    }

    pub async fn create_campaign(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        req: CreateCampaign,
    ) -> Result<Campaign> {
        access.require(Permission::ProjectsUpdate)?;
        Campaign::check_dates(req.start_date, req.end_date)
            .map_err(|e| Error::invalid("end_date", e.to_string()))?;
        let campaign = NewCampaign {
            id: new_id(),
            tenant_id: access.tenant_id,
            project_id,
            name: req.name,
            start_date: req.start_date,
            end_date: req.end_date,
        };
        let audit = access
            .audit(actions::CAMPAIGN_CREATE)
            .resource("campaign", campaign.id)
            .details(serde_json::json!({ "project_id": project_id, "name": campaign.name }));
        self.store.create_campaign(&campaign, &audit).await.or_not_found("project")
    }

    pub async fn campaign(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<Campaign> {
        access.require(Permission::ProjectsRead)?;
        self.store.campaign(access.tenant_id, project_id, id).await.found("campaign")
    }

    pub async fn campaigns(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<Campaign>> {
        access.require(Permission::ProjectsRead)?;
        // An unknown project is a 404, not an empty list.
        self.store.project(access.tenant_id, project_id).await.found("project")?;
        Ok(self.store.campaigns(access.tenant_id, project_id, page).await?)
    }

    pub async fn update_campaign(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        req: UpdateCampaign,
    ) -> Result<Campaign> {
        access.require(Permission::ProjectsUpdate)?;
        let audit = access
            .audit(actions::CAMPAIGN_UPDATE)
            .resource("campaign", id)
            .details(serde_json::json!({ "project_id": project_id }));
        let patch = CampaignPatch { name: req.name, start_date: req.start_date, end_date: req.end_date };
        self.store
            .update_campaign(access.tenant_id, project_id, id, &patch, &audit)
            .await
            .or_not_found("campaign")
    }

    pub async fn delete_campaign(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<()> {
        access.require(Permission::ProjectsUpdate)?;
        let audit = access
            .audit(actions::CAMPAIGN_DELETE)
            .resource("campaign", id)
            .details(serde_json::json!({ "project_id": project_id }));
        self.store.delete_campaign(access.tenant_id, project_id, id, &audit).await.or_not_found("campaign")
    }
}

fn changed_fields(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields.iter().filter(|(_, changed)| *changed).map(|(name, _)| *name).collect()
}
