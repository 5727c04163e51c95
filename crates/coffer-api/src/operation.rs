//! The shape of one entry of the generated operation table.

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

/// The HTTP binding of an operation, as the model states it.
#[derive(Debug)]
pub struct OperationSpec {
    pub operation: Operation,
    pub name: &'static str,
    pub method: &'static str,
    /// The URI template, e.g. `/backup-vaults/{backupVaultName}`; may end in `?literal`.
    pub uri: &'static str,
    pub success_status: u16,
    pub has_input: bool,
    pub bindings: &'static [Binding],
}
