//! The one page every CSV import uses (properties, leads): the form with
//! the file and the columns it may have, and the report of what was
//! imported or why nothing was.

use askama::Template;
use axum::response::Response;

use super::page::{FormErrors, Shell, render_form};
use super::properties::Choice;
use crate::service::ImportReport;

#[derive(Template)]
#[template(path = "csv_import.html")]
pub(super) struct ImportPage {
    pub shell: Shell,
    /// "Import properties".
    pub title: &'static str,
    /// The list the import adds to: the crumb, Cancel, and where to look
    /// after.
    pub crumb: &'static str,
    pub cancel: String,
    pub action: String,
    /// The record in the singular and plural: "property", "properties".
    pub one: &'static str,
    pub many: &'static str,
    /// The projects to choose from, when the import goes into one.
    pub projects: Option<Vec<Choice>>,
    pub columns: Vec<(&'static str, bool)>,
    /// How some columns are written.
    pub hint: &'static str,
    pub errors: FormErrors,
    pub report: Option<ImportReport>,
}

impl ImportPage {
    pub fn render(self) -> Response {
        render_form(&self, &self.errors)
    }
}
