//! Numeric codes shared with the Python side (catalog columns, analysis results, constraints).
//!
//! They are part of the wire contract with `python/gateway`: values never change meaning.

/// The request needs function/tool calling.
pub const CAP_TOOLS: u32 = 1 << 0;
/// The request contains image parts.
pub const CAP_VISION: u32 = 1 << 1;
/// `response_format: {"type": "json_object"}`.
pub const CAP_JSON_OBJECT: u32 = 1 << 2;
/// `response_format: {"type": "json_schema", ...}`.
pub const CAP_JSON_SCHEMA: u32 = 1 << 3;
/// The request contains `input_audio` parts.
pub const CAP_AUDIO: u32 = 1 << 4;
/// Extended thinking / reasoning was asked for.
pub const CAP_REASONING: u32 = 1 << 5;
/// The deployment serves embeddings.
pub const CAP_EMBEDDINGS: u32 = 1 << 6;

/// Any key source is acceptable.
pub const KEY_SOURCE_ANY: u8 = 0;
/// The gateway's own (platform) provider keys.
pub const KEY_SOURCE_PLATFORM: u8 = 1;
/// The workspace's own provider keys (bring your own key).
pub const KEY_SOURCE_BYOK: u8 = 2;

/// The provider may train on or retain data.
pub const DATA_POLICY_NONE: u8 = 0;
/// The provider does not train on data.
pub const DATA_POLICY_NO_TRAINING: u8 = 1;
/// Zero data retention.
pub const DATA_POLICY_ZDR: u8 = 2;

/// Hard constraints in the order they are applied; the first ten are static (policy), the last
/// four depend on live health. Reported by name in `RouteResult::emptied_by`, so the order is
/// chosen for the report: who may serve at all (model, provider with credentials, key source)
/// comes first, so that a request needing vision is told "capabilities", not "provider".
pub const CONSTRAINT_NAMES: [&str; 14] = [
    "model",
    "provider",
    "key_source",
    "capabilities",
    "context_window",
    "max_output",
    "region",
    "data_policy",
    "price",
    "quality_floor",
    "ttft",
    "throughput",
    "success_rate",
    "circuit",
];

/// Index of the first health/latency constraint in [`CONSTRAINT_NAMES`].
pub const FIRST_HEALTH_CONSTRAINT: usize = 10;
