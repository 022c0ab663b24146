//! `prism filter check FILE [--json]`: validate a component and print its description.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::RuntimeConfig;
use crate::runtime::{FilterRuntime, LoadedFilter};

/// The report printed for a valid filter.
pub fn report(file: &Path, filter: &LoadedFilter) -> serde_json::Value {
    json!({
        "ok": true,
        "file": file.display().to_string(),
        "sha256": filter.hash,
        "size": filter.size,
        "world": world(filter),
        "filter": filter.info,
        "imports": filter.imports,
        "exports": filter.exports,
    })
}

/// The world a filter targets: `vision-filter` if it uses the vision imports.
fn world(filter: &LoadedFilter) -> &'static str {
    if filter
        .imports
        .iter()
        .any(|i| i.starts_with("prism:filter/vision@"))
    {
        "prism:filter/vision-filter@0.1.0"
    } else {
        "prism:filter/video-filter@0.1.0"
    }
}

pub fn run(file: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let runtime = FilterRuntime::new(RuntimeConfig::default())?;
    match runtime.load_file(file) {
        Ok(filter) => {
            if json_out {
                println!("{}", report(file, &filter));
            } else {
                let info = &filter.info;
                println!(
                    "{}: valid Prism filter ({})",
                    file.display(),
                    world(&filter)
                );
                println!("  name         {}", info.name);
                println!("  version      {}", info.version);
                println!("  description  {}", info.description);
                println!("  format       {}", info.format);
                println!("  parameters   {}", info.parameters_schema);
                println!("  sha256       {}", filter.hash);
                println!("  size         {} bytes", filter.size);
                println!("  imports      {}", filter.imports.join(", "));
                println!("  exports      {}", filter.exports.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json_out {
                println!(
                    "{}",
                    json!({"ok": false, "file": file.display().to_string(), "error": e.to_string()})
                );
            } else {
                eprintln!("error: {}: {e}", file.display());
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
