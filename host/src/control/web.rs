//! The browser demo (`web/`, embedded in the binary so `prism serve` needs no files beside
//! it) and the pipeline graph as SVG (GStreamer's DOT through Graphviz's `dot`).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::server::AppState;

const INDEX: &str = include_str!("../../../web/index.html");
const APP: &str = include_str!("../../../web/app.js");
const KURENTO: &str = include_str!("../../../web/kurento.js");
const STYLE: &str = include_str!("../../../web/style.css");

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /app.js`.
pub async fn app() -> Response {
    page("text/javascript; charset=utf-8", APP)
}

/// `GET /kurento.js`.
pub async fn kurento() -> Response {
    page("text/javascript; charset=utf-8", KURENTO)
}

/// `GET /style.css`.
pub async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

/// `GET /api/pipelines/{id}/graph.svg`: the pipeline's GStreamer graph drawn by Graphviz.
pub async fn graph_svg(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(pipeline) = state.kurento.pipeline(&id) else {
        return (StatusCode::NOT_FOUND, format!("no pipeline {id}")).into_response();
    };
    let dot = pipeline.gstreamer_dot();
    let rendered = tokio::task::spawn_blocking(move || render_svg(&dot)).await;
    match rendered {
        Ok(Ok(svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn render_svg(dot: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("Graphviz 'dot' is not available: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("dot could not draw the graph".into());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
