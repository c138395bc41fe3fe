//! `marketer-server admin ...`: operator commands that work directly on the
//! database, for the cases the API cannot cover (no account yet, a locked-out
//! owner, tenants provisioned by the operator). Every change is written to the audit log as the system actor
//! `cli`.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use uuid::Uuid;

use crate::auth::password;
use crate::config::Settings;
use crate::domain::{ComplianceMode, Email, Name, Password, Plan, Role, Slug, Tenant, Timestamp, new_id};
use crate::server;
use crate::service::{
    Caller, CreateEnrollmentToken, Principal, RequestMeta, TenantAccess, actions, audit_event,
};
use crate::store::{Actor, NewAuditEvent, NewTenant, NewUser, Outcome, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user account. Prints a generated password unless one is given
    /// on standard input with --password-stdin.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password for an account and end all of its sessions.
    ResetPassword {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it can no longer sign in, its sessions end, and the
    /// API keys it created stop working until it is enabled again.
    DisableUser {
        #[arg(long)]
        email: String,
    },
    /// Erase an account (a person's right to erasure): it is deleted with
    /// everything only theirs; their audit entries stay under a pseudonym;
    /// their API keys are revoked. Refused for an organisation's last owner.
    EraseUser {
        #[arg(long)]
        email: String,
    },
    /// Erase an organisation, in the cloud and on its agents, as an owner
    /// can from Settings: everything of it is deleted, its audit entries
    /// stay under pseudonyms, its agents are told to delete what they hold
    /// and confirm. Prints the erasure's record; follow it with
    /// `tenant-erasure --id`.
    EraseTenant {
        /// The tenant's slug or id.
        #[arg(long)]
        tenant: String,
        /// The tenant's slug again, to confirm.
        #[arg(long)]
        confirm: String,
    },
    /// Show an organisation's erasure: what the control plane deleted and
    /// each agent's confirmation (or why it cannot be told).
    TenantErasure {
        #[arg(long)]
        id: Uuid,
    },
    /// Enable a disabled account again.
    EnableUser {
        #[arg(long)]
        email: String,
    },
    /// Create a tenant owned by an existing account.
    CreateTenant {
        #[arg(long)]
        name: String,
        /// Defaults to one derived from the name.
        #[arg(long)]
        slug: Option<String>,
        /// The e-mail address of the account that becomes its owner.
        #[arg(long)]
        owner_email: String,
    },
    /// Create an agent enrollment token and print the command to run on the
    /// agent host.
    CreateEnrollmentToken {
        /// The tenant's slug or id.
        #[arg(long)]
        tenant: String,
        /// A label every agent enrolled with this token gets (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label_arg)]
        labels: Vec<(String, String)>,
        /// Lifetime in seconds [default: 3600].
        #[arg(long)]
        ttl_seconds: Option<i64>,
        /// How many agents may enroll with it [default: 1].
        #[arg(long)]
        max_uses: Option<i64>,
    },
    /// Apply the organisations' retention policies now, for the UTC day of
    /// --as-of (default: now); each organisation's day runs once.
    ApplyRetention {
        /// The moment to apply them as of (RFC 3339), e.g. to check what a
        /// policy will do, or in tests.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Add an account to a tenant with a role.
    AddMember {
        #[arg(long)]
        email: String,
        /// The tenant's slug or id.
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_label_arg(value: &str) -> Result<(String, String), String> {
    crate::domain::parse_label(value).map_err(|e| e.to_string())
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse().map_err(|_| "must be one of owner, admin, member, viewer".to_owned())
}

fn cli_event(tenant_id: Option<Uuid>, action: &'static str) -> NewAuditEvent {
    audit_event(
        tenant_id,
        Actor::System { name: "cli".into() },
        &RequestMeta::default(),
        action,
        Outcome::Success,
    )
}

fn new_password(from_stdin: bool) -> anyhow::Result<(Password, bool)> {
    if !from_stdin {
        return Ok((Password::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password =
        Password::parse(line.trim_end_matches(['\r', '\n'])).map_err(|e| anyhow::anyhow!("password {e}"))?;
    Ok((password, false))
}

fn parse_email(value: &str) -> anyhow::Result<Email> {
    Email::parse(value).map_err(|e| anyhow::anyhow!("--email {e}"))
}

/// The services as the server assembles them (for commands that act as
/// the API does: enrollment tokens, erasures).
fn runtime(settings: &Settings, shared: &Arc<dyn Store>) -> anyhow::Result<server::Runtime> {
    let secrets = server::Secrets::load(settings)?;
    let ca = server::load_ca(&settings.data_dir, &settings.agents)?;
    server::assemble(
        shared.clone(),
        &settings.data_dir,
        &secrets,
        ca,
        &settings.agents,
        server::EngineSettings {
            jobs: settings.jobs,
            publishing: settings.publishing.clone(),
            mail: settings.mail.clone(),
        },
        settings.agents.listen.port(),
    )
}

/// An erasure's record as the operator reads it.
fn erasure_report(record: &crate::store::TenantErasureRecord) -> String {
    let c = &record.control_plane;
    let mut out = format!(
        "erasure {} of tenant {} at {}: {}\n\
         deleted: {} projects, {} activities, {} documents, {} posts, {} inbox items, {} properties, {} leads, {} memberships; \
         {} audit entries kept under pseudonyms\n",
        record.id,
        record.tenant_id,
        record.erased_at,
        match (record.completed_at, record.files_pending) {
            (Some(at), _) => format!("complete since {at}"),
            (None, true) => "stored files still to delete (retried within the hour)".to_owned(),
            (None, false) => "waiting for agents to confirm".to_owned(),
        },
        c.projects,
        c.activities,
        c.documents,
        c.social_posts,
        c.inbox_items,
        c.properties,
        c.leads,
        c.members,
        c.audit_entries_pseudonymised,
    );
    for agent in &record.agents {
        let state = match (&agent.confirmed_at, &agent.unreachable) {
            (Some(at), _) => format!("confirmed at {at}"),
            (None, Some(why)) => format!("cannot be told ({why}): delete its data directory by hand"),
            (None, None) => "pending: told when it next connects".to_owned(),
        };
        out.push_str(&format!("agent {} ({}): {state}\n", agent.name, agent.agent_id));
    }
    out.trim_end().to_owned()
}

/// Runs one admin command and returns what to print.
pub async fn run(
    settings: &Settings,
    shared: Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<String> {
    let store = shared.as_ref();
    match command {
        AdminCommand::ApplyRetention { as_of } => {
            let as_of = match as_of {
                Some(text) => Timestamp::parse_rfc3339(&text).map_err(|e| {
                    anyhow::anyhow!("--as-of must be an RFC 3339 time like 2027-01-31T00:00:00Z: {e}")
                })?,
                None => Timestamp::now(),
            };
            let done = crate::service::retention::apply_due(store, as_of)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if done.is_empty() {
                return Ok("no retention run was due (no policy, or today's already ran)".into());
            }
            Ok(done
                .iter()
                .map(|(tenant, r)| {
                    format!(
                        "{tenant}: {} inbox items deleted, {} leads deleted, {} contacts anonymised, \
                         {} activities deleted, {} jobs deleted",
                        r.inbox_items_deleted,
                        r.leads_deleted,
                        r.contacts_anonymised,
                        r.activities_deleted,
                        r.jobs_deleted
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        AdminCommand::CreateEnrollmentToken { tenant, labels, ttl_seconds, max_uses } => {
            let tenant = find_tenant(store, &tenant).await?;
            let runtime = runtime(settings, &shared)?;
            let access = TenantAccess {
                caller: Caller { principal: Principal::Operator, meta: RequestMeta::default() },
                tenant_id: tenant.id,
                role: Role::Owner,
            };
            let request =
                CreateEnrollmentToken { labels: labels.into_iter().collect(), ttl_seconds, max_uses };
            let created = runtime
                .app
                .create_enrollment_token(&access, request)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!(
                "enrollment token for {} (expires {}, {} use(s)):\n{}\n\non the agent host, run:\n  {}",
                tenant.slug, created.expires_at, created.max_uses, created.token, created.install_command
            ))
        }
        AdminCommand::EraseTenant { tenant, confirm } => {
            let tenant = find_tenant(store, &tenant).await?;
            if confirm.trim() != tenant.slug.as_str() {
                bail!("--confirm must be the organisation's short name, {}", tenant.slug.as_str());
            }
            let runtime = runtime(settings, &shared)?;
            let record = runtime
                .app
                .erase_tenant_now(
                    &tenant,
                    None,
                    Actor::System { name: "cli".into() },
                    &RequestMeta::default(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(erasure_report(&record))
        }
        AdminCommand::TenantErasure { id } => {
            let record = store
                .tenant_erasure(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no erasure has the id {id}"))?;
            Ok(erasure_report(&record))
        }
        AdminCommand::EraseUser { email } => {
            let email = parse_email(&email)?;
            let report = crate::service::people::erase_by_email(store, &email)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!(
                "erased the account; its audit entries now read {} ({} entries, {} API keys revoked, {} memberships ended)",
                report.pseudonym,
                report.counts.audit_entries_pseudonymised,
                report.counts.api_keys_revoked,
                report.counts.memberships_ended
            ))
        }
        AdminCommand::CreateUser { email, name, password_stdin } => {
            let email = parse_email(&email)?;
            let name = Name::parse(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let (password, generated) = new_password(password_stdin)?;
            let user = NewUser {
                id: new_id(),
                email: email.clone(),
                display_name: name,
                password_hash: password::hash(password.clone()).await?,
            };
            let event = cli_event(None, actions::USER_CREATE).resource("user", user.id);
            match store.create_user(&user, &event).await {
                Ok(created) => {
                    // The operator vouches for the address.
                    store.mark_email_verified(created.id, Timestamp::now()).await?;
                    Ok(match generated {
                        true => format!(
                            "created user {} ({})\npassword: {}",
                            created.email,
                            created.id,
                            password.expose()
                        ),
                        false => format!("created user {} ({})", created.email, created.id),
                    })
                }
                Err(StoreError::Conflict { .. }) => {
                    bail!("an account with the e-mail address {email} already exists")
                }
                Err(e) => Err(e.into()),
            }
        }
        AdminCommand::ResetPassword { email, password_stdin } => {
            let email = parse_email(&email)?;
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no account has the e-mail address {email}"))?;
            let (password, generated) = new_password(password_stdin)?;
            let hash = password::hash(password.clone()).await?;
            let event = cli_event(None, actions::PASSWORD_RESET).resource("user", user.id);
            store.set_password(user.id, &hash, &event).await?;
            Ok(match generated {
                true => format!(
                    "reset the password of {email}; all its sessions ended\npassword: {}",
                    password.expose()
                ),
                false => format!("reset the password of {email}; all its sessions ended"),
            })
        }
        AdminCommand::DisableUser { email } => {
            let email = set_disabled(store, &email, true).await?;
            Ok(format!("disabled {email}; its sessions ended"))
        }
        AdminCommand::EnableUser { email } => {
            let email = set_disabled(store, &email, false).await?;
            Ok(format!("enabled {email}"))
        }
        AdminCommand::CreateTenant { name, slug, owner_email } => {
            let owner_email = parse_email(&owner_email)?;
            let owner = store
                .user_by_email(&owner_email)
                .await?
                .with_context(|| format!("no account has the e-mail address {owner_email}"))?;
            let name = Name::parse(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let slug = match slug {
                Some(slug) => Slug::parse(&slug).map_err(|e| anyhow::anyhow!("--slug {e}"))?,
                None => Slug::from_name(name.as_str()),
            };
            let tenant = NewTenant {
                id: new_id(),
                name,
                slug: slug.clone(),
                plan: Plan::Free,
                compliance_mode: ComplianceMode::Standard,
            };
            let event = cli_event(Some(tenant.id), actions::TENANT_CREATE)
                .resource("tenant", tenant.id)
                .details(serde_json::json!({ "slug": slug, "owner": owner_email }));
            match store.create_tenant(&tenant, owner.id, &event).await {
                Ok(created) => {
                    Ok(format!("created tenant {} ({}) owned by {owner_email}", created.slug, created.id))
                }
                Err(StoreError::Conflict { .. }) => {
                    bail!("the slug {slug} is taken; pass another with --slug")
                }
                Err(e) => Err(e.into()),
            }
        }
        AdminCommand::AddMember { email, tenant, role } => {
            let email = parse_email(&email)?;
            let user = store
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no account has the e-mail address {email}"))?;
            let tenant = find_tenant(store, &tenant).await?;
            let event = cli_event(Some(tenant.id), actions::MEMBER_ADD)
                .resource("user", user.id)
                .details(serde_json::json!({ "role": role }));
            match store.add_member(tenant.id, user.id, role, &event).await {
                Ok(_) => Ok(format!("added {email} to {} as {role}", tenant.slug)),
                Err(StoreError::Conflict { .. }) => bail!("{email} already is a member of {}", tenant.slug),
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn set_disabled(store: &dyn Store, email: &str, disabled: bool) -> anyhow::Result<Email> {
    let email = parse_email(email)?;
    let user = store
        .user_by_email(&email)
        .await?
        .with_context(|| format!("no account has the e-mail address {email}"))?;
    let action = if disabled { actions::USER_DISABLE } else { actions::USER_ENABLE };
    store.set_user_disabled(user.id, disabled, &cli_event(None, action).resource("user", user.id)).await?;
    Ok(email)
}

async fn find_tenant(store: &dyn Store, slug_or_id: &str) -> anyhow::Result<Tenant> {
    let found = match Uuid::parse_str(slug_or_id) {
        Ok(id) => store.tenant(id).await?,
        Err(_) => match Slug::parse(slug_or_id) {
            Ok(slug) => store.tenant_by_slug(&slug).await?,
            Err(_) => None,
        },
    };
    found.with_context(|| format!("no tenant has the slug or id {slug_or_id:?}"))
}
