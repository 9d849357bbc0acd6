//! An artifact's `maven-metadata.xml` as a `--verified-only` node lists it: only the versions
//! the log committed ([`only_versions`]), as npm packuments and PyPI pages keep only committed
//! versions. The document is edited, never rebuilt: everything but the dropped elements stays
//! as the repository wrote it.
//!
//! Maven writes metadata without comments, CDATA or a DTD; a document with any of them is
//! refused ([`MetadataError::Unsupported`]) rather than read past, so that a hidden
//! `</versions>` cannot keep a version out of the filter.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use super::maven::MAVEN_TAGS;

/// The largest metadata document read, in bytes.
pub const METADATA_LEN_MAX: usize = 4 << 20;

/// Why a metadata document was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    /// Longer than [`METADATA_LEN_MAX`], or not UTF-8.
    Unreadable,
    /// A comment, CDATA section or DTD, which Maven never writes.
    Unsupported,
    /// No `<versioning>` with one `<versions>` list, or an element left open.
    Malformed,
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetadataError::Unreadable => "the metadata is too long or not UTF-8",
            MetadataError::Unsupported => {
                "the metadata has a comment, CDATA section or DTD, which Maven never writes"
            }
            MetadataError::Malformed => "the metadata has no single <versions> list",
        })
    }
}

impl core::error::Error for MetadataError {}

/// The document without the `<version>` entries of its `<versions>` list that `keep`
/// refuses, and without a `<latest>` or `<release>` naming one of them (as a packument drops
/// the dist-tags of dropped versions: a client then resolves among the listed versions).
pub fn only_versions(xml: &[u8], keep: impl Fn(&str) -> bool) -> Result<Vec<u8>, MetadataError> {
    let text = readable(xml)?;
    let open = single(text, "<versions>")?;
    let close = single(text, "</versions>")?;
    if close < open {
        return Err(MetadataError::Malformed);
    }
    let found = elements(text, open, close)?;
    // The list holds `<version>` elements and whitespace, nothing a reader could take for
    // another version (`<version >`, a prefixed name); `<latest>` and `<release>` are written
    // plainly too.
    let mut list_rest = open + "<versions>".len();
    for &(start, end, _) in found.iter().filter(|e| e.0 > open && e.1 <= close) {
        if !text[list_rest..start].trim().is_empty() {
            return Err(MetadataError::Malformed);
        }
        list_rest = end;
    }
    if !text[list_rest..close].trim().is_empty()
        || !plain(text, "latest")
        || !plain(text, "release")
    {
        return Err(MetadataError::Malformed);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, value) in found {
        if !keep(value.trim()) {
            out.push_str(&text[at..start]);
            at = end;
        }
    }
    out.push_str(&text[at..]);
    // Cutting elements out must not have joined the text around them into new markup.
    let (open, close) = (single(&out, "<versions>")?, single(&out, "</versions>")?);
    if close < open || !plain(&out, "latest") || !plain(&out, "release") {
        return Err(MetadataError::Malformed);
    }
    Ok(out.into_bytes())
}

/// What the document's `<release>` and `<latest>` name, in [`MAVEN_TAGS`] order: (tag,
/// version) for each present and not a `-SNAPSHOT` (the log commits releases only). Read
/// with the same care as [`only_versions`]: a comment, CDATA or DTD is refused, and so is a
/// second or decorated `<release>` or `<latest>`.
pub fn tags(xml: &[u8]) -> Result<Vec<(&'static str, &str)>, MetadataError> {
    let text = readable(xml)?;
    let mut found = Vec::new();
    for tag in MAVEN_TAGS {
        if !plain(text, tag) {
            return Err(MetadataError::Malformed);
        }
        let start_tag = alloc::format!("<{tag}>");
        let Ok(start) = single(text, &start_tag) else {
            if text.contains(start_tag.as_str()) {
                return Err(MetadataError::Malformed);
            }
            continue;
        };
        let value_start = start + start_tag.len();
        let end_tag = alloc::format!("</{tag}>");
        let value_len = text[value_start..]
            .find(&end_tag)
            .ok_or(MetadataError::Malformed)?;
        let value = text[value_start..value_start + value_len].trim();
        if value.contains('<') {
            return Err(MetadataError::Malformed);
        }
        if !value.is_empty() && !value.ends_with("-SNAPSHOT") {
            found.push((tag, value));
        }
    }
    Ok(found)
}

/// The Maven artifact (`groupId:artifactId`) whose `maven-metadata.xml` lives in
/// `directory` (`org/example/lib`); `None` for a snapshot version's directory or anything
/// that is not an artifact's.
pub fn artifact_of(directory: &str) -> Option<String> {
    let (group, artifact) = directory.rsplit_once('/')?;
    let name = alloc::format!("{}:{artifact}", group.replace('/', "."));
    let artifact_directory =
        !directory.ends_with("-SNAPSHOT") && crate::package::Gav::release(&name, "1").is_ok();
    artifact_directory.then_some(name)
}

/// The directory of the Maven artifact `name` (`groupId:artifactId`) that holds its
/// `maven-metadata.xml` (`org/example/lib`): the inverse of [`artifact_of`].
pub fn directory_of(name: &str) -> Option<String> {
    let (group, artifact) = name.split_once(':')?;
    crate::package::Gav::release(name, "1").ok()?;
    Some(alloc::format!("{}/{artifact}", group.replace('.', "/")))
}

/// The `maven-metadata.xml` of `group:artifact` made from the log: `versions` (the ones it
/// committed) and the `<release>` and `<latest>` its `tags` (tag, version) name among them.
/// What a node serves when it has no metadata from the upstream (down, or `--offline`) and
/// never kept one, so version ranges resolve among what the network committed. Values that
/// could be markup are left out (the log's grammar never lets them in).
pub fn from_log(
    group: &str,
    artifact: &str,
    versions: &[String],
    tags: &[(String, String)],
) -> String {
    let plain_text = |value: &str| !value.is_empty() && !value.contains(['<', '>', '&']);
    if !plain_text(group) || !plain_text(artifact) {
        return String::new();
    }
    let listed: Vec<&str> = versions
        .iter()
        .map(String::as_str)
        .filter(|v| plain_text(v))
        .collect();
    let mut out = alloc::format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>{group}</groupId>\n  <artifactId>{artifact}</artifactId>\n  <versioning>\n"
    );
    for tag in ["latest", "release"] {
        if let Some((_, version)) = tags
            .iter()
            .find(|(t, v)| t == tag && listed.contains(&v.as_str()))
        {
            out.push_str(&alloc::format!("    <{tag}>{version}</{tag}>\n"));
        }
    }
    out.push_str("    <versions>\n");
    for version in listed {
        out.push_str(&alloc::format!("      <version>{version}</version>\n"));
    }
    out.push_str("    </versions>\n  </versioning>\n</metadata>\n");
    out
}

/// The document as text, when it is within [`METADATA_LEN_MAX`], UTF-8, and free of the
/// comments, CDATA and DTDs Maven never writes.
fn readable(xml: &[u8]) -> Result<&str, MetadataError> {
    if xml.len() > METADATA_LEN_MAX {
        return Err(MetadataError::Unreadable);
    }
    let text = core::str::from_utf8(xml).map_err(|_| MetadataError::Unreadable)?;
    if ["<!--", "<![CDATA[", "<!DOCTYPE", "<!ENTITY"]
        .iter()
        .any(|m| text.contains(m))
    {
        return Err(MetadataError::Unsupported);
    }
    Ok(text)
}

/// Whether every `<{tag}` in `text` is a plain `<{tag}>`.
fn plain(text: &str, tag: &str) -> bool {
    let opening = alloc::format!("<{tag}");
    let plain = alloc::format!("<{tag}>");
    text.matches(opening.as_str()).count() == text.matches(plain.as_str()).count()
}

/// Where `needle` occurs, when it occurs exactly once.
fn single(text: &str, needle: &str) -> Result<usize, MetadataError> {
    let first = text.find(needle).ok_or(MetadataError::Malformed)?;
    if text[first + needle.len()..].contains(needle) {
        return Err(MetadataError::Malformed);
    }
    Ok(first)
}

/// Every `<version>` inside the list (between `open` and `close`) and every `<latest>` and
/// `<release>`: (start, end, value), in document order.
fn elements(
    text: &str,
    open: usize,
    close: usize,
) -> Result<Vec<(usize, usize, &str)>, MetadataError> {
    let mut found = Vec::new();
    for (tag, in_list) in [("version", true), ("latest", false), ("release", false)] {
        let start_tag = alloc::format!("<{tag}>");
        let end_tag = alloc::format!("</{tag}>");
        let mut from = 0;
        while let Some(i) = text[from..].find(&start_tag) {
            let start = from + i;
            let value_start = start + start_tag.len();
            let value_len = text[value_start..]
                .find(&end_tag)
                .ok_or(MetadataError::Malformed)?;
            let value = &text[value_start..value_start + value_len];
            if value.contains('<') {
                return Err(MetadataError::Malformed);
            }
            let end = value_start + value_len + end_tag.len();
            // A `<version>` outside the list is the artifact's own (a snapshot directory's):
            // left alone.
            if !in_list || (start > open && end <= close) {
                found.push((start, end, value));
            }
            from = end;
        }
    }
    found.sort_by_key(|e| e.0);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>com.example</groupId>\n  <artifactId>lib</artifactId>\n  <versioning>\n    <latest>2.0</latest>\n    <release>2.0</release>\n    <versions>\n      <version>1.0</version>\n      <version>1.5</version>\n      <version>2.0</version>\n    </versions>\n    <lastUpdated>20261130120000</lastUpdated>\n  </versioning>\n</metadata>\n";

    fn filtered(xml: &str, kept: &[&str]) -> Result<String, MetadataError> {
        only_versions(xml.as_bytes(), |v| kept.contains(&v))
            .map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn an_artifacts_directory_and_name_map_to_each_other() {
        assert_eq!(
            artifact_of("org/example/lib").as_deref(),
            Some("org.example:lib")
        );
        assert_eq!(
            directory_of("org.example:lib").as_deref(),
            Some("org/example/lib")
        );
        assert_eq!(artifact_of("org/example/lib/1.0-SNAPSHOT"), None);
        assert_eq!(artifact_of("lib"), None);
        assert_eq!(directory_of("lib"), None);
    }

    #[test]
    fn metadata_made_from_the_log_lists_committed_versions_and_reads_back() {
        let versions = alloc::vec![String::from("1.0"), String::from("2.0")];
        let observed = alloc::vec![
            (String::from("release"), String::from("2.0")),
            (String::from("latest"), String::from("3.0")),
        ];
        let made = from_log("com.example", "lib", &versions, &observed);
        assert!(made.contains("<groupId>com.example</groupId>"), "{made}");
        // `latest` names a version the log did not commit: left out.
        assert_eq!(tags(made.as_bytes()), Ok(alloc::vec![("release", "2.0")]));
        let kept = only_versions(made.as_bytes(), |_| true).unwrap();
        assert_eq!(String::from_utf8(kept).unwrap(), made);
        assert!(made.contains("<version>1.0</version>") && made.contains("<version>2.0</version>"));
        assert_eq!(from_log("com.example", "<x>", &versions, &observed), "");
    }

    #[test]
    fn tags_are_release_and_latest_unless_a_snapshot() {
        assert_eq!(
            tags(METADATA.as_bytes()),
            Ok(alloc::vec![("release", "2.0"), ("latest", "2.0")])
        );
        let snapshot = METADATA.replace("<latest>2.0</latest>", "<latest>2.1-SNAPSHOT</latest>");
        assert_eq!(
            tags(snapshot.as_bytes()),
            Ok(alloc::vec![("release", "2.0")])
        );
        let untagged = METADATA
            .replace("<latest>2.0</latest>", "")
            .replace("<release>2.0</release>", "");
        assert_eq!(tags(untagged.as_bytes()), Ok(alloc::vec![]));
        for bad in [
            METADATA.replace(
                "<release>2.0</release>",
                "<release>2.0</release><release>1.0</release>",
            ),
            METADATA.replace("<release>2.0</release>", "<release x=\"1\">1.0</release>"),
            METADATA.replace(
                "<release>2.0</release>",
                "<release><!-- 1.0 -->2.0</release>",
            ),
            METADATA.replace("<release>2.0</release>", "<release>2.0"),
        ] {
            assert!(tags(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_only_kept_versions_and_drops_latest_and_release_naming_others() {
        let out = filtered(METADATA, &["1.0", "1.5"]).unwrap();
        assert!(out.contains("<version>1.0</version>"), "{out}");
        assert!(out.contains("<version>1.5</version>"), "{out}");
        assert!(!out.contains("2.0"), "{out}");
        assert!(
            out.contains("<lastUpdated>20261130120000</lastUpdated>"),
            "{out}"
        );
        // Everything kept is as the repository wrote it.
        assert_eq!(
            filtered(METADATA, &["1.0", "1.5", "2.0"]).unwrap(),
            METADATA
        );
        let none = filtered(METADATA, &[]).unwrap();
        assert!(
            none.contains("<versions>") && !none.contains("<version>"),
            "{none}"
        );
    }

    #[test]
    fn documents_that_could_hide_a_version_are_refused() {
        for (xml, why) in [
            (
                "<metadata><versioning><versions><!-- </versions> --><version>2.0</version></versions></versioning></metadata>",
                MetadataError::Unsupported,
            ),
            (
                "<metadata><versioning><versions><version><![CDATA[2.0]]></version></versions></versioning></metadata>",
                MetadataError::Unsupported,
            ),
            (
                "<metadata><versioning><versions></versions><versions><version>2.0</version></versions></versioning></metadata>",
                MetadataError::Malformed,
            ),
            (
                "<metadata><versioning></versioning></metadata>",
                MetadataError::Malformed,
            ),
            (
                "<metadata><versioning><versions><version >2.0</version></versions></versioning></metadata>",
                MetadataError::Malformed,
            ),
            (
                "<metadata><versioning><versions><m:version>2.0</m:version></versions></versioning></metadata>",
                MetadataError::Malformed,
            ),
            (
                "<metadata><versioning><release >2.0</release><versions></versions></versioning></metadata>",
                MetadataError::Malformed,
            ),
            (
                "<metadata><versioning><versions><version>2.0</versions></versioning></metadata>",
                MetadataError::Malformed,
            ),
        ] {
            assert_eq!(filtered(xml, &["1.0"]), Err(why), "{xml}");
        }
        assert_eq!(
            only_versions(&[0xff], |_| true),
            Err(MetadataError::Unreadable)
        );
    }
}
