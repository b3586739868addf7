//! Values given on the command line that clap does not know: limits, rates, periods,
//! points in time, uniqueness. Each refuses a bad value with what to write instead.

/// `--unique`: `args`, `args:KEY,KEY`, `task` or `key:KEY`.
pub(crate) fn parse_unique(text: &str) -> Result<oncommit::Unique, String> {
    match text.split_once(':') {
        None if text == "args" => Ok(oncommit::Unique::by_args()),
        None if text == "task" => Ok(oncommit::Unique::by_task()),
        Some(("args", keys)) if !keys.trim().is_empty() => {
            Ok(oncommit::Unique::by_arg_keys(keys.split(',').map(str::trim).filter(|k| !k.is_empty())))
        }
        Some(("key", key)) if !key.is_empty() => Ok(oncommit::Unique::by_key(key)),
        _ => Err(format!("`{text}`: write args, args:KEY[,KEY…], task or key:KEY")),
    }
}

/// A period on the command line: `500ms`, `30s`, `10m`, `1h`, `1d`.
pub(crate) fn parse_period(text: &str) -> Result<std::time::Duration, String> {
    let usage = || format!("`{text}`: write a period such as 500ms, 30s, 10m, 1h or 1d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| usage())?;
    let ms: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(usage()),
    };
    let period = number.checked_mul(ms).filter(|ms| *ms > 0).ok_or_else(usage)?;
    Ok(std::time::Duration::from_millis(period))
}

/// A point in time on the command line: an age before now (`90s`, `30m`, `12h`, `7d`) or an
/// RFC 3339 time.
pub(crate) fn parse_when(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let usage = || format!("`{text}`: give an age (90s, 30m, 12h, 7d) or an RFC 3339 time (2026-11-24T03:00:00Z)");
    let age = parse_period(text).map_err(|_| usage())?;
    let age = chrono::Duration::from_std(age).map_err(|_| usage())?;
    chrono::Utc::now().checked_sub_signed(age).ok_or_else(usage)
}

/// A concurrency limit on the command line: a number of jobs, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit(pub(crate) Option<u32>);

pub(crate) fn parse_limit(text: &str) -> Result<Limit, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    match text.parse::<u32>() {
        Ok(0) => Err("0 jobs: pause the queue instead, or give at least 1".to_owned()),
        Ok(n) if n > i32::MAX as u32 => Err(format!("at most {}", i32::MAX)),
        Ok(n) => Ok(Limit(Some(n))),
        Err(_) => Err(format!("`{text}` is not a number of jobs (or `none`)")),
    }
}

/// A rate limit on the command line: `N/PERIOD`, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate(pub(crate) Option<oncommit::admin::RateLimit>);

pub(crate) fn parse_rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Rate(None));
    }
    let usage = || format!("`{text}`: write starts per period, as 10/1s, 100/1m, 5/500ms or 1000/1h (or `none`)");
    let (starts, period) = text.split_once('/').ok_or_else(usage)?;
    let starts: u32 = starts.trim().parse().map_err(|_| usage())?;
    let period = period.trim();
    // `10/s` means one second.
    let period =
        if period.starts_with(|c: char| c.is_ascii_digit()) { period.to_owned() } else { format!("1{period}") };
    let limit = oncommit::admin::RateLimit::new(starts, parse_period(&period).map_err(|_| usage())?);
    if starts == 0 || starts > i32::MAX as u32 {
        return Err(format!("`{text}`: at least 1 start per period of at least 1ms"));
    }
    Ok(Rate(Some(limit)))
}
