//! Names of audited actions. They are also the OpenAPI `operationId` of the
//! routes that perform them, so an audit entry and the API operation that
//! caused it share one name, whether the call succeeded or was refused.

pub const LOGIN: &str = "auth.login";
pub const REFRESH: &str = "auth.refresh";
pub const REFRESH_REUSE: &str = "auth.refresh_token_reuse";
pub const LOGOUT: &str = "auth.logout";
pub const PASSWORD_RESET: &str = "user.password_reset";
pub const USER_CREATE: &str = "user.create";
pub const USER_DISABLE: &str = "user.disable";
pub const USER_ENABLE: &str = "user.enable";
pub const USER_TIME_ZONE: &str = "user.set_time_zone";
pub const BOOTSTRAP: &str = "system.bootstrap";

pub const TENANT_CREATE: &str = "tenant.create";
pub const TENANT_UPDATE: &str = "tenant.update";

pub const MEMBER_ADD: &str = "member.add";
pub const MEMBER_UPDATE: &str = "member.update";
pub const MEMBER_REMOVE: &str = "member.remove";
pub const INVITATION_CREATE: &str = "invitation.create";
pub const INVITATION_REVOKE: &str = "invitation.revoke";
pub const INVITATION_ACCEPT: &str = "invitation.accept";
pub const INVITATION_JOIN: &str = "invitation.join";

pub const NOTIFICATION_READ: &str = "notification.mark_read";
pub const NOTIFICATION_PREFERENCES_UPDATE: &str = "notification.update_preferences";
pub const DIGEST_UNSUBSCRIBE: &str = "notification.unsubscribe_digests";
pub const PASSWORD_RESET_REQUEST: &str = "auth.request_password_reset";
pub const PASSWORD_RESET_COMPLETE: &str = "auth.reset_password";
pub const EMAIL_VERIFICATION_SEND: &str = "user.send_verification";
pub const EMAIL_VERIFY: &str = "auth.verify_email";
pub const MAIL_RESEND: &str = "mail.resend";
/// A delivery status notification handed to the bounce intake.
pub const MAIL_BOUNCE_REPORT: &str = "mail.bounce_report";

pub const COMMENT_CREATE: &str = "comment.create";
pub const COMMENT_EDIT: &str = "comment.edit";
pub const COMMENT_DELETE: &str = "comment.delete";
pub const COMMENT_RESOLVE: &str = "comment.resolve";
pub const COMMENT_REOPEN: &str = "comment.reopen";

pub const REVIEW_WORKFLOW_CREATE: &str = "review_workflow.create";
pub const REVIEW_WORKFLOW_UPDATE: &str = "review_workflow.update";
pub const REVIEW_WORKFLOW_DELETE: &str = "review_workflow.delete";
pub const PROJECT_REVIEW_WORKFLOW: &str = "project.set_review_workflow";
pub const REVIEW_DECIDE: &str = "review.decide";
pub const REVIEW_REQUEST: &str = "review.request";
pub const REVIEW_LINK_CREATE: &str = "review_link.create";
pub const REVIEW_LINK_REVOKE: &str = "review_link.revoke";
pub const REVIEW_LINK_OPEN: &str = "review_link.open";
pub const REVIEW_LINK_DECIDE: &str = "review_link.decide";
pub const REVIEW_LINK_COMMENT: &str = "review_link.comment";
pub const POST_REVIEW_DECIDE: &str = "post.review_decide";
pub const POST_REVIEW_REQUEST: &str = "post.review_request";
pub const POST_HOLD: &str = "post.hold";

pub const PROJECT_CREATE: &str = "project.create";
pub const PROJECT_UPDATE: &str = "project.update";
pub const PROJECT_DELETE: &str = "project.delete";
pub const CAMPAIGN_CREATE: &str = "campaign.create";
pub const CAMPAIGN_UPDATE: &str = "campaign.update";
pub const CAMPAIGN_DELETE: &str = "campaign.delete";

pub const API_KEY_CREATE: &str = "api_key.create";
pub const API_KEY_REVOKE: &str = "api_key.revoke";

pub const ENROLLMENT_TOKEN_CREATE: &str = "enrollment_token.create";
pub const ENROLLMENT_TOKEN_REVOKE: &str = "enrollment_token.revoke";
pub const AGENT_ENROLL: &str = "agent.enroll";
pub const AGENT_UPDATE: &str = "agent.update";
pub const AGENT_REVOKE: &str = "agent.revoke";

pub const JOB_CREATE: &str = "job.create";
pub const JOB_CANCEL: &str = "job.cancel";

pub const ACTIVITY_CREATE: &str = "activity.create";
pub const ACTIVITY_CANCEL: &str = "activity.cancel";
pub const ACTIVITY_REGENERATE: &str = "activity.regenerate";
pub const ACTIVITY_EDIT: &str = "activity.edit";
pub const ACTIVITY_APPROVE: &str = "activity.approve";
/// Not a route: the scheduler recording which agent (or the cloud) took a run.
pub const ACTIVITY_ASSIGN: &str = "activity.assign";
pub const CLOUD_PROVIDER_SET: &str = "cloud_provider.set";
pub const DOCUMENT_UPLOAD: &str = "document.upload";
pub const DOCUMENT_DELETE: &str = "document.delete";
/// Not a route: someone read content an edge agent produced for a `hipaa`
/// tenant (every such read is recorded).
pub const CONTENT_READ: &str = "content.read";
pub const CLOUD_PROVIDER_DELETE: &str = "cloud_provider.delete";
pub const MODEL_PRICE_SET: &str = "model_price.set";
pub const MODEL_PRICE_DELETE: &str = "model_price.delete";

pub const SOCIAL_ACCOUNT_CONNECT: &str = "social_account.connect";
pub const SOCIAL_ACCOUNT_CONNECT_BLUESKY: &str = "social_account.connect_bluesky";
pub const SOCIAL_ACCOUNT_UPDATE: &str = "social_account.update";
pub const SOCIAL_ACCOUNT_DISCONNECT: &str = "social_account.disconnect";
/// Not a route: the platform refused the account's credentials for good.
pub const SOCIAL_ACCOUNT_NEEDS_RECONNECT: &str = "social_account.needs_reconnect";
pub const POST_CREATE: &str = "post.create";
pub const AB_TEST_CREATE: &str = "ab_test.create";
pub const INBOX_ITEM_UPDATE: &str = "inbox_item.update";
pub const INBOX_ITEM_LEAD: &str = "inbox_item.lead";
pub const INBOX_ITEM_REPLY: &str = "inbox_item.reply";
pub const INBOX_ITEM_REPLY_DRAFT: &str = "inbox_item.reply_draft";
pub const INBOX_SETTINGS_UPDATE: &str = "inbox_settings.update";
pub const WEBHOOK_CREATE: &str = "webhook.create";
pub const AUDIT_EXPORT: &str = "audit.export";
pub const WEBHOOK_UPDATE: &str = "webhook.update";
pub const WEBHOOK_DELETE: &str = "webhook.delete";
pub const WEBHOOK_ROTATE_SECRET: &str = "webhook.rotate_secret";
pub const WEBHOOK_TEST: &str = "webhook.test";
pub const WEBHOOK_REDELIVER: &str = "webhook.redeliver";
pub const TWO_FACTOR_SETUP: &str = "user.two_factor_setup";
pub const TWO_FACTOR_ENABLE: &str = "user.two_factor_enable";
pub const TWO_FACTOR_DISABLE: &str = "user.two_factor_disable";
pub const RECOVERY_CODES_REGENERATE: &str = "user.recovery_codes_regenerate";
pub const PASSWORD_CHANGE: &str = "user.password_change";
pub const SESSION_REVOKE: &str = "auth.session_revoke";
pub const TENANT_SECURITY_UPDATE: &str = "tenant.security_update";
pub const USER_EXPORT: &str = "user.export";
pub const USER_ERASE: &str = "user.erase";
pub const TENANT_ERASE: &str = "tenant.erase";
pub const TENANT_EXPORT: &str = "tenant.export";
pub const TENANT_EXPORT_DOWNLOAD: &str = "tenant.export_download";
/// Not a route of its own: an erased tenant's agent confirmed it deleted
/// what it held.
pub const TENANT_ERASE_CONFIRMED: &str = "tenant.erase_confirmed";
pub const SSO_CONNECTION_UPDATE: &str = "sso.connection_update";
pub const SSO_CONNECTION_DELETE: &str = "sso.connection_delete";
/// Not a route of its own: a single sign-on created, linked, joined or
/// re-roled a person.
pub const SSO_PROVISION: &str = "sso.provision";
/// Not a route of its own: a sign-in the provider's answer did not allow.
pub const SSO_LOGIN_REFUSED: &str = "sso.login_refused";
pub const RETENTION_POLICY_UPDATE: &str = "retention.update_policy";
pub const DATA_SUBJECT_EXPORT: &str = "data_subject.export";
pub const DATA_SUBJECT_ERASE: &str = "data_subject.erase";
/// Not a route: a day's retention run and what it did.
pub const RETENTION_APPLY: &str = "retention.apply";
pub const LISTENING_QUERY_CREATE: &str = "listening_query.create";
pub const LISTENING_QUERY_DELETE: &str = "listening_query.delete";
/// A test's window ended and the publisher decided it.
pub const AB_TEST_DECIDED: &str = "ab_test.decided";
pub const POST_UPDATE: &str = "post.update";
pub const POST_DELETE: &str = "post.delete";
/// Not routes: the publishing engine's outcomes.
pub const POST_PUBLISHED: &str = "post.published";
pub const POST_FAILED: &str = "post.failed";
pub const POST_UNCONFIRMED: &str = "post.unconfirmed";

pub const PROPERTY_CREATE: &str = "property.create";
pub const PROPERTY_UPDATE: &str = "property.update";
pub const PROPERTY_DELETE: &str = "property.delete";
pub const PROPERTY_IMPORT: &str = "property.import";
pub const PROPERTY_PHOTO_ADD: &str = "property.photo_add";
pub const PROPERTY_PHOTO_UPDATE: &str = "property.photo_update";
pub const PROPERTY_PHOTO_DELETE: &str = "property.photo_delete";
pub const PROPERTY_PUBLISH: &str = "property.publish";
pub const PROPERTY_UNPUBLISH: &str = "property.unpublish";
pub const REAL_ESTATE_SETTINGS_UPDATE: &str = "real_estate_settings.update";
pub const REAL_ESTATE_LOGO_SET: &str = "real_estate_settings.logo_set";
pub const REAL_ESTATE_LOGO_DELETE: &str = "real_estate_settings.logo_delete";
/// Not a mutation: a flyer made although the Fair Housing rules found
/// something in its text (the findings are in the event's details).
pub const FLYER_FINDINGS_ACKNOWLEDGED: &str = "flyer.findings_acknowledged";
/// Not a route of the API: someone sent a public listing page's form.
pub const LEAD_FORM_SUBMIT: &str = "lead.form_submit";
/// Not a mutation: leads (personal data) read in bulk.
pub const LEAD_LIST: &str = "lead.list";
pub const LEAD_CREATE: &str = "lead.create";
pub const LEAD_IMPORT: &str = "lead.import";
pub const LEAD_UPDATE: &str = "lead.update";
pub const LEAD_SEQUENCE_START: &str = "lead.sequence_start";
pub const LEAD_SEQUENCE_STOP: &str = "lead.sequence_stop";
/// A follow-up e-mail drafted for review, sent or skipped (`details.decision`).
pub const LEAD_FOLLOW_UP_DECIDE: &str = "lead.follow_up_decide";
/// Not a route of the API: someone used an unsubscribe link.
pub const LEAD_UNSUBSCRIBE: &str = "lead.unsubscribe";
pub const LEAD_SCORING_FIT: &str = "lead_scoring.fit";
pub const LEAD_SCORING_RESET: &str = "lead_scoring.reset";
pub const SEQUENCE_CREATE: &str = "sequence.create";
pub const SEQUENCE_UPDATE: &str = "sequence.update";
pub const SEQUENCE_DELETE: &str = "sequence.delete";

/// Every action above, for looking up an action by its `operationId`.
pub const ALL: &[&str] = &[
    LOGIN,
    REFRESH,
    REFRESH_REUSE,
    LOGOUT,
    PASSWORD_RESET,
    USER_CREATE,
    USER_DISABLE,
    USER_ENABLE,
    USER_TIME_ZONE,
    BOOTSTRAP,
    TENANT_CREATE,
    TENANT_UPDATE,
    MEMBER_ADD,
    MEMBER_UPDATE,
    MEMBER_REMOVE,
    INVITATION_CREATE,
    INVITATION_REVOKE,
    INVITATION_ACCEPT,
    INVITATION_JOIN,
    NOTIFICATION_READ,
    NOTIFICATION_PREFERENCES_UPDATE,
    DIGEST_UNSUBSCRIBE,
    PASSWORD_RESET_REQUEST,
    PASSWORD_RESET_COMPLETE,
    EMAIL_VERIFICATION_SEND,
    EMAIL_VERIFY,
    MAIL_RESEND,
    MAIL_BOUNCE_REPORT,
    COMMENT_CREATE,
    COMMENT_EDIT,
    COMMENT_DELETE,
    COMMENT_RESOLVE,
    COMMENT_REOPEN,
    REVIEW_WORKFLOW_CREATE,
    REVIEW_WORKFLOW_UPDATE,
    REVIEW_WORKFLOW_DELETE,
    PROJECT_REVIEW_WORKFLOW,
    REVIEW_DECIDE,
    REVIEW_REQUEST,
    REVIEW_LINK_CREATE,
    REVIEW_LINK_REVOKE,
    REVIEW_LINK_OPEN,
    REVIEW_LINK_DECIDE,
    REVIEW_LINK_COMMENT,
    POST_REVIEW_DECIDE,
    POST_REVIEW_REQUEST,
    POST_HOLD,
    PROJECT_CREATE,
    PROJECT_UPDATE,
    PROJECT_DELETE,
    CAMPAIGN_CREATE,
    CAMPAIGN_UPDATE,
    CAMPAIGN_DELETE,
    API_KEY_CREATE,
    API_KEY_REVOKE,
    ENROLLMENT_TOKEN_CREATE,
    ENROLLMENT_TOKEN_REVOKE,
    AGENT_ENROLL,
    AGENT_UPDATE,
    AGENT_REVOKE,
    JOB_CREATE,
    JOB_CANCEL,
    ACTIVITY_CREATE,
    ACTIVITY_CANCEL,
    ACTIVITY_REGENERATE,
    ACTIVITY_EDIT,
    ACTIVITY_APPROVE,
    CLOUD_PROVIDER_SET,
    CLOUD_PROVIDER_DELETE,
    MODEL_PRICE_SET,
    MODEL_PRICE_DELETE,
    DOCUMENT_UPLOAD,
    DOCUMENT_DELETE,
    SOCIAL_ACCOUNT_CONNECT,
    SOCIAL_ACCOUNT_CONNECT_BLUESKY,
    SOCIAL_ACCOUNT_UPDATE,
    SOCIAL_ACCOUNT_DISCONNECT,
    POST_CREATE,
    AB_TEST_CREATE,
    AB_TEST_DECIDED,
    INBOX_ITEM_UPDATE,
    INBOX_ITEM_LEAD,
    INBOX_ITEM_REPLY,
    INBOX_ITEM_REPLY_DRAFT,
    INBOX_SETTINGS_UPDATE,
    WEBHOOK_CREATE,
    AUDIT_EXPORT,
    WEBHOOK_UPDATE,
    WEBHOOK_DELETE,
    WEBHOOK_ROTATE_SECRET,
    WEBHOOK_TEST,
    WEBHOOK_REDELIVER,
    TWO_FACTOR_SETUP,
    TWO_FACTOR_ENABLE,
    TWO_FACTOR_DISABLE,
    RECOVERY_CODES_REGENERATE,
    PASSWORD_CHANGE,
    SESSION_REVOKE,
    TENANT_SECURITY_UPDATE,
    USER_EXPORT,
    USER_ERASE,
    TENANT_ERASE,
    TENANT_EXPORT,
    TENANT_EXPORT_DOWNLOAD,
    TENANT_ERASE_CONFIRMED,
    SSO_CONNECTION_UPDATE,
    SSO_CONNECTION_DELETE,
    SSO_PROVISION,
    SSO_LOGIN_REFUSED,
    RETENTION_POLICY_UPDATE,
    DATA_SUBJECT_EXPORT,
    DATA_SUBJECT_ERASE,
    RETENTION_APPLY,
    LISTENING_QUERY_CREATE,
    LISTENING_QUERY_DELETE,
    POST_UPDATE,
    POST_DELETE,
    PROPERTY_CREATE,
    PROPERTY_UPDATE,
    PROPERTY_DELETE,
    PROPERTY_IMPORT,
    PROPERTY_PHOTO_ADD,
    PROPERTY_PHOTO_UPDATE,
    PROPERTY_PHOTO_DELETE,
    PROPERTY_PUBLISH,
    REAL_ESTATE_SETTINGS_UPDATE,
    REAL_ESTATE_LOGO_SET,
    REAL_ESTATE_LOGO_DELETE,
    FLYER_FINDINGS_ACKNOWLEDGED,
    LEAD_CREATE,
    LEAD_IMPORT,
    LEAD_UPDATE,
    LEAD_SEQUENCE_START,
    LEAD_SEQUENCE_STOP,
    LEAD_FOLLOW_UP_DECIDE,
    LEAD_UNSUBSCRIBE,
    LEAD_SCORING_FIT,
    LEAD_SCORING_RESET,
    SEQUENCE_CREATE,
    SEQUENCE_UPDATE,
    SEQUENCE_DELETE,
];
