//! The two cookie operations the gateway needs: find one cookie among the
//! request's Cookie headers (no allocation) and format a Set-Cookie value.

/// Value of the first cookie called `name` across `headers` (each a Cookie
/// header value, `a=1; b=2`). Surrounding double quotes are removed.
pub fn find_cookie<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    for header in headers {
        for pair in header.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim() == name {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                return Some(v);
            }
        }
    }
    None
}

/// `name=value; Path=/; HttpOnly; SameSite=Lax; Max-Age=N[; Secure]`.
pub fn set_cookie_value(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_across_headers_and_separators() {
        let h = ["a=1; meridian_rw=tok", "meridian_rw=second"];
        assert_eq!(find_cookie(h.into_iter(), "meridian_rw"), Some("tok"));
        assert_eq!(find_cookie(["x=1;y=2"].into_iter(), "y"), Some("2"));
        assert_eq!(find_cookie(["  y = \"q\" ; z"].into_iter(), "y"), Some("q"));
        assert_eq!(find_cookie(["my=1; y2=2"].into_iter(), "y"), None);
        assert_eq!(find_cookie(["novalue; ;="].into_iter(), "novalue"), None);
        assert_eq!(find_cookie(std::iter::empty(), "y"), None);
        // Values may contain '=' (base64 padding).
        assert_eq!(find_cookie(["k=ab=="].into_iter(), "k"), Some("ab=="));
    }

    #[test]
    fn formats_set_cookie() {
        assert_eq!(
            set_cookie_value("meridian_rw", "v", 5, false),
            "meridian_rw=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=5"
        );
        assert!(set_cookie_value("a", "b", 1, true).ends_with("; Max-Age=1; Secure"));
    }
}
