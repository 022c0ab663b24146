//! `/api/filters`: the filter registry over HTTP. Reading is open; uploading and deleting
//! need `Authorization: Bearer <token>`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::server::AppState;
use crate::registry::{MAX_UPLOAD_BYTES, RegistryError};
use crate::runtime::RuntimeError;

fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "error": message.to_string(), "kind": kind })),
    )
        .into_response()
}

fn registry_error(e: RegistryError) -> Response {
    let (status, kind) = match &e {
        RegistryError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
        RegistryError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
        RegistryError::InUse { .. } => (StatusCode::CONFLICT, "in-use"),
        RegistryError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
        RegistryError::Invalid(r) => match r {
            RuntimeError::NotWasm { .. } => (StatusCode::BAD_REQUEST, "not-wasm"),
            RuntimeError::CoreModule => (StatusCode::BAD_REQUEST, "core-module"),
            RuntimeError::WrongWorld { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "wrong-world"),
            RuntimeError::UnsupportedImports { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unsupported-imports")
            }
            RuntimeError::Io { .. } | RuntimeError::Engine(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-filter"),
        },
    };
    error(status, kind, e)
}

/// `None` when the request carries the token, else the 401 to send.
fn unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if t == &*state.token => None,
        Some(_) => Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong token",
        )),
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API token as 'Authorization: Bearer <token>'",
        )),
    }
}

/// `GET /api/filters`.
pub async fn list(State(state): State<AppState>) -> Response {
    Json(json!({
        "filters": state.registry.list(),
        "builtin": state.registry.builtin_names(),
    }))
    .into_response()
}

/// `GET /api/filters/{name}`.
pub async fn versions(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let versions = state.registry.versions(&name);
    if versions.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no filter {name}"),
        );
    }
    Json(json!({ "name": name, "versions": versions })).into_response()
}

/// `GET /api/filters/{name}/{version}`.
pub async fn version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match state.registry.manifest(&name, Some(&version)) {
        Some(m) => Json(m).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no filter {name}@{version}"),
        ),
    }
}

/// `POST /api/filters`: the component as the raw body, or as the `file` field of a
/// multipart form.
pub async fn upload(State(state): State<AppState>, request: Request) -> Response {
    // Refuse an oversized upload from its Content-Length, before reading it.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared
        && size > MAX_UPLOAD_BYTES + 64 * 1024
    {
        return registry_error(RegistryError::TooLarge {
            size,
            limit: MAX_UPLOAD_BYTES,
        });
    }
    let headers = request.headers().clone();
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bytes: Bytes = if multipart {
        let mut form = match Multipart::from_request(request, &state).await {
            Ok(f) => f,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad-form", e),
        };
        let mut file = None;
        loop {
            match form.next_field().await {
                Ok(Some(field)) => {
                    let is_file = field.name() == Some("file") || field.file_name().is_some();
                    if is_file {
                        match field.bytes().await {
                            Ok(b) => {
                                file = Some(b);
                                break;
                            }
                            Err(e) => return error(StatusCode::BAD_REQUEST, "bad-form", e),
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return error(e.status(), "bad-form", e.body_text()),
            }
        }
        match file {
            Some(b) => b,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad-form",
                    "the form has no 'file' field",
                );
            }
        }
    } else {
        match Bytes::from_request(request, &state).await {
            Ok(b) => b,
            Err(e) => return error(e.status(), "bad-body", e.body_text()),
        }
    };
    // Authorised only now: answering before the body is read would cut off a client that
    // is still sending it (it sees a broken pipe instead of the 401).
    if let Some(r) = unauthorized(&state, &headers) {
        return r;
    }
    if bytes.is_empty() {
        return error(StatusCode::BAD_REQUEST, "empty", "the upload is empty");
    }
    let registry = state.registry.clone();
    // Compiling takes a while; keep it off the async workers.
    match tokio::task::spawn_blocking(move || registry.upload(&bytes)).await {
        Ok(Ok(manifest)) => (StatusCode::CREATED, Json(manifest)).into_response(),
        Ok(Err(e)) => registry_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

/// `?force=true`.
#[derive(Debug, serde::Deserialize)]
pub struct Force {
    #[serde(default)]
    force: bool,
}

/// `DELETE /api/filters/{name}`: every version.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(force): Query<Force>,
) -> Response {
    remove(&state, &headers, &name, None, force.force)
}

/// `DELETE /api/filters/{name}/{version}`.
pub async fn delete_version(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Query(force): Query<Force>,
) -> Response {
    remove(&state, &headers, &name, Some(&version), force.force)
}

fn remove(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    version: Option<&str>,
    force: bool,
) -> Response {
    if let Some(r) = unauthorized(state, headers) {
        return r;
    }
    match state.registry.delete(name, version, force) {
        Ok(gone) => Json(json!({ "deleted": gone })).into_response(),
        Err(e) => registry_error(e),
    }
}
