//! Credentials out of messages: URLs are shown with their passwords hidden.

/// Hide the password of any `scheme://user:password@host` URL in `text`.
pub fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | ')'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                let user = userinfo.split(':').next().unwrap_or("");
                out.push_str(user);
                if userinfo.contains(':') {
                    out.push_str(":***");
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_passwords_are_hidden() {
        assert_eq!(
            super::url("cannot reach redis://:hunter2@10.0.0.1:6379/0 (refused)"),
            "cannot reach redis://:***@10.0.0.1:6379/0 (refused)"
        );
        assert_eq!(
            super::url("rediss://app:p@ss@host/1 and file:data/x.redb"),
            "rediss://app:***@host/1 and file:data/x.redb"
        );
        assert_eq!(super::url("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            super::url("redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0"),
            "redis+sentinel://:***@s1:26379,s2:26379/mymaster/0"
        );
    }
}
