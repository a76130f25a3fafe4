//! Showing configured URLs without their secrets: every log line, error, listing and console
//! view that names a webhook endpoint or a Redis server goes through [`mask_url`].

/// What stands in for a hidden value.
pub const MASK: &str = "***";

/// The URL with the password of its userinfo and every query and fragment value replaced by
/// `***`: `http://ops:pw@host/hook?token=t&v=2` → `http://ops:***@host/hook?token=***&v=***`.
///
/// The user name stays (it tells an operator which ACL user is meant). The rule is textual, so
/// it also covers forms a URL parser refuses, such as the comma-separated hosts of
/// `redis+sentinel://:pw@h1:26379,h2:26379/main`. Masking a masked URL changes nothing.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The query and fragment start at the first `?` or `#`; whatever precedes them is the
    // authority and path.
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (head, tail) = rest.split_at(end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match head.rfind('@') {
        Some(at) => {
            let (userinfo, host) = head.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(head),
    }
    mask_values(tail, &mut out);
    out
}

/// `?a=1&b=2#f` → `?a=***&b=***#***`: keys stay, values go.
fn mask_values(tail: &str, out: &mut String) {
    let mut rest = tail;
    while let Some(c) = rest.chars().next() {
        // c is one of ? # & ; (or the first character of the tail, always ? or #).
        out.push(c);
        rest = &rest[c.len_utf8()..];
        if c == '#' {
            if !rest.is_empty() {
                out.push_str(MASK);
            }
            return;
        }
        let end = rest.find(['&', ';', '#']).unwrap_or(rest.len());
        let (pair, next) = rest.split_at(end);
        match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
        rest = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_values_are_masked() {
        for (url, shown) in [
            (
                "http://user:password@host:8080/hook?token=abc&x=1",
                "http://user:***@host:8080/hook?token=***&x=***",
            ),
            ("http://host/hook", "http://host/hook"),
            ("https://host/hook?flag", "https://host/hook?flag"),
            (
                "redis://:pw@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "rediss://default:p@ss@h:6380",
                "rediss://default:***@h:6380",
            ),
            ("redis://user@h", "redis://user@h"),
            (
                "redis+sentinel://:pw@h1:26379,h2:26379/main/1?sentinel_password=s",
                "redis+sentinel://:***@h1:26379,h2:26379/main/1?sentinel_password=***",
            ),
            ("http://h/p?a=1;b=2#frag", "http://h/p?a=***;b=***#***"),
            ("http://h/p?e=a@b", "http://h/p?e=***"),
            ("http://h/p?=x&k=", "http://h/p?=***&k="),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(mask_url(url), shown, "{url}");
            assert_eq!(mask_url(shown), shown, "masking is idempotent: {shown}");
        }
    }

    #[test]
    fn no_part_of_a_secret_survives() {
        let url = "http://u:s3cr3t-pw@h/x?api_key=s3cr3t-key#s3cr3t-frag";
        let shown = mask_url(url);
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
