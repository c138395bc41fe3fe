//! Roles and the permission matrix (seed 004, section 6.1, plus
//! `agents:manage` and `audit:read`, and `tenant:manage` for the tenant's own
//! settings, which the seed leaves to owners implicitly).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's role in a tenant. Roles are totally ordered by privilege:
/// `viewer < member < admin < owner`, and every role holds a superset of the
/// permissions of the roles below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

/// Something a caller may be allowed to do inside a tenant. On the wire it is
/// the `area:verb` string, for example `projects:create`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Permission {
    #[strum(serialize = "projects:create")]
    ProjectsCreate,
    #[strum(serialize = "projects:read")]
    ProjectsRead,
    #[strum(serialize = "projects:update")]
    ProjectsUpdate,
    #[strum(serialize = "projects:delete")]
    ProjectsDelete,
    #[strum(serialize = "activities:create")]
    ActivitiesCreate,
    #[strum(serialize = "activities:read")]
    ActivitiesRead,
    #[strum(serialize = "activities:update")]
    ActivitiesUpdate,
    #[strum(serialize = "activities:delete")]
    ActivitiesDelete,
    #[strum(serialize = "documents:upload")]
    DocumentsUpload,
    #[strum(serialize = "documents:read")]
    DocumentsRead,
    #[strum(serialize = "documents:delete")]
    DocumentsDelete,
    #[strum(serialize = "team:invite")]
    TeamInvite,
    #[strum(serialize = "team:remove")]
    TeamRemove,
    #[strum(serialize = "team:manage_roles")]
    TeamManageRoles,
    #[strum(serialize = "billing:view")]
    BillingView,
    #[strum(serialize = "billing:manage")]
    BillingManage,
    #[strum(serialize = "settings:view")]
    SettingsView,
    #[strum(serialize = "settings:manage")]
    SettingsManage,
    #[strum(serialize = "agents:manage")]
    AgentsManage,
    #[strum(serialize = "audit:read")]
    AuditRead,
    #[strum(serialize = "tenant:manage")]
    TenantManage,
    #[strum(serialize = "accounts:read")]
    AccountsRead,
    #[strum(serialize = "accounts:manage")]
    AccountsManage,
    #[strum(serialize = "posts:read")]
    PostsRead,
    /// Write, schedule and approve posts.
    #[strum(serialize = "posts:write")]
    PostsWrite,
    /// Comment on what one can read (viewers too: a client or a
    /// compliance officer takes part in the discussion).
    #[strum(serialize = "comments:write")]
    CommentsWrite,
    /// Read the engagement inbox (what the public wrote to the brand).
    #[strum(serialize = "inbox:read")]
    InboxRead,
    /// Work the inbox: mark items done, assign them.
    #[strum(serialize = "inbox:work")]
    InboxWork,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl TryFrom<String> for Permission {
    type Error = strum::ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The permission matrix: whether this role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self >= permission.least_role()
    }
}

impl Permission {
    /// The least role that has this permission. Written as one exhaustive
    /// match so that adding a permission forces a decision for it here.
    pub fn least_role(self) -> Role {
        use Permission::*;
        match self {
            ProjectsRead | ActivitiesRead | DocumentsRead | AccountsRead | PostsRead | CommentsWrite => {
                Role::Viewer
            }
            ProjectsUpdate | ActivitiesCreate | ActivitiesUpdate | DocumentsUpload | SettingsView
            | PostsWrite | InboxRead | InboxWork => Role::Member,
            ProjectsCreate | ProjectsDelete | ActivitiesDelete | DocumentsDelete | TeamInvite
            | TeamRemove | SettingsManage | AgentsManage | AuditRead | AccountsManage => Role::Admin,
            TeamManageRoles | BillingView | BillingManage | TenantManage => Role::Owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn higher_roles_hold_every_permission_of_lower_roles() {
        for p in Permission::iter() {
            let holders: Vec<Role> = Role::iter().filter(|r| r.allows(p)).collect();
            assert!(holders.contains(&Role::Owner), "owner must hold {p}");
            for r in Role::iter() {
                if r.allows(p) {
                    assert!(Role::iter().filter(|h| *h > r).all(|h| h.allows(p)));
                }
            }
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for p in Permission::iter() {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
    }
}
