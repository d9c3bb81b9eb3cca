//! The import report: outcome per project, client counts, and every file skipped or ignored.

use std::fmt;

/// Counts of what one project brought in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub members: usize,
    pub unread: usize,
    pub archived: usize,
    pub resources: usize,
    pub audit_records: usize,
}

/// Outcome of one project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectOutcome {
    Imported(Counts),
    /// A project with this id exists already; it was left as it is.
    AlreadyPresent,
    /// The project was not imported; the reason is among the skipped files.
    Refused,
}

/// A file or folder, relative to the imported folder, with the import's remark about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub text: String,
}

/// The result of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub dry_run: bool,
    pub projects: Vec<(String, ProjectOutcome)>,
    pub clients_imported: usize,
    pub clients_present: usize,
    /// Files that could not be imported, with the reason.
    pub skipped: Vec<Finding>,
    /// Leftovers of the original's normal work (temporary and lock files), not data.
    pub ignored: Vec<Finding>,
    /// Files imported with a change the reader should know about.
    pub notes: Vec<Finding>,
}

impl ImportReport {
    pub(super) fn skip(&mut self, path: &str, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(path, %reason, "import skipped a file");
        self.skipped.push(Finding {
            path: path.to_owned(),
            text: reason,
        });
    }

    pub(super) fn ignore(&mut self, path: &str, why: &str) {
        self.ignored.push(Finding {
            path: path.to_owned(),
            text: why.to_owned(),
        });
    }

    pub(super) fn note(&mut self, path: &str, note: impl Into<String>) {
        self.notes.push(Finding {
            path: path.to_owned(),
            text: note.into(),
        });
    }

    fn count(&self, wanted: fn(&ProjectOutcome) -> bool) -> usize {
        self.projects
            .iter()
            .filter(|(_, outcome)| wanted(outcome))
            .count()
    }

    /// Returns how many projects were imported (or would be, in a dry run).
    pub fn imported(&self) -> usize {
        self.count(|outcome| matches!(outcome, ProjectOutcome::Imported(_)))
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        for (project_id, outcome) in &self.projects {
            match outcome {
                ProjectOutcome::Imported(c) => writeln!(
                    f,
                    "project {project_id}: {verb} {} members, {} unread and {} archived messages, \
                     {} resources, {} audit records",
                    c.members, c.unread, c.archived, c.resources, c.audit_records
                )?,
                ProjectOutcome::AlreadyPresent => {
                    writeln!(f, "project {project_id}: already present, left unchanged")?
                }
                ProjectOutcome::Refused => {
                    writeln!(f, "project {project_id}: not imported (see skipped)")?
                }
            }
        }
        writeln!(
            f,
            "clients: {verb} {}, {} already present",
            self.clients_imported, self.clients_present
        )?;
        for (label, findings) in [
            ("note", &self.notes),
            ("skipped", &self.skipped),
            ("ignored", &self.ignored),
        ] {
            for finding in findings {
                writeln!(f, "{label} {}: {}", finding.path, finding.text)?;
            }
        }
        let done = if self.dry_run {
            "to import"
        } else {
            "imported"
        };
        write!(
            f,
            "summary: projects {done}: {}, already present: {}, not imported: {}; files skipped: \
             {}, ignored: {}",
            self.imported(),
            self.count(|outcome| *outcome == ProjectOutcome::AlreadyPresent),
            self.count(|outcome| *outcome == ProjectOutcome::Refused),
            self.skipped.len(),
            self.ignored.len()
        )
    }
}
