//! The shape of one entry of a generated operation table (AWS Backup's, or AWS Backup
//! Search's: the table is generic over the service's operation enum).

pub use crate::generated::operations::Operation;

/// Where a bound input member travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A `{label}` of the URI path.
    Uri,
    /// A query-string parameter.
    Query,
}

/// The scalar type of a URI or query member, which decides how its text is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    String,
    Integer,
    Long,
    Boolean,
    Timestamp,
    /// A list of strings, sent as the parameter repeated (`?tagKeys=a&tagKeys=b`).
    StringList,
}

/// One input member bound to the URI or the query string.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The member name in the input structure.
    pub member: &'static str,
    /// The label or query-parameter name on the wire.
    pub wire: &'static str,
    pub location: Location,
    pub kind: ScalarKind,
}

/// The HTTP binding of an operation, as the model states it. `O` is the service's operation
/// enum (AWS Backup's by default).
#[derive(Debug)]
pub struct OperationSpec<O: 'static = Operation> {
    pub operation: O,
    pub name: &'static str,
    pub method: &'static str,
    /// The URI template, e.g. `/backup-vaults/{backupVaultName}`; may end in `?literal`.
    pub uri: &'static str,
    pub success_status: u16,
    pub has_input: bool,
    pub bindings: &'static [Binding],
}
