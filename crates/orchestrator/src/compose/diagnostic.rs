//! What a load reports: a [`Diagnostic`] (file, line, service, severity,
//! message, hint), the [`Checked`] outcome, and the [`Problem`] a parser
//! builds before its line is known.

use std::fmt;
use std::path::PathBuf;

use super::ComposeProject;
use super::locate::Seg;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The project cannot be run as written.
    Error,
    /// It runs, but probably not as intended.
    Warning,
}

/// One problem in a compose file. Displays as
/// `FILE:LINE: service NAME: message` (plus `warning: ` for warnings) and an
/// indented `hint:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not on a line (a missing file).
    pub line: Option<usize>,
    /// 1-based; YAML syntax errors only.
    pub column: Option<usize>,
    pub service: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(service) = &self.service {
            write!(f, "service {service}: ")?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The outcome of [`ComposeProject::check`]: the project when it has no
/// errors, and every diagnostic (errors and warnings) in file order.
#[derive(Debug)]
pub struct Checked {
    pub project: Option<ComposeProject>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// A diagnostic being built: where it is and what it says.
pub(crate) struct Problem {
    pub(crate) path: Vec<Seg>,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Problem {
    pub(crate) fn error(path: impl Into<Vec<Seg>>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            severity: Severity::Error,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn warning(path: impl Into<Vec<Seg>>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(path, message)
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
