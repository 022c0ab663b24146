//! `prism filter upload` and `prism filter ls`: clients of a running server's `/api/filters`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Uploads `file`; prints the stored manifest.
pub fn upload(file: &Path, server: &str, token: Option<String>) -> anyhow::Result<ExitCode> {
    let token = token
        .or_else(|| std::env::var("PRISM_TOKEN").ok())
        .context("no API token: pass --token or set PRISM_TOKEN")?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let url = format!("{}/api/filters", server.trim_end_matches('/'));
    let response = agent()
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/wasm")
        .send(&bytes[..])
        .with_context(|| format!("cannot reach {url}"))?;
    let (status, body) = reply(response)?;
    if status != 201 {
        bail!(
            "{} refused {} ({status}): {}",
            server,
            file.display(),
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    println!(
        "uploaded {}@{} ({} bytes, {}, sha256 {})",
        body["name"].as_str().unwrap_or("?"),
        body["version"].as_str().unwrap_or("?"),
        body["size"],
        body["format"].as_str().unwrap_or("?"),
        body["hash"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists the server's filters.
pub fn list(server: &str, json: bool) -> anyhow::Result<ExitCode> {
    let url = format!("{}/api/filters", server.trim_end_matches('/'));
    let response = agent()
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let (status, body) = reply(response)?;
    if status != 200 {
        bail!("{url} answered {status}");
    }
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    for m in body["filters"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<10} {:<6} {}",
            m["name"].as_str().unwrap_or("?"),
            m["version"].as_str().unwrap_or("?"),
            m["format"].as_str().unwrap_or("?"),
            m["description"].as_str().unwrap_or(""),
        );
    }
    for name in body["builtin"].as_array().into_iter().flatten() {
        println!("{:<24} (built in)", name.as_str().unwrap_or("?"));
    }
    Ok(ExitCode::SUCCESS)
}
