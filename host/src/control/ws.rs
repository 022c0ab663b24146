//! The WebSocket edge of the Kurento protocol (`ws://HOST:PORT/kurento`): text frames in,
//! responses and `onEvent` notifications out. All protocol logic is in [`super::kurento`].

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::kurento::{KurentoServer, MAX_MESSAGE_BYTES};
use super::protocol::{PARSE_ERROR, RpcError, error_response};

/// `GET /kurento`: upgrades to a protocol connection.
pub async fn upgrade(State(server): State<KurentoServer>, ws: WebSocketUpgrade) -> Response {
    // Frames a little over the protocol limit still arrive, so the client gets a JSON-RPC
    // error naming the limit rather than a dropped connection.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| serve(server, socket))
}

async fn serve(server: KurentoServer, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut conn = server.connection(tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => {
                if let Some(reply) = server.handle_text(&mut conn, text.as_str()).await {
                    let _ = tx.send(reply);
                }
            }
            // kurento-client (websocket-stream) sends its JSON in binary frames.
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    if let Some(reply) = server.handle_text(&mut conn, text).await {
                        let _ = tx.send(reply);
                    }
                }
                Err(_) => {
                    let e = RpcError::new(PARSE_ERROR, "a binary frame that is not UTF-8 JSON");
                    let _ = tx.send(error_response(&serde_json::Value::Null, &e).to_string());
                }
            },
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    server.disconnected(&conn);
    drop(conn);
    drop(tx);
    let _ = writer.await;
}
