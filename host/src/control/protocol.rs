//! Kurento Protocol wire types: JSON-RPC 2.0 envelopes, error codes, event notifications.

use serde_json::{Value, json};

/// JSON-RPC: the text is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: bad parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// Kurento: a value could not be (un)marshalled.
pub const MARSHALL_ERROR: i64 = 40001;
/// Kurento: the session is unknown.
pub const INVALID_SESSION: i64 = 40007;
/// Kurento: a transaction is malformed.
pub const MALFORMED_TRANSACTION: i64 = 40008;
/// Kurento: not enough resources.
pub const NOT_ENOUGH_RESOURCES: i64 = 40009;
/// Kurento: the type is unknown.
pub const MEDIA_OBJECT_TYPE_NOT_FOUND: i64 = 40100;
/// Kurento: no object with that id.
pub const MEDIA_OBJECT_NOT_FOUND: i64 = 40101;
/// Kurento: the object has no such method.
pub const MEDIA_OBJECT_METHOD_NOT_FOUND: i64 = 40105;
/// Kurento: a parameter is not acceptable.
pub const MEDIA_OBJECT_ILLEGAL_PARAM_ERROR: i64 = 40107;
/// Kurento: no factory for that type.
pub const FACTORY_NOT_FOUND: i64 = 40108;
/// Kurento: connecting two elements failed.
pub const CONNECT_ERROR: i64 = 40012;

/// A protocol error: code, message, and the Kurento error type name.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Error code.
    pub code: i64,
    /// Human-readable message.
    pub message: String,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The Kurento error type name for `data.type`.
    pub fn type_name(&self) -> &'static str {
        match self.code {
            PARSE_ERROR => "PARSE_ERROR",
            INVALID_REQUEST => "INVALID_REQUEST",
            METHOD_NOT_FOUND => "METHOD_NOT_FOUND",
            INVALID_PARAMS => "INVALID_PARAMS",
            MARSHALL_ERROR => "MARSHALL_ERROR",
            INVALID_SESSION => "INVALID_SESSION",
            MALFORMED_TRANSACTION => "MALFORMED_TRANSACTION",
            NOT_ENOUGH_RESOURCES => "NOT_ENOUGH_RESOURCES",
            MEDIA_OBJECT_TYPE_NOT_FOUND => "MEDIA_OBJECT_TYPE_NOT_FOUND",
            MEDIA_OBJECT_NOT_FOUND => "MEDIA_OBJECT_NOT_FOUND",
            MEDIA_OBJECT_METHOD_NOT_FOUND => "MEDIA_OBJECT_METHOD_NOT_FOUND",
            MEDIA_OBJECT_ILLEGAL_PARAM_ERROR => "MEDIA_OBJECT_ILLEGAL_PARAM_ERROR",
            FACTORY_NOT_FOUND => "FACTORY_NOT_FOUND",
            CONNECT_ERROR => "CONNECT_ERROR",
            40200..=40299 => "SDP_ERROR",
            40400..=40499 => "ICE_ERROR",
            _ => "UNEXPECTED_ERROR",
        }
    }

    /// The `error` member of a response.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "data": { "type": self.type_name() },
        })
    }
}

/// `invalid params` naming the missing or wrong parameter.
pub fn bad_param(name: &str, what: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("parameter '{name}' {what}"))
}

/// A successful response.
pub fn response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error response.
pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() })
}

/// An `onEvent` notification.
pub fn event_notification(object: &str, event_type: &str, data: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "onEvent",
        "params": { "value": { "object": object, "type": event_type, "data": data } },
    })
}

/// A string parameter.
pub fn str_param<'a>(params: &'a Value, name: &str) -> Result<&'a str, RpcError> {
    params
        .get(name)
        .ok_or_else(|| bad_param(name, "is missing"))?
        .as_str()
        .ok_or_else(|| bad_param(name, "must be a string"))
}

/// An optional string parameter.
pub fn opt_str_param<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_param(name, "must be a string")),
    }
}
