//! What every report and JSON file starts with: the source the run was built
//! from, the machine and PostgreSQL.

use std::path::Path;

use serde_json::{Value, json};

use crate::machine::Machine;
use crate::setup::Env;

/// The commit the workspace is at, and whether tracked files differ from it
/// (read-only `git` calls; "unknown" without git).
fn source_version() -> (String, bool) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&workspace)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

/// What every report and JSON file starts with: the source, the machine and
/// PostgreSQL.
pub struct Header {
    /// Lines of the human report.
    pub lines: Vec<String>,
    /// `source`, `machine`, `postgresql`.
    pub json: serde_json::Map<String, Value>,
}

impl Header {
    pub fn of(machine: &Machine, env: &Env) -> Self {
        let (commit, dirty) = source_version();
        let settings: Vec<String> =
            env.pg_settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let lines = vec![
            "== Stagepact benchmark ==".to_owned(),
            format!(
                "source: commit {commit}{}",
                if dirty { " with uncommitted changes" } else { "" }
            ),
            format!(
                "machine: {} ({} logical cores), {} MiB RAM, Linux {}",
                machine.cpu_model, machine.cores, machine.memory_mib, machine.kernel
            ),
            format!("PostgreSQL: {}", env.pg_version),
            format!("  private durable cluster, {}", settings.join(", ")),
        ];
        let mut json = serde_json::Map::new();
        json.insert("source".into(), json!({"commit": commit, "uncommitted_changes": dirty}));
        json.insert("machine".into(), machine.to_json());
        let settings: std::collections::BTreeMap<_, _> = env.pg_settings.iter().cloned().collect();
        json.insert("postgresql".into(), json!({"version": env.pg_version, "settings": settings}));
        Self { lines, json }
    }

    /// The header's JSON, the time now, and the members of the object `rest`.
    pub fn figures(&self, rest: Value) -> Value {
        let mut figures = self.json.clone();
        figures.insert("generated_at".into(), json!(chrono::Utc::now().to_rfc3339()));
        if let Value::Object(members) = rest {
            figures.extend(members);
        }
        Value::Object(figures)
    }
}
