//! What the commands print: records, listings, new tokens and the audit trail, as text or
//! JSON, the same for both backends.

use super::*;

pub(super) fn audit_out(entries: &[AuditRecord], json: bool) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        out.line(crate::cli::to_json(&json!({ "entries": entries }))?);
    } else {
        for r in entries {
            let e = &r.entry;
            out.line(format_args!(
                "{:>6}  {}  {:<10}  {:<16}  {}  by {}{}",
                r.seq,
                report::time(&e.at),
                e.action.as_str(),
                report::clean(&e.outcome),
                report::clean(&target(e.target_name.as_deref(), e.target)),
                report::clean(e.actor.as_str()),
                e.from
                    .as_deref()
                    .map(|f| format!(" from {}", report::clean(f)))
                    .unwrap_or_default()
            ));
        }
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn target(name: Option<&str>, id: Option<Uuid>) -> String {
    match (name, id) {
        (Some(name), Some(id)) => format!("{name} ({id})"),
        (Some(name), None) => name.to_owned(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "-".to_owned(),
    }
}

pub(super) fn minted_out(
    issued: &Issued,
    now: DateTime<Utc>,
    what: &str,
    json: bool,
) -> Result<ExitCode, Failure> {
    let record = &issued.record;
    let mut out = Out::default();
    if json {
        out.line(crate::cli::to_json(&json!({
            "token": issued.token.as_str(),
            "record": record.view(now),
        }))?);
    } else {
        out.line(issued.token.as_str());
    }
    out.emit()?;
    eprint_line(format_args!(
        "{what} token {} ({}), version {}, expires {}",
        report::clean(&record.name),
        record.id,
        record.version,
        expiry_text(record.expires_at, now)
    ));
    eprint_line(format_args!(
        "permissions: {}",
        report::clean(&record.permissions.summary())
    ));
    if !record.allowed_cidrs.is_empty() {
        eprint_line(format_args!("networks: {}", record.allowed_cidrs));
    }
    eprint_line(
        "the token is shown only this once and stored nowhere: keep it secret, send it as \
         `Authorization: Bearer <token>`",
    );
    if what == "regenerated" {
        eprint_line("the previous token no longer works: give scripts the new one");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn expiry_text(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| report::time_and_relative(&at, &now),
    )
}

/// A token's last use for `show`: `never`, or the time, how long ago, and from where.
fn last_used_text(record: &TokenRecord, now: DateTime<Utc>) -> String {
    let Some(at) = record.last_used_at else {
        return "never".to_owned();
    };
    let from = record
        .last_used_from
        .as_deref()
        .map(|from| format!(" from {}", report::clean(from)))
        .unwrap_or_default();
    format!("{}{from}", report::time_and_relative(&at, &now))
}

pub(super) fn record_out(
    record: &TokenRecord,
    now: DateTime<Utc>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        out.line(crate::cli::to_json(
            &serde_json::to_value(record.view(now))
                .map_err(|e| Failure::new(format_args!("cannot write JSON: {e}")))?,
        )?);
    } else {
        let status = match record.status(now) {
            Status::Active => "active",
            Status::Expired => "expired",
        };
        out.line(format_args!("id:           {}", record.id));
        out.line(format_args!(
            "name:         {}",
            report::clean(&record.name)
        ));
        let description = match record.description.as_str() {
            "" => "(none)".to_owned(),
            text => report::clean(text),
        };
        out.line(format_args!("description:  {description}"));
        out.line(format_args!("status:       {status}"));
        out.line(format_args!(
            "expires:      {}",
            expiry_text(record.expires_at, now)
        ));
        out.line(format_args!(
            "permissions:  {}",
            report::clean(&record.permissions.summary())
        ));
        out.line(format_args!("networks:     {}", networks_text(record)));
        out.line(format_args!(
            "last used:    {}",
            last_used_text(record, now)
        ));
        out.line(format_args!("version:      {}", record.version));
        out.line(format_args!("revision:     {}", record.revision));
        out.line(format_args!(
            "created:      {} by {}",
            report::time(&record.created_at),
            report::clean(&record.created_by)
        ));
        out.line(format_args!(
            "updated:      {} by {}",
            report::time(&record.updated_at),
            report::clean(&record.updated_by)
        ));
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn list_out(
    records: &[TokenRecord],
    now: DateTime<Utc>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let mut out = Out::default();
    if json {
        let tokens: Vec<_> = records.iter().map(|r| r.view(now)).collect();
        out.line(crate::cli::to_json(
            &serde_json::to_value(json!({ "tokens": tokens }))
                .map_err(|e| Failure::new(format_args!("cannot write JSON: {e}")))?,
        )?);
        out.emit()?;
        return Ok(ExitCode::SUCCESS);
    }
    if records.is_empty() {
        eprint_line("no tokens; create one with `tessera token create`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            let status = match r.status(now) {
                Status::Active => match r.expires_at {
                    Some(at) if at - now < chrono::Duration::days(7) => "expiring",
                    _ => "active",
                },
                Status::Expired => "expired",
            };
            [
                report::clean(&r.name),
                r.id.to_string(),
                status.to_owned(),
                r.expires_at
                    .map_or_else(|| "never".to_owned(), |at| report::time(&at)),
                r.last_used_at
                    .map_or_else(|| "never".to_owned(), |at| report::time(&at)),
                report::clean(&r.permissions.summary()),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "ID",
        "STATUS",
        "EXPIRES",
        "LAST USED",
        "PERMISSIONS",
    ]
    .map(String::from);
    let mut widths = [0; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for [name, id, status, expires, used, perms] in std::iter::once(&header).chain(&rows) {
        out.line(format_args!(
            "{name:<w0$}  {id:<w1$}  {status:<w2$}  {expires:<w3$}  {used:<w4$}  {perms}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        ));
    }
    out.emit()?;
    Ok(ExitCode::SUCCESS)
}

/// Report a refusal by the rules (exit 1): the same lines, and with `--json` the same
/// document, whether the store or the server refused.
pub(super) fn refusal(code: &str, message: &str, json: bool) -> Result<ExitCode, Failure> {
    if json {
        error_json(code, message)?;
    }
    eprint_line(format_args!(
        "refused: {} ({})",
        report::clean(code),
        report::clean(message)
    ));
    match code {
        "conflict" => eprint_line(
            "hint: read the token again (`tessera token show`) and retry with its revision",
        ),
        "forbidden" => eprint_line(format_args!(
            "hint: managing tokens needs a super-admin token in {}",
            remote::TOKEN_VAR
        )),
        _ => {}
    }
    Ok(ExitCode::from(EXIT_REFUSED))
}

/// With `--json`, invalid input (exit 1) gives the document a refusal gives, with the code the
/// API gives it, `invalid_request`.
pub(super) fn invalid_json(message: &str) -> Result<(), Failure> {
    error_json("invalid_request", &report::redact(message))
}

fn error_json(code: &str, message: &str) -> Result<(), Failure> {
    let mut out = Out::default();
    out.line(crate::cli::to_json(&json!({
        "error": {"code": code, "message": message}
    }))?);
    out.emit()
}

/// A token's networks for people: the list, or `anywhere`.
fn networks_text(record: &TokenRecord) -> String {
    if record.allowed_cidrs.is_empty() {
        return "anywhere".to_owned();
    }
    record.allowed_cidrs.to_string().replace(',', ", ")
}
