//! HTTP handlers, one module per resource. Handlers only translate between
//! HTTP and the services: extract, call, respond.

pub mod ab_tests;
pub mod activities;
pub mod agents;
pub mod analytics;
pub mod api_keys;
pub mod audit_events;
pub mod auth;
pub mod comments;
pub mod documents;
pub mod erasures;
pub mod event_stream;
pub mod exports;
pub mod flyers;
pub mod health;
pub mod inbox;
pub mod jobs;
pub mod leads;
pub mod members;
pub mod notifications;
pub mod people;
pub mod projects;
pub mod properties;
pub mod publishing;
pub mod retention;
pub mod reviews;
pub mod sequences;
pub mod sso;
pub mod tenants;
pub mod two_factor;
pub mod webhooks;

/// Path parameters, named as in the route templates.
pub mod params {
    use serde::Deserialize;
    use uuid::Uuid;

    #[derive(Debug, Deserialize)]
    pub struct ProjectPath {
        pub tenant_id: Uuid,
        pub project_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct CampaignPath {
        pub tenant_id: Uuid,
        pub project_id: Uuid,
        pub campaign_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct MemberPath {
        pub tenant_id: Uuid,
        pub user_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct InvitationPath {
        pub tenant_id: Uuid,
        pub invitation_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct MessagePath {
        pub tenant_id: Uuid,
        pub message_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct AgentPath {
        pub tenant_id: Uuid,
        pub agent_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct EnrollmentTokenPath {
        pub tenant_id: Uuid,
        pub token_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct ActivityPath {
        pub tenant_id: Uuid,
        pub project_id: Uuid,
        pub activity_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct DocumentPath {
        pub tenant_id: Uuid,
        pub project_id: Uuid,
        pub document_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct JobPath {
        pub tenant_id: Uuid,
        pub job_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct PropertyPath {
        pub tenant_id: Uuid,
        pub property_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct PhotoPath {
        pub tenant_id: Uuid,
        pub property_id: Uuid,
        pub photo_id: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct ApiKeyPath {
        pub tenant_id: Uuid,
        pub api_key_id: Uuid,
    }
}
