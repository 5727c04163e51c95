//! Which operations Coffer implements, read off the code itself.
//!
//! Every operation is called once with an empty input on a throwaway instance; the ones that
//! still answer "not implemented" are not built yet. The README's coverage table is this
//! function's output (a test keeps them in step).

use coffer_api::generated::operations::{Operation, call_with_default_input};
use coffer_api::search::{self, BackupSearchService};
use coffer_api::{BackupService, RequestContext};

/// `(operation, implemented)` for every operation of the model, in name order.
pub async fn probe<S: BackupService + ?Sized>(service: &S) -> Vec<(Operation, bool)> {
    let ctx = RequestContext::new("000000000000", "us-east-1");
    let mut out = Vec::new();
    for op in Operation::ALL {
        let implemented = match call_with_default_input(service, &ctx, *op).await {
            Ok(()) => true,
            Err(e) => !e.is_not_implemented(),
        };
        out.push((*op, implemented));
    }
    out
}

/// The coverage table in Markdown.
pub fn markdown(rows: &[(Operation, bool)]) -> String {
    let named: Vec<(&str, bool)> = rows.iter().map(|(op, i)| (op.name(), *i)).collect();
    table(&named)
}

fn table(rows: &[(&str, bool)]) -> String {
    let done = rows.iter().filter(|(_, i)| *i).count();
    let mut s = if done == rows.len() {
        format!("All {done} operations implemented.\n\n")
    } else {
        format!(
            "{done} of {} operations implemented; the others answer HTTP 501 `NotImplementedException`.\n\n",
            rows.len()
        )
    };
    s.push_str("| Operation | Status |\n|---|---|\n");
    for (name, implemented) in rows {
        s.push_str(&format!(
            "| {} | {} |\n",
            name,
            if *implemented {
                "implemented"
            } else {
                "not yet"
            }
        ));
    }
    s
}

/// `(operation, implemented)` for every operation of AWS Backup Search, in name order.
pub async fn probe_search<S: BackupSearchService + ?Sized>(
    service: &S,
) -> Vec<(search::Operation, bool)> {
    let ctx = RequestContext::new("000000000000", "us-east-1");
    let mut out = Vec::new();
    for op in search::Operation::ALL {
        let implemented = match search::call_with_default_input(service, &ctx, *op).await {
            Ok(()) => true,
            Err(e) => !e.is_not_implemented(),
        };
        out.push((*op, implemented));
    }
    out
}

/// The AWS Backup Search coverage table in Markdown.
pub fn markdown_search(rows: &[(search::Operation, bool)]) -> String {
    let named: Vec<(&str, bool)> = rows.iter().map(|(op, i)| (op.name(), *i)).collect();
    table(&named)
}
