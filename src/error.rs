//! Error codes and the service error that carries them to the MCP layer.

use serde_json::{Map, Value};

use crate::storage::StorageError;

/// Stable error codes that clients match on. Never reuse a code for a different meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    SessionNotInitialized,
    InvalidWorkingDirectory,
    InvalidIdFormat,
    InvalidIdLength,
    InvalidParameter,
    ProjectNotFound,
    ProjectExists,
    MemberNotFound,
    SenderNotFound,
    RecipientNotFound,
    FromAgentNotFound,
    ToAgentNotFound,
    AgentNameTaken,
    ClientAlreadyMember,
    NotCoordinator,
    AlreadyCoordinator,
    HandoffAuthorityError,
    HandoffReplyExpectedRequired,
    ReplyExpectedRequired,
    InvalidMessageTarget,
    ResourceNotFound,
    ResourceExists,
    EtagMismatch,
    EtagRequired,
    ReadPermissionDenied,
    WritePermissionDenied,
    DeletePermissionDenied,
    ArchivePermissionDenied,
    NoCreatorDefined,
    ConflictingParameters,
    ResourceTooLarge,
    InvalidJson,
    JsonTooDeep,
    UnsafePath,
    PathOutsideHome,
    FileNotAccessible,
    NotAFile,
    FileTooLarge,
    TooManyWaiters,
    InboxFull,
    CallInterrupted,
    WrongResourceKind,
    VersionNotFound,
    InvalidOperation,
    PatchTestFailed,
    PatchFailed,
    NotANumber,
    OwnerUnavailable,
    InternalError,
}

impl ErrorCode {
    /// Returns the code as clients see it.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            SessionNotInitialized => "SESSION_NOT_INITIALIZED",
            InvalidWorkingDirectory => "INVALID_WORKING_DIRECTORY",
            InvalidIdFormat => "INVALID_ID_FORMAT",
            InvalidIdLength => "INVALID_ID_LENGTH",
            InvalidParameter => "INVALID_PARAMETER",
            ProjectNotFound => "PROJECT_NOT_FOUND",
            ProjectExists => "PROJECT_EXISTS",
            MemberNotFound => "MEMBER_NOT_FOUND",
            SenderNotFound => "SENDER_NOT_FOUND",
            RecipientNotFound => "RECIPIENT_NOT_FOUND",
            FromAgentNotFound => "FROM_AGENT_NOT_FOUND",
            ToAgentNotFound => "TO_AGENT_NOT_FOUND",
            AgentNameTaken => "AGENT_NAME_TAKEN",
            ClientAlreadyMember => "CLIENT_ALREADY_MEMBER",
            NotCoordinator => "NOT_COORDINATOR",
            AlreadyCoordinator => "ALREADY_COORDINATOR",
            HandoffAuthorityError => "HANDOFF_AUTHORITY_ERROR",
            HandoffReplyExpectedRequired => "HANDOFF_REPLY_EXPECTED_REQUIRED",
            ReplyExpectedRequired => "REPLY_EXPECTED_REQUIRED",
            InvalidMessageTarget => "INVALID_MESSAGE_TARGET",
            ResourceNotFound => "RESOURCE_NOT_FOUND",
            ResourceExists => "RESOURCE_EXISTS",
            EtagMismatch => "ETAG_MISMATCH",
            EtagRequired => "ETAG_REQUIRED",
            ReadPermissionDenied => "READ_PERMISSION_DENIED",
            WritePermissionDenied => "WRITE_PERMISSION_DENIED",
            DeletePermissionDenied => "DELETE_PERMISSION_DENIED",
            ArchivePermissionDenied => "ARCHIVE_PERMISSION_DENIED",
            NoCreatorDefined => "NO_CREATOR_DEFINED",
            ConflictingParameters => "CONFLICTING_PARAMETERS",
            ResourceTooLarge => "RESOURCE_TOO_LARGE",
            InvalidJson => "INVALID_JSON",
            JsonTooDeep => "JSON_TOO_DEEP",
            UnsafePath => "UNSAFE_PATH",
            PathOutsideHome => "PATH_OUTSIDE_HOME",
            FileNotAccessible => "FILE_NOT_ACCESSIBLE",
            NotAFile => "NOT_A_FILE",
            FileTooLarge => "FILE_TOO_LARGE",
            TooManyWaiters => "TOO_MANY_WAITERS",
            InboxFull => "INBOX_FULL",
            CallInterrupted => "CALL_INTERRUPTED",
            WrongResourceKind => "WRONG_RESOURCE_KIND",
            VersionNotFound => "VERSION_NOT_FOUND",
            InvalidOperation => "INVALID_OPERATION",
            PatchTestFailed => "PATCH_TEST_FAILED",
            PatchFailed => "PATCH_FAILED",
            NotANumber => "NOT_A_NUMBER",
            OwnerUnavailable => "OWNER_UNAVAILABLE",
            InternalError => "INTERNAL_ERROR",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed service call: a stable code, a message for the agent, and structured details.
///
/// Internal failures keep their cause in `internal`, which is logged and never sent to clients.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
    pub internal: Option<String>,
}

impl ServiceError {
    /// Creates an error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
            details: Map::new(),
            internal: None,
        }
    }

    /// Adds one entry to `details`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Creates an `INTERNAL_ERROR` whose cause is kept for the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ServiceError {
            code: ErrorCode::InternalError,
            message: "internal error; the server log has the cause".to_owned(),
            details: Map::new(),
            internal: Some(cause.to_string()),
        }
    }

    /// Creates an `INVALID_PARAMETER` error naming the argument.
    pub fn invalid_parameter(argument: &str, message: impl Into<String>) -> Self {
        ServiceError::new(ErrorCode::InvalidParameter, message).with("argument", argument)
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

impl From<StorageError> for ServiceError {
    fn from(err: StorageError) -> Self {
        ServiceError::internal(err)
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;
