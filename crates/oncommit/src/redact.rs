//! Passwords kept out of every URL oncommit shows or logs.

/// Replaces the passwords of a URL with `***` — in its user info (which may hold an
/// unencoded `/`, `?` or `@`: everything up to the last `@` counts), in query parameters
/// (`?password=`, `?sslpassword=`), and in libpq's `key=value` form — so URLs can be logged
/// and shown in errors. Where it is unsure, it hides more, never less.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_key_values(url);
    };
    let (userinfo, tail) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(info) = userinfo {
        match info.split_once(':') {
            Some((user, _password)) if !user.contains(['/', '?']) => out.push_str(&format!("{user}:***@")),
            // Not a user name: the `@` is past the authority (in a path or a parameter).
            Some(_) => out.push_str("***@"),
            None if info.contains(['/', '?', '=']) => out.push_str("***@"),
            None => out.push_str(&format!("{info}@")),
        }
    }
    let (base, query) = match tail.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (tail, None),
    };
    out.push_str(base);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if is_password_key(key) => format!("{key}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// [`redact`], with the user name hidden too: for a URL that could not be understood.
pub(crate) fn redact_credentials(url: &str) -> String {
    let shown = redact(url);
    match shown.split_once("://") {
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
            None => shown,
        },
        None => shown,
    }
}

/// `reason` (why `url` could not be understood) with every quoted value that also occurs
/// where credentials may be (before the URL's last `@`) replaced by `***`: a misread URL's
/// "invalid port number `p4ss`" may be a piece of its password.
pub(crate) fn scrub(reason: &str, url: &str) -> String {
    let Some(at) = url.rfind('@') else { return reason.to_owned() };
    let credentials = &url[..at];
    let mut out = String::new();
    let mut parts = reason.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('`');
        // Odd pieces sit between backquotes.
        if i % 2 == 0 && !part.is_empty() && credentials.contains(part) {
            out.push_str("***");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn is_password_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sslpassword")
}

/// libpq's `host=h user=u password='s e c'` form: each password's value becomes `***`.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find('=').unwrap_or(rest.len());
        let key = rest[..word_end].trim_end().rsplit(|c: char| c.is_whitespace()).next().unwrap_or_default();
        if word_end == rest.len() || !is_password_key(key.trim()) {
            let upto = (word_end + 1).min(rest.len());
            out.push_str(&rest[..upto]);
            rest = &rest[upto..];
            continue;
        }
        out.push_str(&rest[..=word_end]);
        rest = rest[word_end + 1..].trim_start();
        // The value: quoted (with \' inside), or up to the next whitespace.
        let value_end = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(rest.len(), |(i, _)| i + 2)
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        out.push_str("***");
        rest = &rest[value_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(
            redact("postgres://u@h/db?password=secret&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://u:a@h/db?sslpassword=b"), "postgres://u:***@h/db?sslpassword=***");
        // Unencoded `/`, `?` and `@` in a password.
        assert_eq!(redact("postgres://u:p/w@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u:p?w@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u:p@w@h:1,h2:2/db"), "postgres://u:***@h:1,h2:2/db");
        // libpq's key=value form.
        assert_eq!(redact("host=h user=u password=secret"), "host=h user=u password=***");
        assert_eq!(redact("host=h password = 'se cr\\'et' dbname=d"), "host=h password =*** dbname=d");
        assert_eq!(redact("host=h PASSWORD=x sslpassword=y"), "host=h PASSWORD=*** sslpassword=***");
    }
}
